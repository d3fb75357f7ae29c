"""The judge's request per model kind, structured verdicts and soft labels, against the local OpenAI-compatible
server over real HTTP with the real openai client (tests/openai_stub.py)."""

import asyncio
import json

import pytest

from prefstudio.config import JudgeConfig
from prefstudio.errors import PrefstudioError
from prefstudio.judge.prompts import load_prompt
from prefstudio.judge.request import chat_request
from prefstudio.judge.runner import JudgeRun, prepare_run
from prefstudio.judge.verdict import RESPONSE_FORMAT, expected_level
from tests.openai_stub import REFUSALS, StubOpenAI
from tests.test_judge_runner import SECRET, add_pairs, annotations, run_judge, scripted

MESSAGES = [{"role": "user", "content": "which?"}]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def run_model(ws, stub, model, **overrides):
    """run_judge with another model than gpt-4o."""
    settings = JudgeConfig(model=model, base_url=stub.base_url, **overrides)
    prompt, plan = prepare_run(ws, settings)
    return asyncio.run(JudgeRun(ws.con, settings, prompt, plan, ws.config.margins, workspace=ws.path,
                                retry_delay=lambda attempt, exc: 0.0).run())


@pytest.mark.parametrize("model, settings, expected", [
    ("gpt-4o", {}, {"temperature": 0.0, "max_tokens": 200}),
    ("o3-mini", {}, {"max_completion_tokens": 4000}),
    ("openai/o1-2024-12-17", {"reasoning_effort": "low"}, {"max_completion_tokens": 4000, "reasoning_effort": "low"}),
    ("gpt-5.1", {"reasoning_max_tokens": 2500}, {"max_completion_tokens": 2500}),
    ("o4-mini", {"reasoning": False}, {"temperature": 0.0, "max_tokens": 200}),  # the table overridden
    ("my-thinker", {"reasoning": True}, {"max_completion_tokens": 4000}),
    ("gpt-4.1", {"token_parameter": "max_completion_tokens"}, {"temperature": 0.0, "max_completion_tokens": 200}),
    ("omni-7b", {}, {"temperature": 0.0, "max_tokens": 200}),  # "o" alone is no reasoning prefix
])
def test_the_request_body_per_model_kind(model, settings, expected):
    body = chat_request(JudgeConfig(model=model, **settings), MESSAGES)
    assert body == {"model": model, "messages": MESSAGES, **expected}


def test_a_json_prompt_asks_for_the_schema_and_logprobs_where_the_model_gives_them():
    prompt = load_prompt("general-json")
    assert chat_request(JudgeConfig(), MESSAGES, prompt=prompt) == {
        "model": "gpt-4o", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 200,
        "response_format": RESPONSE_FORMAT, "logprobs": True, "top_logprobs": 5}
    assert RESPONSE_FORMAT["json_schema"]["schema"]["properties"]["verdict"]["enum"] == [
        "A>>>B", "A>>B", "A>B", "A=B", "B>A", "B>>A", "B>>>A"]
    # a reasoning model gives no logprobs; a part the endpoint refused is left out
    assert chat_request(JudgeConfig(model="o3"), MESSAGES, prompt=prompt, without={"response_format"}) == {
        "model": "o3", "messages": MESSAGES, "max_completion_tokens": 4000}


def test_a_reasoning_model_is_asked_what_it_takes(ws):
    add_pairs(ws, ["q-consistent", "q-flip"])
    with StubOpenAI(scripted, reasoning=True) as stub:
        stats = run_model(ws, stub, "o3-mini", reasoning_effort="medium")
        bodies = stub.bodies
    assert stats.state == "done" and stats.pairs_done == 2 and stub.requests == 4
    assert all(body["max_completion_tokens"] == 4000 and body["reasoning_effort"] == "medium"
               and "max_tokens" not in body and "temperature" not in body for body in bodies)
    assert [row[:3] for row in annotations(ws)] == [("q-consistent", "label", 3), ("q-flip", "label", 2)]


def test_a_refused_request_says_what_the_server_said_in_one_line(ws):
    add_pairs(ws, ["q-consistent"])
    with StubOpenAI(scripted, reasoning=True) as stub:
        stats = run_model(ws, stub, "my-new-thinker")  # not in the table: asked as a chat model
    assert stats.state == "failed"
    assert stats.message == (f"{stub.base_url} refused the request (HTTP 400); check --model and --base-url; "
                             f"the server said: {REFUSALS['max_tokens']['message']}")
    assert "\n" not in stats.message and SECRET not in stats.message


def test_the_server_text_is_one_short_line_without_the_key(ws):
    add_pairs(ws, ["q-consistent"])
    with StubOpenAI(scripted) as stub:
        stub.fail_with = [403]
        stub_message = f"key {SECRET} is not allowed here\n" + "x" * 1000
        original = stub._respond

        def respond(body):
            code, payload, headers = original(body)
            if code == 403:
                payload = {"error": {"message": stub_message}}
            return code, payload, headers
        stub._respond = respond
        _, stats = run_judge(ws, stub, concurrency=1)
    said = stats.message.split("the server said: ")[1]
    assert stats.message.startswith(f"{stub.base_url} refused the request (HTTP 403)")
    assert said.startswith("key [key] is not allowed here xxx") and len(said) == 300 and said.endswith("…")
    assert SECRET not in stats.message and "\n" not in stats.message


def test_a_json_schema_run_reads_json_verdicts(ws):
    add_pairs(ws, ["q-consistent", "q-lower", "q-flip"])
    with StubOpenAI(scripted, json_schema=True) as stub:
        _, stats = run_judge(ws, stub, prompt="general-json")
        assert all(body["response_format"] == RESPONSE_FORMAT for body in stub.bodies)
    raw = ws.con.execute("SELECT raw_response_ab FROM annotations ORDER BY pair_id").fetchall()
    assert json.loads(raw[0][0]) == {"reason": "Chosen is far better.", "verdict": "A>>>B"}
    assert stats.state == "done" and stats.parse_errors == 0
    assert [row[:4] for row in annotations(ws)] == [
        ("q-consistent", "label", 3, False), ("q-lower", "label", 1, False), ("q-flip", "label", 2, True)]


def test_a_server_without_json_schemas_still_labels_every_pair(ws):
    add_pairs(ws, ["q-consistent", "q-lower", "q-flip", "q-tie"])
    with StubOpenAI(scripted, json_schema=False) as stub:
        _, stats = run_judge(ws, stub, prompt="general-json", concurrency=1)
        with_schema = [body for body in stub.bodies if "response_format" in body]
    assert len(with_schema) == 1  # refused once, then the run asks for text
    assert stats.state == "done" and stats.pairs_done == 4 and stats.retries == 0 and stub.requests == 9
    assert [row[:4] for row in annotations(ws)] == [
        ("q-consistent", "label", 3, False), ("q-lower", "label", 1, False), ("q-flip", "label", 2, True),
        ("q-tie", "label", 0, False)]


# chosen shown as A: P(A)=3/4, P(B)=1/4; operator P(>>)=1/2, P(=)=1/2.  chosen shown as B: P(B)=1,
# P(>)=P(>>>)=1/2. The answers themselves say A>>B and B>>>A: a hard level 2 for chosen.
def soft(prompt, response_a, response_b):
    if response_a.startswith("good"):
        return {"A": 0.75, "B": 0.25}, {">>": 0.5, "=": 0.5}
    return {"B": 1.0}, {">": 0.5, ">>>": 0.5}


def soft_answer(prompt, response_a, response_b):
    return "Chosen is better.\nVerdict: " + ("A>>B" if response_a.startswith("good") else "B>>>A")


@pytest.mark.parametrize("json_schema", [True, None])
def test_logprobs_give_the_verdict_distribution_and_the_expected_level(ws, json_schema):
    add_pairs(ws, ["q-soft"])
    with StubOpenAI(soft_answer, json_schema=json_schema, logprobs=soft) as stub:
        _, stats = run_judge(ws, stub, prompt="general-json")
        assert all(body["logprobs"] is True and body["top_logprobs"] == 5 for body in stub.bodies)
    probs = dict(ws.con.execute("SELECT chosen_as, verdict_probs FROM judge_calls").fetchall())
    assert json.loads(probs["A"]) == pytest.approx(
        {"A>>>B": 0, "A>>B": 0.375, "A>B": 0, "A=B": 0.5, "B>A": 0, "B>>A": 0.125, "B>>>A": 0}, abs=1e-12)
    assert json.loads(probs["B"]) == pytest.approx(
        {"A>>>B": 0, "A>>B": 0, "A>B": 0, "A=B": 0, "B>A": 0.5, "B>>A": 0, "B>>>A": 0.5}, abs=1e-12)
    # By hand: A=B (1/2) ties -> 0; A>>B (3/8) with B>A -> min(2, 1) = 1, with B>>>A -> min(2, 3) = 2;
    # B>>A (1/8) against chosen's win in the other order -> inconsistent, 0.  3/8 * (1/2 * 1 + 1/2 * 2) = 0.5625
    level, expected = ws.con.execute("SELECT level, expected_level FROM annotations").fetchone()
    assert (level, stats.state) == (2, "done") and expected == pytest.approx(0.5625, abs=1e-12)


def test_the_expected_level_is_the_hard_level_when_the_judge_is_sure_and_signed_for_a_flip():
    sure = {"B>>A": 1.0}  # rejected (shown as B) wins by 2 in the first order
    assert expected_level(sure, {"A>>B": 1.0}) == -2  # and rejected, shown as A, wins by 2 in the second
    assert expected_level({"A>>>B": 0.5, "A>B": 0.5}, {"B>>>A": 1.0}) == 2.0  # 1/2 * 3 + 1/2 * 1
    assert expected_level({"A>B": 1.0}, None) is None


def test_a_prompt_file_with_a_bad_structured_field_is_refused_in_one_line(tmp_path):
    path = tmp_path / "mine.toml"
    text = load_prompt("general").path.read_text().replace('version = "1"', 'version = "1"\nstructured = "yaml"')
    path.write_text(text)
    with pytest.raises(PrefstudioError, match=r'mine.toml: structured = \'yaml\': expected "text" or "json_schema"$'):
        load_prompt(str(path))


def test_the_soft_label_is_shown_beside_the_hard_level(ws, tmp_path):
    from prefstudio.browse import annotations_for
    from prefstudio.export import export_pairs
    from prefstudio.tui.pair_view import annotations_text

    add_pairs(ws, ["q-soft"])
    with StubOpenAI(soft_answer, logprobs=soft) as stub:
        run_judge(ws, stub, prompt="general-json")
    export_pairs(ws, tmp_path / "out.jsonl")
    row = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert (row["level"], row["expected_level"]) == (2, 0.5625)
    shown = annotations_text(annotations_for(ws.con, 1)).plain
    assert "2 · More effective · margin 0.67 · expected +0.56 · " in shown


def test_the_estimate_bills_a_reasoning_models_hidden_tokens_then_what_its_calls_measured(ws):
    """Output at $1 per million: 2 calls x 1,000 guessed reasoning tokens, then x the 2,500 its calls billed."""
    add_pairs(ws, ["one"])
    priced = {"price_input_per_mtok": 0.0, "price_output_per_mtok": 1.0}
    _, plan = prepare_run(ws, JudgeConfig(model="o4-mini", **priced))
    assert plan.calls_needed == 2 and plan.est_cost_usd == pytest.approx(2 * 1000 / 1e6)
    _, plan = prepare_run(ws, JudgeConfig(model="gpt-4o", **priced))
    assert plan.est_cost_usd == pytest.approx(2 * 60 / 1e6)
    ws.con.execute("INSERT INTO judge_calls (cache_key, model, prompt_version, chosen_as, tokens_out) VALUES "
                   "('k1', 'o4-mini', 'v', 'A', 2000), ('k2', 'o4-mini', 'v', 'B', 3000), "
                   "('k3', 'gpt-4o', 'v', 'A', 0)")  # no answer billed: not a measure
    _, plan = prepare_run(ws, JudgeConfig(model="o4-mini", **priced))
    assert plan.est_cost_usd == pytest.approx(2 * 2500 / 1e6)
    _, plan = prepare_run(ws, JudgeConfig(model="gpt-4o", **priced))
    assert plan.est_cost_usd == pytest.approx(2 * 60 / 1e6)


def test_reparse_gives_the_soft_label_its_calls_keep(ws):
    """Answers stored as a parse error (an older parser), fixed by reparse: the level from the text, the expected
    level from the two calls' distributions in the cache, as the run would have written."""
    from prefstudio.judge.runner import reparse

    add_pairs(ws, ["q-soft"])
    pair_id = ws.con.execute("SELECT id FROM pairs").fetchone()[0]
    probs = {"A": {"A>>>B": 0.5, "A>B": 0.5}, "B": {"B>>>A": 1.0}}  # 1/2 * 3 + 1/2 * 1 = 2.0
    answers = {"A": "Verdict: A>B", "B": "Verdict: B>>>A"}
    for side in "AB":
        ws.con.execute("INSERT INTO judge_calls (cache_key, model, prompt_version, pair_id, chosen_as, response, "
                       "verdict_probs) VALUES (?, 'gpt-4o', 'v#1', ?, ?, ?, ?)",
                       [f"k{side}", pair_id, side, answers[side], json.dumps(probs[side])])
    ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, prompt_version, "
                   "raw_response_ab, raw_response_ba) VALUES (?, 'llm', 'gpt-4o', 'parse_error', 'v#1', ?, ?)",
                   [pair_id, answers["A"], answers["B"]])
    assert reparse(ws.con, ws.config.margins) == (1, 1)
    assert ws.con.execute("SELECT outcome, level, flip, expected_level FROM annotations ORDER BY id DESC LIMIT 1"
                          ).fetchone() == ("label", 1, False, 2.0)
