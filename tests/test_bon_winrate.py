"""Best-of-N win rate: the arithmetic against hand-computed cases, and judging through the cached judge."""

import asyncio
import math
from dataclasses import astuple

import pytest

from prefstudio.bon import report, runs, winrate
from prefstudio.bon.winrate import Point
from prefstudio.judge.verdict import combine, parse_verdict
from tests.bon_helpers import store_rewards, write_jsonl
from tests.png_helpers import assert_png
from tests.openai_stub import StubOpenAI


def test_sizes_are_powers_of_two_then_n_max():
    assert winrate.sizes(16) == [1, 2, 4, 8, 16]
    assert winrate.sizes(12) == [1, 2, 4, 8, 12]
    assert winrate.sizes(1) == [1]
    assert winrate.sizes(0) == []


def test_best_of_n_is_the_argmax_of_the_first_n_earliest_among_equals():
    rewards = [0.2, 0.9, 0.9, 1.5]
    assert [winrate.best_index(rewards, n) for n in (1, 2, 3, 4)] == [0, 1, 1, 3]
    with pytest.raises(ValueError):
        winrate.best_index(rewards, 5)


def test_win_rate_curve_by_hand():
    rewards = {
        1: [0.1, 0.5, 0.3, 0.9],  # best of 2: sample 1, of 4: sample 3
        2: [0.7, 0.2, 0.7, 0.1],  # best is sample 0 at every N (the tie at 4 goes to the earlier sample)
        3: [0.0, 0.0, 0.2, 0.5],  # best of 2: sample 0 (tie), of 4: sample 3
        4: [0.3, 0.4],  # two samples only: not in the N = 4 point
    }
    judged = {(1, 1): "win", (1, 3): "loss", (3, 3): "inconsistent", (4, 1): "parse_error"}
    asked = []

    def outcome(pid, idx):
        asked.append((pid, idx))
        return judged.get((pid, idx))

    points = winrate.curve(rewards, outcome, winrate.sizes(4))
    assert points[0] == Point(1, 0.5, 4, 0, 0, 4, 4, 0, 0.0)  # every best-of-1 is sample 0: a tie, no call
    # N = 2: P1 wins (1), P2 and P3 are sample 0 (0.5 each), P4's answer did not parse (left out)
    assert astuple(points[1])[:8] == (2, pytest.approx(2 / 3), 3, 1, 0, 2, 2, 1)
    assert points[1].stderr == pytest.approx(1 / 6)  # sqrt(((1/3)² + 2·(1/6)²) / 2 / 3)
    # N = 4: P1 loses (0), P2 is sample 0 (0.5), P3 inconsistent (0.5); P4 has too few samples
    assert astuple(points[2])[:8] == (4, pytest.approx(1 / 3), 3, 0, 1, 2, 1, 0)
    assert points[2].stderr == pytest.approx(1 / 6)
    assert 0 not in {idx for _, idx in asked}  # sample 0 is never compared with itself
    assert winrate.comparisons(rewards, winrate.sizes(4)) == {(1, 1), (1, 3), (3, 3), (4, 1)}


def test_no_prompt_with_n_samples_gives_nan_not_zero():
    (point,) = winrate.curve({1: [0.5]}, lambda *_: "win", [2])
    assert math.isnan(point.win_rate) and point.prompts == 0


@pytest.mark.parametrize("best_as_a, best_as_b, outcome, score", [
    ("Verdict: A>B", "Verdict: B>>A", "win", 1.0),  # both orders prefer best-of-N
    ("Verdict: B>A", "Verdict: A>>>B", "loss", 0.0),  # both prefer the baseline
    ("Verdict: A>B", "Verdict: A>B", "inconsistent", 0.5),  # each prefers whatever is shown first
    ("Verdict: A=B", "Verdict: B>A", "tie", 0.5),  # a tie in one order
    ("no idea", "Verdict: B>A", "parse_error", None),  # left out, not guessed
])
def test_both_orders_judgement_to_win_loss_or_half(best_as_a, best_as_b, outcome, score):
    judged = winrate.judge_outcome(combine(parse_verdict(best_as_a), parse_verdict(best_as_b)))
    assert judged == outcome and winrate.SCORE[judged] == score


def test_evaluator_reward_model_rule():
    assert [winrate.evaluator_outcome(b, 0.5) for b in (0.7, 0.2, 0.5)] == ["win", "loss", "tie"]


# -- judging a stored run through the judge's cache ------------------------------------------------------

RESPONSES = {  # the stub judge prefers the longer response, and says A=B for equal lengths
    "prompt X": ["aa", "aaaa", "a", "aaaaaaaaa"],
    "prompt Y": ["bbbbbbbb", "b", "bb", "cccccccc"],
}


@pytest.fixture
def judged_run(ws, tmp_path):
    runs.import_jsonl(ws.con, write_jsonl(tmp_path / "run.jsonl", [{"prompt": p, "responses": r}
                                                                   for p, r in RESPONSES.items()]), "r")
    one = store_rewards(ws.con, "r", "rm-one", {"prompt X": [0, 1, 2, 3], "prompt Y": [0, 1, 2, 3]})
    two = store_rewards(ws.con, "r", "rm-two", {"prompt X": [0, 3, 2, 1], "prompt Y": [5, 1, 0, 0]})
    return ws, one, two


def _judge(ws, scorers, settings):
    judging = winrate.plan_judging(ws, "r", scorers, settings)
    stats = asyncio.run(winrate.WinRateJudgeRun.for_plan(ws, settings, judging).run())
    return judging, stats


def test_judged_win_rate_pays_each_comparison_once(judged_run):
    ws, one, two = judged_run
    with StubOpenAI() as stub:
        settings = ws.config.judge.model_copy(update={"base_url": stub.base_url, "model": "stub-judge"})
        judging, stats = _judge(ws, [one, two], settings)
        # X1 (picked by both models at N = 2: one comparison), X3, Y1, Y3; two calls each, both orders
        assert judging.n_comparisons == 4 and stats.state == "done"
        assert stub.n_answered == 8
        assert {(a, b) for _, a, b in stub.answered} == {("aa", "aaaa"), ("aaaa", "aa"), ("aa", "aaaaaaaaa"),
                                                         ("aaaaaaaaa", "aa"), ("bbbbbbbb", "b"), ("b", "bbbbbbbb"),
                                                         ("bbbbbbbb", "cccccccc"), ("cccccccc", "bbbbbbbb")}
        outcome = winrate.judged_outcomes(ws.con, "r", "stub-judge", judging.prompt.identity)
        curves = winrate.curves(ws.con, "r", [one, two], outcome)
        # rm-one: N=2 X wins (4 > 2 chars), Y loses (1 < 8); N=4 X wins (9 > 2), Y ties (8 = 8)
        assert [p.win_rate for p in curves[one]] == [0.5, 0.5, 0.75]
        # rm-two: N=2 X wins; Y's best is sample 0 at every N (a tie, no call)
        assert [p.win_rate for p in curves[two]] == [0.5, 0.75, 0.75]
        assert curves[two][2].same == 1 and curves[one][2].ties == 1

        again = winrate.plan_judging(ws, "r", [one, two], settings)
        assert again.plan.tasks == [] and stub.n_answered == 8  # decided: nothing to plan

        # the outcomes lost, the calls' cache still holds every answer: judged again for free
        ws.con.execute("DELETE FROM bon_judgements")
        judging, stats = _judge(ws, [one, two], settings)
        assert judging.plan.calls_needed == 0 and judging.plan.calls_cached == 8
        assert stub.n_answered == 8
        outcome = winrate.judged_outcomes(ws.con, "r", "stub-judge", judging.prompt.identity)
        assert [p.win_rate for p in winrate.curves(ws.con, "r", [one], outcome)[one]] == [0.5, 0.5, 0.75]
    assert ws.con.execute("SELECT count(*) FROM annotations").fetchone()[0] == 0  # not pairs' labels


def test_evaluator_curve_and_report_files(judged_run, tmp_path):
    ws, one, two = judged_run
    curves = winrate.curves(ws.con, "r", [one], winrate.evaluator_outcomes(ws.con, "r", two))
    # rm-one's picks scored by rm-two: X1 3 > 0 win, Y1 1 < 5 loss; X3 1 > 0 win, Y3 0 < 5 loss
    assert [p.win_rate for p in curves[one]] == [0.5, 0.5, 0.5]
    labelled = {one.label: curves[one]}
    lines = report.chart(labelled, width=40, height=8)
    assert any(0x2801 <= ord(ch) <= 0x28FF for ch in "".join(lines))
    assert lines[8].split()[:3] == ["1", "2", "4"]  # N written under the log-scaled axis
    csv_path, md_path, png_path = report.write(tmp_path / "out", "r", "evaluator rm-two", labelled)
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("run,judged_by,reward_model,n,win_rate") and len(rows) == 4
    assert rows[3].startswith("r,evaluator rm-two,rm-one (step-1),4,0.500000")
    assert "Best-of-N win rate: r" in md_path.read_text()
    assert_png(png_path)
