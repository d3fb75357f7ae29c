"""Sync on open: a job that finished while nothing had the workspace open is in the very next command's results.

Each test waits for the job's own word (its status file), never for a time.
"""

import re

import pyarrow as pa
import pyarrow.parquet as pq

from prefstudio import jobs
from prefstudio.cli import main
from prefstudio.evaluate import predictions, scoring_job
from prefstudio.jobs import layout
from prefstudio.workspace import Workspace
from tests.bad_input_cases.jobs import done_eval_job
from tests.bon_helpers import fake_trained_job, write_jsonl
from tests.eval_helpers import add_pairs
from tests.test_jobs import wait_for


def started_job(out: str, path) -> "jobs.JobStatus":
    return jobs.read_status(path / "jobs" / re.search(r"^job (\S+):", out, re.M).group(1))


def test_bon_show_has_the_rewards_of_a_scoring_job_that_ended_after_its_command(tmp_path, backbone, capsys):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        rm = fake_trained_job(ws, backbone, 1, "rm-a")
    records = [{"prompt": "prompt X", "responses": ["aa", "aaaa", "a"]}]
    assert main(["bon", "import", str(path), write_jsonl(tmp_path / "cands.jsonl", records), "--run", "r"]) == 0
    assert main(["bon", "score", str(path), "r", "--rm", rm]) == 0  # started, not followed
    job = started_job(capsys.readouterr().out, path)
    wait_for(job.folder, lambda s: s.state == "done")

    assert main(["bon", "show", str(path), "r", "--prompt", "0"]) == 0  # no `bon list`, no `jobs` before it
    out = capsys.readouterr().out
    assert "rm-a (step-5): reward spread" in out
    assert len(re.findall(r"^--- sample \d  #\d [+-]\d\.\d{4}$", out, re.M)) == 3
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT state FROM jobs WHERE id = ?", [job.id]).fetchone()[0] == "done"


def test_an_eval_job_is_in_the_workspace_once_it_is_opened(tmp_path, backbone, capsys):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        add_pairs(ws.con, {"alpha": 3, "beta": 2})
    assert main(["eval", str(path), "--raw", str(backbone), "--name", "tiny"]) == 0
    job = started_job(capsys.readouterr().out, path)
    wait_for(job.folder, lambda s: s.state == "done")

    with Workspace.open(path) as ws:
        assert [(m.job_id, m.n) for m in predictions.scored_models(ws.con, "test")] == [("raw:tiny", 5)]
        assert ws.con.execute("SELECT state FROM jobs WHERE id = ?", [job.id]).fetchone()[0] == "done"
    assert (job.folder / layout.INGESTED).exists()


def test_a_broken_output_does_not_lock_the_workspace_and_is_tried_again(tmp_path, monkeypatch, capsys):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ids = add_pairs(ws.con, {"alpha": 4})["alpha"]
        job = done_eval_job(ws, ids)
    part = job.folder / scoring_job.PARTS / "part-000000.parquet"
    good = part.read_bytes()
    pq.write_table(pa.table({"something": [1]}), part)  # whole, but not what the ingest reads

    with Workspace.open(path) as ws:  # opens all the same
        assert ws.con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    assert "could not be brought into the workspace" in jobs.read_status(job.folder).message
    assert main(["jobs", str(path)]) == 0
    assert "could not be brought into the workspace" in capsys.readouterr().out

    part.write_bytes(good)
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 4
        assert ws.con.execute("SELECT state FROM jobs WHERE id = ?", [job.id]).fetchone()[0] == "done"
    assert jobs.read_status(job.folder).message == "" and (job.folder / layout.INGESTED).exists()

    calls = []
    monkeypatch.setattr(predictions, "ingest", lambda *args: calls.append(args))
    with Workspace.open(path) as ws:  # nothing new: nothing ingested again
        assert jobs.bring_in(ws)[0].state == "done"
    assert calls == []
