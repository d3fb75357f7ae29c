"""Retraining a job on the pairs as they are now (jobs/retrain.py): the child's config is the parent's, it is
linked to its parent, and parent and child are scored on the same test pairs; `prefstudio retrain` makes it."""

import json

import pytest

from prefstudio import jobs
from prefstudio.errors import PrefstudioError
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import STATUS, read_config, read_launch
from prefstudio.jobs.retrain import parent_of, plan_retrain, retrain
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job


def config(backbone, **extra):
    return make_config({"backbone": str(backbone), "objective": "more", "sampling": "balanced", "batch_size": 6,
                        "lr": 1e-3, "max_length": 64, "warmup_ratio": 0.0, "seed": 7, **extra})


def label_some(ws, n: int) -> None:
    """n training pairs get a human label: the new labels a retrain trains on."""
    from prefstudio.labels import add_label

    con = ws.cursor()
    ids = [r[0] for r in con.execute("SELECT id FROM pairs WHERE split = 'train' ORDER BY id LIMIT ?", [n]).fetchall()]
    for pair_id in ids:
        add_label(con, pair_id, "me", 2, False, ws.config.margins)


def test_the_child_has_the_parents_config_and_is_linked_to_it(small_ws, backbone):
    parent = create_training_job(small_ws, config(backbone), name="first", gpus=None, num_processes=1)
    child_id = retrain(small_ws, "first", held=True)
    child = jobs.read_status(small_ws.jobs_dir / child_id)
    assert read_config(child.folder) == read_config(parent.folder)  # exactly, field for field
    assert child.id != parent.id and child.name == "first-r1" and child.kind == kinds.TRAIN
    assert parent_of(child.folder) == parent.id and parent_of(parent.folder) is None
    assert child.state == "held" and read_launch(child.folder) == read_launch(parent.folder)
    scoring = [s for s in jobs.list_jobs(small_ws.jobs_dir) if s.kind == kinds.EVAL]
    assert sorted((read_config(s.folder)["subject"], s.after, read_config(s.folder)["split"]) for s in scoring) == \
        sorted([(parent.id, parent.id, "test"), (child.id, child.id, "test")])
    again = jobs.read_status(small_ws.jobs_dir / retrain(small_ws, child.id, held=True))
    assert again.name == "first-r2" and parent_of(again.folder) == child.id  # not first-r1-r1
    assert len([s for s in jobs.list_jobs(small_ws.jobs_dir) if s.kind == kinds.EVAL]) == 3  # the parent once


def test_a_sweeps_run_retrained_leaves_the_sweep_and_a_queued_child_is_queued(small_ws, backbone):
    parent = create_training_job(small_ws, config(backbone, sweep="sw-x"))
    child_id = retrain(small_ws, parent.id, score=False)
    child = jobs.read_status(small_ws.jobs_dir / child_id)
    assert read_config(child.folder) == {k: v for k, v in read_config(parent.folder).items() if k != "sweep"}
    assert child.state == "queued" and child.sweep is None
    assert json.loads((child.folder / STATUS).read_text())["parent"] == parent.id


def test_the_plan_says_what_will_run_and_counts_the_new_labels(small_ws, backbone):
    create_training_job(small_ws, config(backbone), name="first")
    label_some(small_ws, 5)
    plan = plan_retrain(small_ws)  # the newest training job
    assert plan.parent.name == "first" and plan.labelled_then == 0 and plan.labelled_now == 5
    text = plan.describe()
    assert text.startswith("Retrain first as first-r1: more on gpt2, its settings unchanged (lr 0.001, batch 6")
    assert "162 train pairs, 5 labelled (the parent had 0)" in text
    assert "Then first and first-r1 scored on the 18 test pairs (F6 compares them)" in text


def test_nothing_to_retrain_is_one_line(small_ws):
    with pytest.raises(PrefstudioError, match="no training job in .* to retrain: launch one first"):
        plan_retrain(small_ws)
    with pytest.raises(PrefstudioError, match="no job 'nope'"):
        plan_retrain(small_ws, "nope")


def test_prefstudio_retrain_makes_the_child_from_the_command_line(small_ws, backbone, capsys):
    from prefstudio.cli.main import main

    parent = create_training_job(small_ws, config(backbone), name="first", held=True)
    path = small_ws.path
    small_ws.close()  # the command opens the workspace itself
    assert main(["retrain", str(path), "first", "--no-start", "--no-score"]) == 0
    out = capsys.readouterr().out
    (child,) = [s for s in jobs.list_jobs(path / "jobs") if s.id != parent.id]
    assert child.name == "first-r1" and child.state == "held" and parent_of(child.folder) == parent.id
    assert f"job {child.id} (first-r1): retrain of first -> " in out and "Then " not in out
    assert "not started; run it with: python -m prefstudio.jobs" in out
    assert main(["retrain", str(path), "nope"]) == 2  # one line, no traceback


async def test_t_on_the_label_screen_asks_then_retrains_and_f5_shows_the_child(small_ws, backbone, monkeypatch):
    from textual.widgets import Static

    from prefstudio.tui.app import PrefstudioApp
    from prefstudio.tui.jobs_screen import ConfirmScore, JobsScreen, JobTable
    from prefstudio.tui.label_screen import LabelScreen
    from tests.pilot_helpers import open_screen, settle

    started = []
    monkeypatch.setattr(jobs, "start_next", started.append)  # queued, never trained here
    parent = create_training_job(small_ws, config(backbone), name="first", held=True)
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        assert isinstance(await open_screen(pilot, "f2"), LabelScreen)
        await pilot.press("3")  # a new label
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        question = pilot.app.screen
        assert isinstance(question, ConfirmScore)
        assert question.question.startswith("Retrain first as first-r1: more on gpt2")
        assert "1 labelled (the parent had 0)" in question.question and question.question.endswith("Retrain?")
        assert len(jobs.list_jobs(small_ws.jobs_dir)) == 1  # nothing made before the answer
        await pilot.press("y")
        await settle(pilot)
        assert started == [small_ws.jobs_dir]
        screen = await open_screen(pilot, "f5")
        assert isinstance(screen, JobsScreen)
        await settle(pilot)
        rows = screen.query_one(JobTable).rows
        child = next(row for row in rows if row[6] == "first-r1")
        assert child[0] == "queued" and child[5] == "more"
        screen.query_one(JobTable).move_cursor(rows.index(child))
        await settle(pilot)
        assert screen.query_one("#job-sweep", Static).visual.plain.startswith("retrain of first")
    (made,) = [s for s in jobs.list_jobs(small_ws.jobs_dir) if s.name == "first-r1"]
    assert parent_of(made.folder) == parent.id


def write_parent_link(jobs_dir, child: str, parent: str) -> None:
    """A job folder with just a status that names its parent: all parent_and_child reads."""
    (jobs_dir / child).mkdir(parents=True)
    (jobs_dir / child / STATUS).write_text(json.dumps({"state": "done", "parent": parent}))


def test_parent_and_child_pairs_a_retrain_with_its_parent_either_way(tmp_path):
    from prefstudio.jobs.retrain import parent_and_child

    for child in ("20250102-b", "20250103-c"):
        write_parent_link(tmp_path, child, "20250101-a")
    scored = ["raw:tiny", "20250101-a", "20250102-b", "20250103-c", "20250104-d"]
    assert parent_and_child(tmp_path, scored, "20250102-b") == ("20250101-a", "20250102-b")
    assert parent_and_child(tmp_path, scored, "20250101-a") == ("20250101-a", "20250103-c")  # its newest retrain
    assert parent_and_child(tmp_path, scored[:3], "20250101-a") == ("20250101-a", "20250102-b")
    assert parent_and_child(tmp_path, scored, "20250104-d") is None
    assert parent_and_child(tmp_path, ["20250102-b"], "20250102-b") is None  # the parent is not scored


async def test_p_on_the_evaluate_screen_picks_a_child_and_its_parent_alone(ws):
    from prefstudio.tui.app import PrefstudioApp
    from prefstudio.tui.eval_screen import EvalScreen
    from tests.eval_helpers import add_pairs, store_model
    from tests.pilot_helpers import open_screen, settle

    ids = add_pairs(ws.con, {"alpha": 10})["alpha"]
    store_model(ws.con, "20250101-a", ids, [1.0] * 10, name="first")
    store_model(ws.con, "20250102-b", ids, [2.0] * 10, name="first-r1")
    store_model(ws.con, "20250103-x", ids, [-1.0] * 10, name="other")
    write_parent_link(ws.jobs_dir, "20250102-b", "20250101-a")
    async with PrefstudioApp(ws).run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        assert isinstance(screen, EvalScreen) and len(screen.picked) == 3  # every model at first
        row = [m.job_id for m in screen.shown].index("20250102-b")
        screen.query_one("#eval-table").move_cursor(row)
        await pilot.press("p")
        await settle(pilot)
        assert screen.picked == {("20250101-a", "step-10"), ("20250102-b", "step-10")}
        assert [r.model.job_id for r in screen.comparison.results] == ["20250101-a", "20250102-b"]
        row = [m.job_id for m in screen.shown].index("20250103-x")
        screen.query_one("#eval-table").move_cursor(row)
        await pilot.press("p")
        await settle(pilot)
        assert len(screen.picked) == 2  # unchanged: that model has no parent nor retrain
        assert any("no retrain of this model" in str(n.message) for n in pilot.app._notifications)
