"""A judge run's limit counts the pairs of the run and its continuations (judge/continuation.py).

"limit 5", stopped at 2, asked again: exactly 3 more pairs, and the plan says so; a run that ended done is
followed by a fresh one; another limit or other pairs start fresh; nothing is paid twice.
"""

import asyncio

import duckdb
import pytest

from prefstudio import schema
from prefstudio.cli import main
from prefstudio.config import JudgeConfig
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.judge.continuation import Continuation
from prefstudio.judge.runner import JudgeRun, prepare_run
from prefstudio.workspace import DB_NAME, Workspace
from tests.openai_stub import StubOpenAI

N_PAIRS = 12  # more than any limit here: a run that forgot its chain would find pairs to go past it
LIMIT = 5


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-limits")


@pytest.fixture
def pairs_ws(ws):
    records = [RawPair(f"q{i}", f"a fuller answer number {i}", f"short {i}", f"line {i}",
                       source="a" if i % 2 else "b", split="train") for i in range(N_PAIRS)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    return ws


def settings(stub, **overrides) -> JudgeConfig:
    return JudgeConfig(base_url=stub.base_url, concurrency=1, **overrides)


def labelled(ws) -> int:
    return ws.con.execute("SELECT count(*) FROM annotations WHERE annotator_kind = 'llm'").fetchone()[0]


def run_plan(ws, config, prompt, plan):
    return asyncio.run(JudgeRun.for_workspace(ws, config, prompt, plan).run())


def cancelled_after_two_pairs(ws, stub) -> str:
    """A run with limit 5 stopped once it has judged 2 pairs; its id.

    At concurrency 1 the calls go pair by pair, both orders each: the stub answers 4 calls, holds the 5th,
    and the run is cancelled while it waits, with exactly 2 pairs labelled.
    """
    config = settings(stub)
    prompt, plan = prepare_run(ws, config, limit=LIMIT)
    run = JudgeRun.for_workspace(ws, config, prompt, plan)
    stub.hang_after = 4

    async def cancel_once_held():
        going = asyncio.ensure_future(run.run())
        while not (run.stats.pairs_done == 2 and stub.requests == 5):
            await asyncio.sleep(0.01)
        run.cancel()
        return await going

    stats = asyncio.run(cancel_once_held())
    stub.hang_after = None  # the server is back: the held call stays held, later ones are answered
    assert (stats.state, stats.pairs_done, labelled(ws)) == ("cancelled", 2, 2)
    return stats.run_id


def test_a_cancelled_run_asked_again_judges_exactly_what_its_limit_has_left(pairs_ws):
    with StubOpenAI() as stub:
        first = cancelled_after_two_pairs(pairs_ws, stub)
        config = settings(stub)
        prompt, plan = prepare_run(pairs_ws, config, limit=LIMIT)
        assert plan.continuation == Continuation(first, 2, LIMIT)
        assert plan.describe(config.model).startswith(
            f"continuing run {first}: 2 of 5 judged, 3 left; 3 pairs to judge with gpt-4o: 6 calls")
        stats = run_plan(pairs_ws, config, prompt, plan)
        assert (stats.state, stats.pairs_done, labelled(pairs_ws)) == ("done", 3, LIMIT)
        assert set(stub.answered.values()) == {1}  # no call paid twice
        assert stub.n_answered == 2 * LIMIT
        # the chain is complete: the same limit again is a fresh run of 5
        _, again = prepare_run(pairs_ws, config, limit=LIMIT)
        assert again.continuation is None and len(again.tasks) == LIMIT
    rows = pairs_ws.con.execute("SELECT purpose, source, split, pair_limit, continues, n_pairs FROM judge_runs "
                                "ORDER BY started_at").fetchall()
    assert rows == [("label", None, None, LIMIT, None, LIMIT), ("label", None, None, LIMIT, first, 3)]


def test_the_command_line_limit_counts_the_runs_it_continues(pairs_ws, capsys):
    with StubOpenAI() as stub:
        first = cancelled_after_two_pairs(pairs_ws, stub)
        path = pairs_ws.path
        pairs_ws.close()
        assert main(["annotate", str(path), "--judge", "--base-url", stub.base_url, "--concurrency", "1",
                     "--limit", str(LIMIT), "--yes"]) == 0
        out = capsys.readouterr().out
        assert f"continuing run {first}: 2 of 5 judged, 3 left; 3 pairs to judge with gpt-4o: 6 calls" in out
        assert " done: 3/3 pairs, 6 calls" in out
        assert set(stub.answered.values()) == {1} and stub.n_answered == 2 * LIMIT
    with Workspace.open(path) as ws:
        assert labelled(ws) == LIMIT


def test_a_run_that_ended_done_is_followed_by_as_many_new_pairs(pairs_ws):
    with StubOpenAI() as stub:
        config = settings(stub)
        for done_before in (0, 3):
            prompt, plan = prepare_run(pairs_ws, config, limit=3)
            assert plan.continuation is None and len(plan.tasks) == 3
            assert {t.pair_id for t in plan.tasks}.isdisjoint(pairs_judged(pairs_ws))
            assert run_plan(pairs_ws, config, prompt, plan).state == "done"
            assert labelled(pairs_ws) == done_before + 3


def pairs_judged(ws) -> set[int]:
    return {pid for (pid,) in ws.con.execute("SELECT pair_id FROM annotations WHERE annotator_kind = 'llm'").fetchall()}


def test_another_limit_or_other_pairs_or_another_judge_start_fresh(pairs_ws):
    with StubOpenAI() as stub:
        cancelled_after_two_pairs(pairs_ws, stub)
        config = settings(stub)
        for asked in ({"limit": 4}, {"limit": LIMIT, "source": "a"}, {"limit": LIMIT, "split": "train"}):
            _, plan = prepare_run(pairs_ws, config, **asked)
            assert plan.continuation is None and len(plan.tasks) == asked["limit"], asked
        _, plan = prepare_run(pairs_ws, settings(stub, model="another-judge"), limit=LIMIT)
        assert plan.continuation is None and len(plan.tasks) == LIMIT
        _, plan = prepare_run(pairs_ws, settings(stub, prompt="harmless"), limit=LIMIT)
        assert plan.continuation is None and len(plan.tasks) == LIMIT
        # a run with another limit that has started is the newest: the old limit, asked again, starts fresh too
        prompt, plan = prepare_run(pairs_ws, config, limit=1)
        run_plan(pairs_ws, config, prompt, plan)
        _, plan = prepare_run(pairs_ws, config, limit=LIMIT)
        assert plan.continuation is None and len(plan.tasks) == LIMIT


def add_run(ws, run_id, state, *, continues=None, pair_limit=LIMIT, purpose="label", labels=0, at="10:00"):
    """A judge_runs row as a run of the given state leaves it, with `labels` pairs labelled under its id."""
    ws.con.execute("INSERT INTO judge_runs (id, model, prompt_version, state, started_at, purpose, pair_limit, "
                   "continues) VALUES (?, 'gpt-4o', 'v#1', ?, ?, ?, ?, ?)",
                   [run_id, state, f"2026-11-02 {at}", purpose, pair_limit, continues])
    judged = len(pairs_judged(ws))
    for pair_id in range(judged + 1, judged + labels + 1):
        ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, "
                       "prompt_version, run_id) VALUES (?, 'llm', 'gpt-4o', 'label', 2, 'v#1', ?)", [pair_id, run_id])


def continuation(ws, limit=LIMIT):
    from prefstudio.judge.continuation import LABEL, Selection, find_continuation

    return find_continuation(ws.con, model="gpt-4o", prompt_identity="v#1",
                             selection=Selection(LABEL, None, None, limit))


def test_a_chain_counts_the_labels_of_all_its_runs_killed_ones_included(pairs_ws):
    add_run(pairs_ws, "root", "cancelled", labels=1, at="10:00")
    add_run(pairs_ws, "next", "running", continues="root", labels=2, at="10:05")  # killed: counts never written
    assert continuation(pairs_ws) == Continuation("root", 3, LIMIT)
    assert continuation(pairs_ws, limit=None) is None  # without a limit there is nothing to count against
    add_run(pairs_ws, "last", "failed", continues="root", labels=2, at="10:10")
    assert continuation(pairs_ws) is None  # 5 of 5: complete, whatever the state said


def test_a_run_that_ended_done_is_never_continued_even_short_of_its_limit(pairs_ws):
    add_run(pairs_ws, "short", "done", labels=3)  # pairs ran out, or some got no answer: it ended all the same
    assert continuation(pairs_ws) is None


def test_runs_not_asked_as_labelling_runs_are_never_continued(pairs_ws):
    add_run(pairs_ws, "retry", "cancelled", purpose="retry_errors", labels=1)
    add_run(pairs_ws, "winrate", "cancelled", purpose=None, pair_limit=None, at="10:05")
    assert continuation(pairs_ws) is None


def test_a_v5_workspace_migrates_with_its_judge_runs_and_none_is_continued(tmp_path):
    path = tmp_path / "w"
    Workspace.init(path).close()
    (path / DB_NAME).unlink()
    con = duckdb.connect(str(path / DB_NAME))
    for version in range(1, 6):
        for statement in schema.MIGRATIONS[version]:
            con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    con.execute("INSERT INTO judge_runs (id, model, prompt_version, state, started_at, n_pairs) "
                "VALUES ('old', 'gpt-4o', 'v#1', 'cancelled', '2026-11-01 10:00', 5)")
    con.close()
    with Workspace.open(path) as ws:
        assert schema.current_version(ws.con) == schema.latest_version()
        assert ws.con.execute("SELECT id, state, n_pairs, purpose, source, split, pair_limit, continues "
                              "FROM judge_runs").fetchall() == [("old", "cancelled", 5, None, None, None, None, None)]
        assert continuation(ws) is None
