"""Best-of-N: candidates sampled from a tiny causal LM (and an endpoint, and a file), scored, ranked, stored once."""

import itertools
import json

import duckdb
import pytest

from prefstudio import labels, schema
from prefstudio.bon import job as bon_job
from prefstudio.bon import runs, winrate
from prefstudio.bon.pairs import make_pair
from prefstudio.bon.sampling import SampleConfig, cut_at_stop
from prefstudio.errors import PrefstudioError
from prefstudio.jobs.layout import latest_checkpoint
from prefstudio.train.scoring import score_responses
from prefstudio.workspace import DB_NAME, Workspace
from tests.bon_helpers import fake_trained_job, store_rewards, write_jsonl
from tests.openai_stub import StubOpenAI


@pytest.fixture(scope="session")
def policy(tmp_path_factory):
    """A tiny randomly initialised GPT-2 with its LM head: the policy."""
    from tests.tiny_models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("models") / "policy")


def run_in_process(folder, stop_after=None):
    """What the job process does, here; a cancel once `stop_after` progress reports came."""
    reports = []
    bon_job.run(folder, should_stop=lambda: stop_after is not None and len(reports) > stop_after,
                on_progress=lambda p: reports.append((p.step, p.total)))
    return reports


def table(con, sql):
    return con.execute(sql).fetchall()


# -- schema -----------------------------------------------------------------------------------------------

def test_a_v2_workspace_migrates_to_the_latest_schema_keeping_its_pairs(tmp_path):
    Workspace.init(tmp_path / "w").close()
    (tmp_path / "w" / DB_NAME).unlink()
    con = duckdb.connect(str(tmp_path / "w" / DB_NAME))
    for version in (1, 2):
        for statement in schema.MIGRATIONS[version]:
            con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                "VALUES (1, 's', 'test', 'p', 'c', 'r', 'h')")
    con.close()
    with Workspace.open(tmp_path / "w") as ws:
        assert schema.current_version(ws.con) == max(schema.MIGRATIONS)
        assert ws.count_pairs() == 1
        tables = {r[0] for r in table(ws.con, "SELECT table_name FROM information_schema.tables")}
        assert {"bon_runs", "bon_prompts", "bon_candidates", "bon_scores", "bon_judgements"} <= tables
        runs.create_run(ws.con, "r", origin="file", policy="f")
        assert runs.add_prompts(ws.con, "r", [runs.PromptRow("p", 1, "s")]) == [1]


# -- sampling from a causal LM, scoring, ranking ----------------------------------------------------------

def test_sampled_and_scored_in_one_job_then_ranked(small_ws, backbone, policy):
    rm_a, rm_b = fake_trained_job(small_ws, backbone, 1, "a"), fake_trained_job(small_ws, backbone, 2, "b")
    prompts = runs.select_prompts(small_ws.con, "test/concise", limit=3)
    assert len({p.prompt for p in prompts}) == 3 and all(p.source == "concise" for p in prompts)
    sample = SampleConfig(policy=str(policy), n=4, max_new_tokens=6, batch_size=5, seed=7)
    run_id, job = bon_job.launch_sample(small_ws, "tiny", prompts, sample, [rm_a, rm_b], batch_size=5)
    assert job.kind == "bon" and job.state == "queued"
    reports = run_in_process(job.folder)
    assert reports[-1] == (3 * 4 * 3, 3 * 4 * 3)  # 12 samples, then 12 rewards from each model

    assert bon_job.ingest(small_ws, job.folder, small_ws.cursor()) == 12 + 24
    bon_job.ingest(small_ws, job.folder, small_ws.cursor())  # again: keyed, nothing doubles
    assert table(small_ws.con, "SELECT count(*), count(DISTINCT response) FROM bon_candidates")[0][0] == 12
    assert table(small_ws.con, "SELECT count(*) FROM bon_scores")[0][0] == 24
    (run,) = runs.list_runs(small_ws.con)
    assert (run.id, run.origin, run.n_prompts, run.n_candidates, run.max_n) == ("tiny", "hf", 3, 12, 4)
    assert [s.job_id for s in run.scorers] == [rm_a, rm_b]

    pid, _, prompt = runs.prompt_ids(small_ws.con, "tiny")[0]
    found = runs.candidates(small_ws.con, pid, list(run.scorers))
    assert [c.idx for c in found] == [0, 1, 2, 3]
    assert len({c.response for c in found}) > 1  # sampled, not greedy
    assert all(c.finish in ("stop", "length") and 0 < c.n_tokens <= 6 for c in found)
    # the stored rewards are the checkpoint's own, scored as it scores a pair's side
    checkpoint = latest_checkpoint(small_ws.jobs_dir / rm_a)
    direct = dict(score_responses(checkpoint, [{"key": c.idx, "prompt": prompt, "response": c.response}
                                              for c in found], max_length=64))
    assert [c.rewards[run.scorers[0]] for c in found] == pytest.approx([direct[i] for i in range(4)], abs=1e-5)
    # ranks: 1 for the highest reward; best-of-4 is the rank-1 sample
    rewards = [c.rewards[run.scorers[0]] for c in found]
    ranked = runs.ranks(rewards)
    assert sorted(range(4), key=lambda i: ranked[i]) == sorted(range(4), key=lambda i: -rewards[i])
    assert ranked[winrate.best_index(rewards, 4)] == 1


def test_a_cancelled_sampling_job_resumes_to_what_an_uninterrupted_one_samples(small_ws, policy):
    prompts = runs.select_prompts(small_ws.con, "test", limit=2)
    sample = SampleConfig(policy=str(policy), n=3, max_new_tokens=5, batch_size=2, seed=3)
    _, whole = bon_job.launch_sample(small_ws, "whole", prompts, sample)
    _, broken = bon_job.launch_sample(small_ws, "broken", prompts, sample)
    run_in_process(whole.folder)
    first = run_in_process(broken.folder, stop_after=1)
    assert first[-1][0] < 6
    second = run_in_process(broken.folder)
    assert second[0][0] == first[-1][0] and second[-1] == (6, 6)
    for job in (whole, broken):
        bon_job.ingest(small_ws, job.folder, small_ws.cursor())
    texts = table(small_ws.con, """SELECT p.run_id, p.ord, c.idx, c.response FROM bon_candidates c
                                   JOIN bon_prompts p ON p.id = c.prompt_id ORDER BY p.run_id, p.ord, c.idx""")
    by_run = {run: [t[1:] for t in texts if t[0] == run] for run in ("whole", "broken")}
    assert len(by_run["whole"]) == 6 and by_run["whole"] == by_run["broken"]


def test_sampling_from_an_endpoint_asks_again_when_n_is_ignored(small_ws):
    counter = itertools.count()
    with StubOpenAI(answer=lambda *_: f"reply {next(counter)}\n\nHuman: and more") as stub:
        prompts = runs.select_prompts(small_ws.con, "test", limit=2)
        sample = SampleConfig(policy="stub-model", origin="endpoint", base_url=stub.base_url, n=3, batch_size=2)
        run_id, job = bon_job.launch_sample(small_ws, None, prompts, sample)
        run_in_process(job.folder)
        assert stub.requests == 6  # the stub answers one choice per request, whatever n says
    bon_job.ingest(small_ws, job.folder, small_ws.cursor())
    rows = table(small_ws.con, "SELECT response FROM bon_candidates ORDER BY response")
    assert [r[0] for r in rows] == [f"reply {i}" for i in range(6)]  # cut at the stop string the stub ignored
    assert runs.get_run(small_ws.con, run_id).origin == "endpoint" and run_id.startswith("stub-model-")
    assert "api_key" not in (job.folder / "config.toml").read_text()


def test_stop_strings_end_a_response():
    assert cut_at_stop("Paris.\n\nHuman: and Rome?", ["\n\nHuman:"]) == ("Paris.", True)
    assert cut_at_stop("Paris.", ["\n\nHuman:"]) == ("Paris.", False)


def test_what_cannot_be_sampled_is_said_before_anything_is_made(small_ws, tmp_path, monkeypatch):
    prompts = runs.select_prompts(small_ws.con, "test", limit=1)
    with pytest.raises(PrefstudioError, match="--n 0"):
        bon_job.launch_sample(small_ws, "x", prompts, SampleConfig(policy=str(tmp_path), n=0))
    with pytest.raises(PrefstudioError, match=f"{tmp_path}: not a Hugging Face model folder"):
        bon_job.launch_sample(small_ws, "x", prompts, SampleConfig(policy=str(tmp_path)))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(PrefstudioError, match="OPENAI_API_KEY is not set"):
        bon_job.launch_sample(small_ws, "x", prompts, SampleConfig(policy="gpt-4o-mini", origin="endpoint"))
    with pytest.raises(PrefstudioError, match="no job 'nope'"):
        bon_job.launch_sample(small_ws, "x", prompts, SampleConfig(policy="org/model", n=2), ["nope"])
    with pytest.raises(PrefstudioError, match="--prompts test/nowhere: no pairs there"):
        runs.select_prompts(small_ws.con, "test/nowhere")
    assert runs.list_runs(small_ws.con) == [] and not list(small_ws.jobs_dir.iterdir())


# -- candidates from a file -----------------------------------------------------------------------------

def test_import_from_jsonl_adds_nothing_twice(ws, tmp_path):
    path = write_jsonl(tmp_path / "cands.jsonl", [{"prompt": "p1", "responses": ["a", "b", "c"]},
                                                 {"prompt": "p2", "responses": ["d", ""], "source": "mine"}])
    first = runs.import_jsonl(ws.con, path)
    assert (first.run_id, first.n_new_prompts, first.n_new_candidates) == ("cands", 2, 5)
    again = runs.import_jsonl(ws.con, path)
    assert (again.n_new_prompts, again.n_new_candidates) == (0, 0)
    more = write_jsonl(tmp_path / "more.jsonl", [{"prompt": "p2", "responses": ["d", "", "e"]},
                                                {"prompt": "p3", "responses": ["f"]}])
    grown = runs.import_jsonl(ws.con, more, "cands")
    assert (grown.n_new_prompts, grown.n_new_candidates) == (1, 2)
    assert table(ws.con, """SELECT p.ord, p.prompt, c.idx, c.response FROM bon_candidates c
                            JOIN bon_prompts p ON p.id = c.prompt_id ORDER BY p.ord, c.idx""") == [
        (0, "p1", 0, "a"), (0, "p1", 1, "b"), (0, "p1", 2, "c"), (1, "p2", 0, "d"), (1, "p2", 1, ""),
        (1, "p2", 2, "e"), (2, "p3", 0, "f")]
    clash = write_jsonl(tmp_path / "clash.jsonl", [{"prompt": "p4", "responses": ["g"]},
                                                  {"prompt": "p1", "responses": ["a", "B"]}])
    with pytest.raises(PrefstudioError, match=r"clash.jsonl:2: responses\[1\] differs"):
        runs.import_jsonl(ws.con, clash, "cands")
    assert runs.get_run(ws.con, "cands").n_prompts == 3  # all or nothing: p4 did not come in


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "p", "responses": ["a"]}\nnot json', r"bad.jsonl:2: not JSON"),
    ('{"prompt": 3, "responses": ["a"]}', r"bad.jsonl:1: field 'prompt' must be text"),
    ('{"prompt": "p", "responses": []}', r"bad.jsonl:1: field 'responses' must be a non-empty list"),
    ('{"prompt": "p", "responses": ["a", 2]}', r"bad.jsonl:1: responses\[1\] is int, expected text"),
    ('{"prompt": "p", "responses": ["a"]}\n\n{"prompt": "p", "responses": ["b"]}', r"bad.jsonl:3: the same prompt as line 1"),
    ('[1, 2]', r"bad.jsonl:1: expected an object"),
    ('', r"bad.jsonl: no records"),
])
def test_bad_jsonl_names_the_line_and_the_field(ws, tmp_path, line, message):
    (tmp_path / "bad.jsonl").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(PrefstudioError, match=message):
        runs.import_jsonl(ws.con, tmp_path / "bad.jsonl")
    assert runs.list_runs(ws.con) == []


def test_scoring_a_run_scores_only_what_lacks_a_reward(small_ws, backbone, tmp_path):
    rm = fake_trained_job(small_ws, backbone, 1, "a")
    runs.import_jsonl(small_ws.con, write_jsonl(tmp_path / "r.jsonl", [
        {"prompt": "Human: hi", "responses": ["hello", "hey there", "go away"]}]))
    job = bon_job.launch_score(small_ws, "r", [rm], batch_size=2)
    run_in_process(job.folder)
    assert bon_job.ingest(small_ws, job.folder, small_ws.cursor()) == 3
    assert bon_job.launch_score(small_ws, "r", [rm]) is None  # every candidate has this model's reward
    with pytest.raises(PrefstudioError, match="no best-of-N run 'nope'"):
        bon_job.launch_score(small_ws, "nope", [rm])


# -- a candidate pair for the label queue ---------------------------------------------------------------------

def test_two_candidates_become_a_pair_in_the_label_queue_once(ws, tmp_path):
    runs.import_jsonl(ws.con, write_jsonl(tmp_path / "r.jsonl", [{"prompt": "q", "responses": ["x", "y", "y "]}]))
    scorer = store_rewards(ws.con, "r", "rm", {"q": [0.1, 0.9, 0.5]})
    (pid, _, _), = runs.prompt_ids(ws.con, "r")
    pair_id, new = make_pair(ws, "r", pid, 0, 1, scorer)
    assert new
    row = table(ws.con, f"SELECT source, split, prompt, chosen, rejected, meta FROM pairs WHERE id = {pair_id}")[0]
    assert row[:5] == ("bon:r", "bon", "q", "y", "x")  # the reward model's preference is 'chosen'
    assert json.loads(row[5])["r_chosen"] == 0.9
    assert make_pair(ws, "r", pid, 1, 0, scorer) == (pair_id, False)
    assert pair_id in labels.queue_page(ws.con, "ana", "unlabelled", split="bon")
    with pytest.raises(PrefstudioError, match="same text"):
        make_pair(ws, "r", pid, 1, 2, scorer)  # "y" and "y " are one text
