"""`annotate --batch`: the judge's calls as one OpenAI batch, at half the price, resumable, sharing the cache."""

import asyncio
import json

import pytest

from prefstudio.cli import main
from prefstudio.config import JudgeConfig
from prefstudio.judge import batch as judge_batch
from prefstudio.judge.runner import JudgeRun, RunPlan, prepare_run
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs
from tests.openai_batch_stub import StubOpenAIBatch

PAIRS = 3  # 6 calls


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch")


@pytest.fixture
def stub():
    with StubOpenAIBatch(polls_to_finish=2) as server:
        yield server


def settings(stub, **overrides) -> JudgeConfig:
    return JudgeConfig(model="gpt-4o", base_url=stub.base_url, **overrides)


def run_batch(ws, stub, **overrides):
    """What `annotate --batch` does, through the core: plan, submit, wait, collect, label."""
    config = settings(stub, **overrides)
    prompt, plan = prepare_run(ws, config)
    client = judge_batch.make_batch_client(config)
    record = judge_batch.submit(ws, config, prompt, plan, client)
    batch = judge_batch.wait(client, record, config, poll_s=0)
    result = judge_batch.collect(ws, record, batch, client, config)
    return record, result, judge_batch.label(ws, record, config)


def run_live(ws, stub, **overrides):
    config = settings(stub, **overrides)
    prompt, plan = prepare_run(ws, config)
    stats = asyncio.run(JudgeRun(ws.con, config, prompt, plan, ws.config.margins, workspace=ws.path,
                                 retry_delay=lambda attempt, exc: 0.0).run())
    return plan, stats


def labels(ws):
    return ws.con.execute("SELECT pair_id, outcome, level, flip, expected_level FROM annotations ORDER BY pair_id").fetchall()


def calls(ws):
    return ws.con.execute("SELECT cache_key, response, tokens_in, tokens_out, verdict_probs, cost_usd FROM judge_calls "
                          "ORDER BY cache_key").fetchall()


def soft(prompt, response_a, response_b):
    """Logprobs: how sure the stub judge is of its verdict's winner and operator."""
    return {"A": 0.75, "B": 0.25}, {">>": 0.5, "=": 0.5}


def annotate_batch(ws_path, stub, *more):
    return main(["annotate", str(ws_path), "--batch", "--base-url", stub.base_url, "--model", "gpt-4o",
                 "--poll-every", "0", "--yes", *more])


def test_a_batch_labels_every_pair_as_a_live_run_would_at_half_the_price(ws, tmp_path):
    add_pairs(ws.con, {"s": PAIRS})
    asked = {"prompt": "general-json", "logprobs": True}  # a JSON-schema verdict with its distribution
    with StubOpenAIBatch(polls_to_finish=2, json_schema=True, logprobs=soft) as stub:
        record, result, stats = run_batch(ws, stub, **asked)
        assert stub.live_calls == 0 and stub.batches_created == 1 and stub.polls == 2
        assert (result.status, result.answered, result.failed) == ("completed", 2 * PAIRS, 0)
        assert stats.state == "done" and stats.pairs_done == PAIRS and stats.calls_made == 0
        assert ws.con.execute("SELECT DISTINCT run_id FROM judge_calls").fetchall() == [(record.id,)]
        assert not judge_batch.input_path(ws.path, record.id).exists()  # collected: the local copy is gone
        batch_bodies = list(stub.bodies)
        with Workspace.init(tmp_path / "live") as live:
            add_pairs(live.con, {"s": PAIRS})
            run_live(live, stub, **asked)
            assert labels(ws) == labels(live) and len(labels(ws)) == PAIRS
            assert None not in [row[4] for row in labels(ws)]  # the soft label survives the cache (plan_run)
            batch_calls, live_calls = calls(ws), calls(live)
        live_bodies = stub.bodies[len(batch_bodies):]
    same = [sorted(json.dumps(body, sort_keys=True) for body in bodies) for bodies in (batch_bodies, live_bodies)]
    assert same[0] == same[1]  # a batch line asks exactly what a live call asks
    assert batch_bodies[0]["response_format"]["type"] == "json_schema" and batch_bodies[0]["logprobs"] is True
    assert [c[:5] for c in batch_calls] == [c[:5] for c in live_calls]  # the same answers, tokens, distributions
    assert all(c[4] is not None for c in batch_calls)
    assert [c[5] for c in batch_calls] == pytest.approx([c[5] / 2 for c in live_calls], rel=1e-12)
    assert result.cost_usd == pytest.approx(sum(c[5] for c in live_calls) / 2, rel=1e-12) and result.cost_usd > 0


def forget_the_batch_id(ws, record):
    """Killed in the instant after the provider created the batch, before its id was recorded."""
    ws.con.execute("UPDATE judge_batches SET batch_id = NULL WHERE id = ?", [record.id])


@pytest.mark.parametrize("crash", [None, forget_the_batch_id], ids=["after-submit", "while-creating"])
def test_a_process_killed_after_submitting_goes_on_with_the_same_batch(ws, stub, crash, capsys):
    add_pairs(ws.con, {"s": PAIRS})
    config = settings(stub)
    prompt, plan = prepare_run(ws, config)
    record = judge_batch.submit(ws, config, prompt, plan, judge_batch.make_batch_client(config))
    if crash:
        crash(ws, record)
    ws.close()
    assert annotate_batch(ws.path, stub) == 0
    out = capsys.readouterr().out
    assert stub.batches_created == 1 and stub.uploads == 1 and stub.live_calls == 0
    assert f"of gpt-4o: {2 * PAIRS} calls, submitted" in out and "is not finished: going on with it" in out
    assert "batch batch_1: in_progress, 0/6 answered\nbatch batch_1: completed, 6/6 answered\n" in out
    assert f"done: {PAIRS}/{PAIRS} pairs, 0 calls" in out
    with Workspace.open(ws.path) as reopened:
        assert len(labels(reopened)) == PAIRS
        assert reopened.con.execute("SELECT batch_id, state, finished_at IS NOT NULL FROM judge_batches"
                                    ).fetchall() == [("batch_1", "completed", True)]


def test_a_process_killed_before_its_upload_was_recorded_plans_afresh(ws, stub, monkeypatch, capsys):
    add_pairs(ws.con, {"s": PAIRS})
    config = settings(stub)
    prompt, plan = prepare_run(ws, config)

    def killed(*args, **kwargs):
        raise SystemExit("killed")
    monkeypatch.setattr(judge_batch, "_update", killed)
    with pytest.raises(SystemExit):
        judge_batch.submit(ws, config, prompt, plan, judge_batch.make_batch_client(config))
    monkeypatch.undo()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch")
    ws.close()
    assert annotate_batch(ws.path, stub) == 0
    assert (stub.uploads, stub.batches_created) == (2, 1)  # the first file was never used: nothing paid for it
    with Workspace.open(ws.path) as reopened:
        assert len(labels(reopened)) == PAIRS
        assert reopened.con.execute("SELECT state FROM judge_batches ORDER BY created_at").fetchall() == [
            ("abandoned",), ("completed",)]


def test_a_live_run_after_a_batch_pays_for_nothing(ws, stub):
    add_pairs(ws.con, {"s": PAIRS})
    run_batch(ws, stub)
    ws.con.execute("DELETE FROM annotations")  # labels lost: the answers are in the cache
    plan, stats = run_live(ws, stub)
    assert (plan.calls_needed, plan.calls_cached) == (0, 2 * PAIRS)
    assert stub.live_calls == 0 and stats.pairs_done == PAIRS and stats.cost_usd == 0


def test_lines_a_batch_failed_are_asked_by_the_next_run_and_nothing_else(ws, stub):
    ids = add_pairs(ws.con, {"s": PAIRS})["s"]
    stub.fail_prompts = {"s prompt 1"}
    _, result, stats = run_batch(ws, stub)
    assert (result.answered, result.failed, result.complete) == (4, 2, False)
    assert "2 got no answer (HTTP 500: stub line failure)" in result.summary()
    assert [row[0] for row in labels(ws)] == [ids[0], ids[2]] and stats.pairs_done == 2
    stub.fail_prompts = set()
    plan, _ = run_live(ws, stub)
    assert (plan.calls_needed, stub.live_calls) == (2, 2)
    assert [row[0] for row in labels(ws)] == ids


def test_an_expired_batch_keeps_its_answers_and_says_what_to_do(ws, stub, capsys):
    add_pairs(ws.con, {"s": PAIRS})
    ws.close()
    stub.expire_after = 3  # both orders of the first pair and one of the second
    assert annotate_batch(ws.path, stub) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("prefstudio: error: batch batch_1 expired: 3 of 6 calls answered, $0.0010 (batch price); 3 got no "
                   "answer (batch_expired: This request could not be executed before the completion window "
                   "expired.): their pairs stay unlabelled and are asked again by the next annotate --batch or "
                   "--judge")
    stub.expire_after = None
    assert annotate_batch(ws.path, stub) == 0
    assert stub.batches_created == 2 and stub.n_answered == 2 * PAIRS  # the second asked only the 3 left
    with Workspace.open(ws.path) as reopened:
        assert len(labels(reopened)) == PAIRS


def test_a_failed_batch_is_one_line_naming_it(ws, stub, capsys):
    add_pairs(ws.con, {"s": PAIRS})
    ws.close()
    stub.fail_batch = "line 1: unknown model"
    assert annotate_batch(ws.path, stub) == 2
    assert capsys.readouterr().err.strip() == (
        "prefstudio: error: batch batch_1 failed at the provider (line 1: unknown model); nothing was answered or "
        "paid: fix that and run annotate --batch again, or use --judge")


def test_the_estimate_shows_the_live_and_the_batch_price():
    plan = RunPlan(tasks=[], calls_needed=12, calls_cached=2, est_tokens_in=4_000, est_cost_usd=1.5)
    assert plan.describe("gpt-4o") == ("0 pairs to judge with gpt-4o: 12 calls (2 answered before, free), "
                                       "~4,000 input tokens, ~$1.50 live or ~$0.75 as a batch")


def test_a_live_run_while_a_batch_is_pending_says_it_pays_again(ws, stub, capsys):
    add_pairs(ws.con, {"s": PAIRS})
    config = settings(stub)
    prompt, plan = prepare_run(ws, config)
    record = judge_batch.submit(ws, config, prompt, plan, judge_batch.make_batch_client(config))
    ws.close()
    assert main(["annotate", str(ws.path), "--judge", "--base-url", stub.base_url, "--model", "gpt-4o", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"note: {record.describe()} is not finished; `annotate --batch` collects it at half price" in out
    assert stub.live_calls == 2 * PAIRS
