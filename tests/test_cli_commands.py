"""The commands no other test runs through main(), the way a user runs them: annotate, agreement,
jobs --cancel / --resume / --follow."""

from prefstudio.cli import main
from prefstudio.config import MarginConfig
from prefstudio.jobs import list_jobs
from prefstudio.labels import add_label
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs
from tests.openai_stub import StubOpenAI

SECRET = "sk-test-SECRET-cli-commands"


def test_annotate_then_agreement_with_a_person(tmp_path, monkeypatch, capsys):
    path = tmp_path / "w"
    with Workspace.init(path) as ws:
        ids = add_pairs(ws.con, {"s": 6})["s"]
        for pair_id in ids[:4]:  # a person agrees with the stub judge's default answer on four pairs
            add_label(ws.con, pair_id, "ana", 3, False, MarginConfig())
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with StubOpenAI() as stub:
        assert main(["annotate", str(path), "--judge", "--base-url", stub.base_url, "--model", "stub-judge",
                     "--yes"]) == 0
        assert stub.n_answered == 2 * 6  # both orders of every pair
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT count(*) FROM annotations WHERE annotator_kind = 'llm'").fetchone()[0] == 6
    assert main(["agreement", str(path), "--a", "human:ana", "--b", "llm:stub-judge"]) == 0
    printed = capsys.readouterr().out
    assert "human:ana vs llm:stub-judge: 4 pairs labelled by both" in printed
    assert "weighted kappa" in printed
    assert main(["agreement", str(path), "--a", "human:ana"]) == 2
    assert capsys.readouterr().err.strip() == "prefstudio: error: give both --a and --b to compare two annotators"


def test_jobs_cancel_resume_and_follow(small_ws, backbone, capsys):
    job = create_training_job(small_ws, make_config({"backbone": str(backbone), "batch_size": 6, "max_length": 32}))
    path = small_ws.path
    small_ws.close()
    assert main(["jobs", str(path), "--cancel", job.id]) == 0
    assert capsys.readouterr().out.strip() == f"{job.id}: cancelled"
    assert main(["jobs", str(path), "--resume", job.id]) == 0
    assert capsys.readouterr().out.strip() in (f"{job.id}: queued", f"{job.id}: running")  # started at once
    assert main(["jobs", str(path), "--follow", job.id]) == 0  # returns when the job has ended
    (done,) = list_jobs(path / "jobs")
    assert done.state == "done" and done.step == done.total_steps > 0
    assert f"{job.id}: done at step {done.step}/{done.total_steps}" in capsys.readouterr().out
    assert main(["jobs", str(path), "--cancel", "nope"]) == 2
    assert "no job 'nope'" in capsys.readouterr().err
