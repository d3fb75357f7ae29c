"""A job's name finds it wherever its id does (`eval`, `bon score --rm`, `jobs --follow/--cancel`), and a name
given at launch belongs to no other job of the workspace."""

import pytest

from prefstudio import jobs
from prefstudio.cli import main
from prefstudio.errors import PrefstudioError
from prefstudio.jobs.layout import read_config
from prefstudio.jobs.names import check_new_name, find_job, with_job_id
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from tests.bon_helpers import fake_trained_job, write_jsonl


def held_job(ws, name=None):
    config = make_config({"backbone": "/models/tiny", "batch_size": 6, "max_length": 64})
    return create_training_job(ws, config, name=name, held=True)


def test_a_job_is_found_by_its_id_or_its_name_and_a_shared_name_by_neither(small_ws):
    named = held_job(small_ws, "first try")
    unnamed = held_job(small_ws)
    twins = [held_job(small_ws), held_job(small_ws)]
    for twin in twins:  # as the app names two scorings of one model alike
        raw = jobs.status.read_raw(twin.folder)
        jobs.status.write_json(twin.folder / "status.json", {**raw, "name": "eval x step-5 on test"})
    jobs_dir = small_ws.jobs_dir
    assert find_job(jobs_dir, "first try").id == named.id
    assert find_job(jobs_dir, named.id).id == named.id and find_job(jobs_dir, unnamed.id).id == unnamed.id
    with pytest.raises(PrefstudioError, match=f"job name 'eval x step-5 on test' is shared by 2 jobs "
                                              f"\\({twins[0].id}, {twins[1].id}\\); give one of their ids"):
        find_job(jobs_dir, "eval x step-5 on test")
    with pytest.raises(PrefstudioError) as refused:
        find_job(jobs_dir, "second try", where="ws")
    assert str(refused.value).startswith(f"no job 'second try' in ws (jobs: {named.id} (first try), {unnamed.id}, ")
    assert with_job_id(jobs_dir, "first try@step-5") == f"{named.id}@step-5"
    assert with_job_id(jobs_dir, "first try:step-5") == f"{named.id}:step-5"
    assert with_job_id(jobs_dir, "model:first try") == "model:first try"  # a reward model folder's name stays


def test_a_name_taken_by_another_job_or_with_a_checkpoint_mark_is_refused(small_ws):
    named = held_job(small_ws, "first try")
    for taken, by in (("first try", named.id), (named.id, named.id)):
        with pytest.raises(PrefstudioError, match=f"taken by job {by} in this workspace; choose another name"):
            check_new_name(small_ws.jobs_dir, taken)
    with pytest.raises(PrefstudioError, match="':' and '@' mark a checkpoint"):
        check_new_name(small_ws.jobs_dir, "run@2")
    check_new_name(small_ws.jobs_dir, "second try")  # free


def test_train_refuses_a_taken_name_in_one_line(small_ws, capsys):
    named = held_job(small_ws, "first try")
    small_ws.close()
    assert main(["train", str(small_ws.path), "--backbone", "/models/tiny", "--name", "first try", "--no-start",
                 "--batch-size", "6"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"prefstudio: error: --name 'first try': taken by job {named.id} in this workspace; choose another name")
    assert [j.id for j in jobs.list_jobs(small_ws.jobs_dir)] == [named.id]


def test_jobs_cancels_and_follows_a_job_by_its_name(small_ws, capsys):
    named = held_job(small_ws, "first try")
    small_ws.close()
    assert main(["jobs", str(small_ws.path), "--cancel", "first try"]) == 0
    assert capsys.readouterr().out.strip() == f"{named.id}: cancelled"
    assert main(["jobs", str(small_ws.path), "--follow", "first try"]) == 0
    assert capsys.readouterr().out.startswith(f"{named.id}: cancelled at step 0/0")
    assert main(["jobs", str(small_ws.path), "--follow", "second try"]) == 2
    assert f"no job 'second try' in {small_ws.path} (jobs: {named.id} (first try))" in capsys.readouterr().err


def test_eval_and_bon_score_take_a_jobs_name(small_ws, backbone, tmp_path, capsys):
    trained = fake_trained_job(small_ws, backbone, 1, "rm one")
    small_ws.close()
    records = [{"prompt": "prompt X", "responses": ["aa", "aaaa"]}]
    assert main(["bon", "import", str(small_ws.path), write_jsonl(tmp_path / "c.jsonl", records), "--run", "r"]) == 0
    try:
        assert main(["eval", str(small_ws.path), "rm one"]) == 0
        assert main(["bon", "score", str(small_ws.path), "r", "--rm", "rm one@step-5"]) == 0
        made = [j for j in jobs.list_jobs(small_ws.jobs_dir) if j.id != trained]
        assert [j.kind for j in made] == ["eval", "bon"]
        assert read_config(made[0].folder)["subject"] == trained
        assert [s["job_id"] for s in read_config(made[1].folder)["scorers"]] == [trained]
    finally:
        for job in reversed(jobs.list_jobs(small_ws.jobs_dir)):  # the newest first: nothing left to start
            if job.state in ("queued", "running"):
                jobs.cancel(job.folder)


def test_eval_leaves_a_model_subject_to_its_own_lookup(small_ws, capsys):
    """`eval WS model:NAME` (a reward model scored before) is not a job name: its own refusal, not "no job"."""
    held_job(small_ws, "first try")
    small_ws.close()
    assert main(["eval", str(small_ws.path), "model:nothing"]) == 2
    assert f"no model named 'model:nothing' in {small_ws.path}; score it first" in capsys.readouterr().err
