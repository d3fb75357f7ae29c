"""The judge under kills, replies that are no answer, rate limits and hostile texts: paid once, only answers kept."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from pydantic import ValidationError

from prefstudio.config import JudgeConfig
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.judge import journal
from prefstudio.judge.prompts import PLACEHOLDERS, load_prompt
from prefstudio.judge.replies import retry_after
from prefstudio.judge.runner import JudgeRun, RunStats, prepare_run
from tests.openai_stub import _SECTION, NO_ANSWERS, StubOpenAI

SECRET = "sk-test-SECRET-faults-789"
SAFETY_NET_S = 300  # a wait's limit, only against a hang: tests wait for evidence, never for a time
CONSISTENT = "Chosen is far better.\nVerdict: {}"


def consistent(prompt, response_a, response_b):
    """Chosen (its text starts with "good") wins by 3 in both orders."""
    return CONSISTENT.format("A>>>B" if response_a.startswith("good") else "B>>>A")


def add_pairs(ws, prompts, source="faults"):
    records = [RawPair(p, f"good answer to {p}", f"bad answer to {p}", f"line {i}") for i, p in enumerate(prompts)]
    import_pairs(ws, RecordsReader("t", "test", source, records))


def wait_until(condition, what: str, timeout: float = SAFETY_NET_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no sign after {timeout} s that {what}"
        time.sleep(0.01)


def run_judge(ws, stub, *, on_progress=None, retry_errors=False, **overrides) -> RunStats:
    settings = JudgeConfig(model="gpt-4o", base_url=stub.base_url, **overrides)
    prompt, plan = prepare_run(ws, settings, retry_errors=retry_errors)
    run = JudgeRun(ws.con, settings, prompt, plan, ws.config.margins, workspace=ws.path, on_progress=on_progress,
                   retry_delay=lambda attempt, exc: 0.0)
    return asyncio.run(asyncio.wait_for(run.run(), SAFETY_NET_S))


def stored_responses(ws) -> list[str]:
    return [r for (r,) in ws.con.execute("SELECT response FROM judge_calls ORDER BY cache_key").fetchall()]


def labels(ws) -> list[tuple]:
    return ws.con.execute(
        "SELECT p.prompt, a.outcome, a.level FROM annotations a JOIN pairs p ON p.id = a.pair_id ORDER BY a.id"
    ).fetchall()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


# -- paid once ----------------------------------------------------------------------------------------------------

def test_answers_reach_the_journal_while_the_database_is_busy(ws, monkeypatch):
    """The cause of paying twice after a kill: answers used to wait in memory behind each DuckDB batch insert."""
    database_busy, release = threading.Event(), threading.Event()
    real_flush = journal.RunWriter._flush

    def slow_flush(self):
        database_busy.set()
        release.wait(SAFETY_NET_S)
        real_flush(self)

    monkeypatch.setattr(journal.RunWriter, "_flush", slow_flush)
    writer = journal.RunWriter(ws.con, ws.path, "busy-run")
    writer.statement("SELECT 1", [])
    wait_until(database_busy.is_set, "the DuckDB thread is in a flush")
    rows = [{"cache_key": f"k{i}", "model": "m", "prompt_version": "p", "pair_id": None, "chosen_as": "A",
             "response": f"Verdict: A>B #{i}", "tokens_in": 1, "tokens_out": 1, "cost_usd": 0.0, "run_id": "busy-run",
             "created_at": journal.now_text()} for i in range(50)]
    acknowledged = [writer.answer(row) for row in rows]
    for done in acknowledged:
        done.result(SAFETY_NET_S)  # returns while the flush is still stuck
    assert not release.is_set()
    assert writer.path.read_text().count("\n") == 50  # on disk, every one, before DuckDB saw any
    release.set()
    writer.close()
    assert ws.con.execute("SELECT count(*) FROM judge_calls").fetchone()[0] == 50
    assert not writer.path.exists()


def test_a_call_keeps_its_slot_until_its_answer_is_on_disk(ws, monkeypatch):
    """So at most `concurrency` answers are ever paid for and not on disk: the bound on what a kill can cost."""
    import stat

    add_pairs(ws, ["q-1", "q-2"])
    real_fsync, seen = os.fsync, []
    with StubOpenAI(consistent) as stub:
        def slow_fsync(fd):
            if stat.S_ISREG(os.fstat(fd).st_mode) and not seen:
                # the first answer is being made durable: a second call starting now would break the bound
                deadline = time.monotonic() + 1.0
                while stub.requests < 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
                seen.append(stub.requests)
            real_fsync(fd)

        monkeypatch.setattr(journal.os, "fsync", slow_fsync)
        stats = run_judge(ws, stub, concurrency=1)
    assert seen == [1] and stats.state == "done" and len(labels(ws)) == 2


def test_a_journal_that_cannot_be_written_stops_the_run_in_one_line(ws, monkeypatch):
    from prefstudio.errors import PrefstudioError

    add_pairs(ws, ["q-one", "q-two"])

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    with StubOpenAI(consistent) as stub:
        with monkeypatch.context() as patch:
            patch.setattr(journal.os, "fsync", disk_full)
            with pytest.raises(PrefstudioError) as caught:
                run_judge(ws, stub, concurrency=1)
        message = str(caught.value)
        assert "\n" not in message and "No space left on device" in message and "/judge/" in message
        assert labels(ws) == []  # nothing was labelled from an answer that is not on disk
        stats = run_judge(ws, stub)  # room again: the rerun finishes
        assert stats.state == "done" and len(labels(ws)) == 2


KILLS = 9
CONCURRENCY = 16


def durable_keys(workspace) -> set[str]:
    """Cache keys of the answers kept on disk: in a run journal, or in judge_calls."""
    import json

    import duckdb

    keys = set()
    for path in (workspace / "judge").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                keys.add(json.loads(line)["cache_key"])
            except ValueError:
                pass  # the line being written at the kill
    with duckdb.connect(str(workspace / "workspace.duckdb"), read_only=True) as con:
        keys.update(k for (k,) in con.execute("SELECT cache_key FROM judge_calls").fetchall())
    return keys


def test_kill_9_many_times_at_concurrency_16_pays_at_most_the_calls_in_flight(tmp_path):
    """Kill -9 a real `prefstudio annotate` at random points: each kill may cost at most the calls in flight."""
    from prefstudio.judge.runner import call_key
    from prefstudio.workspace import Workspace

    path = tmp_path / "w"
    n_pairs = 160
    with Workspace.init(path) as ws:
        add_pairs(ws, [f"q{i}" for i in range(n_pairs)])
    identity = load_prompt("general").identity
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONPATH": os.getcwd()}
    command = ["annotate", str(path), "--judge", "--concurrency", str(CONCURRENCY), "--yes"]
    pick = random.Random(14)
    lost_per_kill, told = [], ""
    with StubOpenAI(consistent, latency_s=0.01) as stub:
        command += ["--base-url", stub.base_url]
        for _ in range(KILLS):
            target = stub.n_answered + pick.randint(1, 30)
            proc = subprocess.Popen([sys.executable, "-m", "prefstudio", *command], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            wait_until(lambda: stub.n_answered >= target or proc.poll() is not None, "the run made calls")
            if proc.poll() is not None:  # it finished before this kill's point: nothing left to kill
                told += proc.stdout.read().decode()
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            # the killed run's calls still in flight are answered (and paid) all the same: wait for them
            wait_until(lambda: stub.n_answered == stub.requests, "the killed run's calls in flight were answered")
            paid = {call_key("gpt-4o", identity, *key) for key in stub.answered}
            lost_per_kill.append(len(paid - durable_keys(path)))
        done = subprocess.run([sys.executable, "-m", "prefstudio", *command], env=env, capture_output=True,
                              text=True, timeout=SAFETY_NET_S)
        assert done.returncode == 0, done.stdout + done.stderr
        told += done.stdout + done.stderr
        paid, distinct = stub.n_answered, len(stub.answered)
    kills = len(lost_per_kill)
    print(f"{kills} kills at concurrency {CONCURRENCY}: {paid} calls paid for {distinct}, {paid - distinct} twice; "
          f"paid and not on disk at each kill: {lost_per_kill}")
    assert kills >= KILLS - 1, f"only {kills} kills landed mid-run"
    assert max(lost_per_kill) <= CONCURRENCY, f"paid and not kept at a kill: {lost_per_kill}"
    assert distinct == 2 * n_pairs
    assert paid - distinct <= sum(lost_per_kill) <= kills * CONCURRENCY  # nothing kept was paid again
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT count(*), count(DISTINCT pair_id) FROM annotations").fetchone() == (
            n_pairs, n_pairs)
        assert ws.con.execute("SELECT count(*) FROM judge_calls").fetchone()[0] == 2 * n_pairs
        assert labels(ws) and all(outcome == "label" and level == 3 for _, outcome, level in labels(ws))
    assert SECRET not in told
    for file in path.rglob("*"):
        if file.is_file() and file.suffix != ".duckdb":
            assert SECRET not in file.read_text(errors="replace")


def test_the_same_call_twice_in_a_run_is_paid_once(ws):
    add_pairs(ws, ["q-twin"], source="one")
    # the same texts again (import refuses a duplicate; an older workspace may hold one): the same two calls
    ws.con.execute("INSERT INTO pairs SELECT * REPLACE (id + 100 AS id, 'two' AS source) FROM pairs")
    assert ws.con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 2
    with StubOpenAI(consistent) as stub:
        settings = JudgeConfig(model="gpt-4o", base_url=stub.base_url)
        _, plan = prepare_run(ws, settings)
        assert plan.calls_needed == 2
        stats = run_judge(ws, stub)
        assert stub.requests == 2
    assert stats.state == "done" and stats.pairs_done == 2
    assert labels(ws) == [("q-twin", "label", 3), ("q-twin", "label", 3)]


# -- only answers are kept ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(NO_ANSWERS))
def test_a_reply_that_is_no_answer_is_retried_never_kept(ws, kind):
    add_pairs(ws, ["q-one"])
    with StubOpenAI(consistent) as stub:
        stub.no_answers = [kind, kind]
        stats = run_judge(ws, stub, concurrency=1)
        assert stub.requests == 4 and stub.n_answered == 2
    assert stats.state == "done" and stats.retries == 2 and stats.failed_pairs == 0
    assert labels(ws) == [("q-one", "label", 3)]
    assert all(response.startswith("Chosen is far better.") for response in stored_responses(ws))
    assert len(stored_responses(ws)) == 2


def test_a_pair_that_never_gets_an_answer_fails_alone_in_one_line(ws):
    add_pairs(ws, ["q-ok", "q-mute", "q-fine"])
    with StubOpenAI(consistent) as stub:
        stub.no_answer_for = {"q-mute"}
        stats = run_judge(ws, stub, max_retries=2)
        assert stub.tries[("q-mute", "good answer to q-mute", "bad answer to q-mute")] == 3
    assert stats.state == "done" and stats.failed_pairs == 1 and stats.pairs_done == 2
    assert "\n" not in stats.message
    assert stats.message.startswith("1 pair(s) got no answer and stay unlabelled (pair 2: ")
    assert "sent an empty answer 3 times); rerun to try them again" in stats.message
    assert sorted(p for p, _, _ in labels(ws)) == ["q-fine", "q-ok"]
    assert len(stored_responses(ws)) == 4 and all(r.strip() for r in stored_responses(ws))
    with StubOpenAI(consistent) as stub:  # the endpoint answers again: only the failed pair is asked
        stats = run_judge(ws, stub)
        assert {key[0] for key in stub.answered} == {"q-mute"} and stub.n_answered == 2
    assert stats.failed_pairs == 0 and len(labels(ws)) == 3


def test_retry_errors_asks_again_only_the_answers_without_a_verdict(ws):
    add_pairs(ws, ["q-half", "q-good"])
    mumbling = {"on": True}

    def judge(prompt, response_a, response_b):
        if prompt == "q-half" and response_a.startswith("good") and mumbling["on"]:
            return "I am not sure what to say."  # a real answer, with no verdict in it
        return consistent(prompt, response_a, response_b)

    with StubOpenAI(judge) as stub:
        run_judge(ws, stub)
        assert sorted(labels(ws)) == [("q-good", "label", 3), ("q-half", "parse_error", None)]
        mumbling["on"] = False
        stats = run_judge(ws, stub, retry_errors=True)
        # one call again: q-half's unparseable order; its parseable order and q-good are not asked
        assert stub.answered[("q-half", "good answer to q-half", "bad answer to q-half")] == 2
        assert stub.n_answered == 5
        assert stats.calls_made == 1 and stats.pairs_done == 1
        assert run_judge(ws, stub, retry_errors=True).pairs_total == 0  # nothing left to re-ask
    latest = ws.con.execute(
        "SELECT outcome, level FROM annotations a JOIN pairs p ON p.id = a.pair_id WHERE p.prompt = 'q-half' "
        "ORDER BY a.id DESC LIMIT 1").fetchone()
    assert latest == ("label", 3)
    assert not [r for r in stored_responses(ws) if "not sure" in r]  # the re-asked answer replaced the old one


def test_retry_errors_on_the_command_line_says_how_many(tmp_path):
    from prefstudio.workspace import Workspace

    path = tmp_path / "w"
    with Workspace.init(path) as ws:
        add_pairs(ws, ["q-a", "q-b", "q-c"])
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONPATH": os.getcwd()}
    mumble = {"q-b"}
    with StubOpenAI(lambda p, a, b: "Hmm." if p in mumble else consistent(p, a, b)) as stub:
        annotate = [sys.executable, "-m", "prefstudio", "annotate", str(path), "--base-url", stub.base_url, "--yes"]
        first = subprocess.run(annotate + ["--judge"], env=env, capture_output=True, text=True, timeout=SAFETY_NET_S)
        assert first.returncode == 0 and "parse errors 1" in first.stdout, first.stdout + first.stderr
        mumble.clear()
        again = subprocess.run(annotate + ["--retry-errors"], env=env, capture_output=True, text=True,
                               timeout=SAFETY_NET_S)
        assert again.returncode == 0, again.stdout + again.stderr
        assert stub.n_answered == 6 + 2
    assert "re-asking 1 pairs whose stored answers had no verdict" in again.stdout
    assert "1 pairs to judge with gpt-4o: 2 calls (0 answered before, free)" in again.stdout
    assert "parse errors 0" in again.stdout


# -- rate limits --------------------------------------------------------------------------------------------------

def test_retry_after_is_capped_and_counted_down(ws):
    add_pairs(ws, ["q-one"])
    seen: list[str] = []
    with StubOpenAI(consistent) as stub:
        stub.fail_with, stub.retry_after = [429], "86400"  # "come back tomorrow"
        started = time.monotonic()
        stats = run_judge(ws, stub, concurrency=1, retry_after_cap_s=2.0,
                          on_progress=lambda s: seen.append(s.live_status()))
        waited = time.monotonic() - started
    assert stats.state == "done" and stats.retries == 1
    assert 1.9 <= waited < 60  # the cap, not the day
    countdown = [line.split(" · ")[0] for line in seen if line.startswith("rate limited")]
    assert countdown[0] == "rate limited; retrying in 2 s" and "rate limited; retrying in 1 s" in countdown
    assert not seen[-1].startswith("rate limited")  # the countdown ends with the wait


class _Reply:
    def __init__(self, headers):
        self.headers = headers


class _Error(Exception):
    def __init__(self, headers):
        self.response = _Reply(headers)


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after": "37"}, 37.0), ({"retry-after": "1.5"}, 1.5), ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": "soon"}, None), ({"retry-after": "nan"}, None), ({}, None),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
])
def test_retry_after_header_forms(headers, seconds):
    assert retry_after(_Error(headers)) == seconds


# -- prompts ------------------------------------------------------------------------------------------------------

EVERY_PLACEHOLDER = " ".join(PLACEHOLDERS) + " {question} {} {0} {{prompt}} \\1 \\g<0>"


@pytest.mark.parametrize("name", ["general", "helpful", "harmless"])
def test_placeholders_inside_the_texts_stay_text(name):
    prompt = load_prompt(name)
    texts = {"conversation": "Q " + EVERY_PLACEHOLDER, "response_a": "A " + EVERY_PLACEHOLDER,
             "response_b": "B " + EVERY_PLACEHOLDER}
    (system, user) = prompt.messages(texts["conversation"], texts["response_a"], texts["response_b"])
    assert system["content"] == prompt.system
    assert dict(_SECTION.findall(user["content"])) == texts
    assert user["content"].count(EVERY_PLACEHOLDER) == 3  # nothing substituted inside a text


def test_placeholders_inside_the_texts_reach_the_judge_as_given(ws):
    add_pairs(ws, ["q {response_b} {prompt}"])
    with StubOpenAI(lambda p, a, b: "Verdict: A=B") as stub:
        run_judge(ws, stub)
        assert set(stub.answered) == {
            ("q {response_b} {prompt}", "good answer to q {response_b} {prompt}", "bad answer to q {response_b} {prompt}"),
            ("q {response_b} {prompt}", "bad answer to q {response_b} {prompt}", "good answer to q {response_b} {prompt}"),
        }


# -- settings -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, value, expected", [
    ("concurrency", -5, "greater than or equal to 1"), ("concurrency", 0, "greater than or equal to 1"),
    ("timeout_s", 0, "greater than 0"), ("timeout_s", float("nan"), "finite number"),
    ("max_retries", -1, "greater than or equal to 0"), ("retry_after_cap_s", 0, "greater than 0"),
    ("retry_after_cap_s", float("inf"), "finite number"), ("max_tokens", 0, "greater than or equal to 1"),
])
def test_judge_settings_out_of_range_are_refused(setting, value, expected):
    with pytest.raises(ValidationError) as caught:
        JudgeConfig(**{setting: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (setting,) and expected in error["msg"]
