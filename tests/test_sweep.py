"""Sweeps: the grid made exactly, nothing made on a bad value, scoring jobs that wait for their training job,
and a 2-objective × 2-seed sweep of tiny models run to its end in real job processes."""

import json
import subprocess
import sys

import pytest

from prefstudio import jobs
from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import scoring_job
from prefstudio.jobs.layout import CHECKPOINTS, STATUS, TRAINER_STATE, read_config
from prefstudio.train import sweep
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from tests.sweep_helpers import FAST, finished_sweep, make_sweep

NOWHERE = "/models/tiny"  # a backbone no test here loads: these jobs are made, never run


def cli(*args):
    return subprocess.run([sys.executable, "-m", "prefstudio", *args], capture_output=True, text=True, timeout=300)


# -- reading the grid ------------------------------------------------------------------------------------

def test_seeds_objectives_and_values_are_read_as_written():
    assert sweep.parse_seeds("3") == (0, 1, 2) and sweep.parse_seeds(None) == (0, 1, 2)
    assert sweep.parse_seeds("0,1,7") == (0, 1, 7) and sweep.parse_seeds(" 4 ") == (0, 1, 2, 3)
    for bad, said in (("0", "at least one seed"), ("two", "expected a number of seeds"), ("1,1", "given twice"),
                      ("-1,2", "expected a number of seeds"), ("1,,2", "expected a number of seeds")):
        with pytest.raises(PrefstudioError, match=said):
            sweep.parse_seeds(bad)
    assert sweep.parse_objectives("bt, margin") == ("bt", "margin")
    with pytest.raises(PrefstudioError, match="'dpo' is not an objective"):
        sweep.parse_objectives("bt,dpo")
    with pytest.raises(PrefstudioError, match="'bt' is given twice"):
        sweep.parse_objectives("bt,bt")
    fixed, varied = sweep.parse_set(["lr=1e-4,3e-4", "unlabelled=zero,drop", "max_length=64",
                                     'sources=["a","b"]', 'sources2=["a"],["b"]', "template='{prompt}, {response}'"])
    assert fixed == {"max_length": 64, "sources": ["a", "b"], "template": "{prompt}, {response}"}
    assert varied == {"lr": [1e-4, 3e-4], "unlabelled": ["zero", "drop"], "sources2": [["a"], ["b"]]}
    for bad, said in (("seed=1,2", "from --seeds"), ("objective=bt", "from --objective"), ("lr", "KEY=VALUE"),
                      ("lr=1e-4,", "an empty value"), ("lr=1,1", "given twice")):
        with pytest.raises(PrefstudioError, match=said):
            sweep.parse_set([bad])


def test_the_grid_is_every_objective_seed_and_value(small_ws):
    plan = make_sweep(small_ws, NOWHERE, ("bt", "adaptive", "more"), (0, 1), {"lr": [1e-4, 3e-4]}, name="grid",
                      batch_size=6)
    assert plan.id.startswith("sw-grid-") and len(plan.id) == len("sw-grid-") + 4
    made = jobs.list_jobs(small_ws.jobs_dir)
    training = [j for j in made if j.kind == "train"]
    scoring = [j for j in made if j.kind == "eval"]
    assert len(training) == len(scoring) == 12 and all(j.state == "queued" and j.sweep == plan.id for j in made)
    configs = [read_config(j.folder) for j in training]
    # seed by seed, so every cell has a first run before any has a second
    assert [(c["seed"], c["lr"], c["objective"]) for c in configs] == [
        (seed, lr, objective) for seed in (0, 1) for lr in (1e-4, 3e-4) for objective in ("bt", "adaptive", "more")]
    for config in configs:
        assert config["sweep"] == plan.id and config["backbone"] == NOWHERE and config["batch_size"] == 6
        assert config["sampling"] == ("balanced" if config["objective"] == "more" else "multitask")
        assert make_config(config) == make_config({**config, "sweep": None}).model_copy(update={"sweep": plan.id})
    cells = {json.dumps(sweep.cell_of(c), sort_keys=True) for c in configs}
    assert len(cells) == 6 and all(sum(sweep.cell_of(c) == json.loads(cell) for c in configs) == 2 for cell in cells)
    # each training job has its own scoring job, on the test split, waiting for it, checkpoint chosen when it starts
    by_training = {j.after: j for j in scoring}
    assert set(by_training) == {j.id for j in training}
    for job in training:
        waiting = by_training[job.id]
        assert waiting.waiting and waiting.message == f"waiting for {job.id} (queued)"
        config = scoring_job.load_config(waiting.folder)
        assert (config.subject, config.split, config.checkpoint, config.sweep) == (job.id, "test", "", plan.id)
        assert config.max_length == FAST["max_length"]
    assert sweep.sweep_jobs(small_ws.con, plan.id) == [j.id for j in training]
    assert sweep.known_sweeps(small_ws.con) == [plan.id]
    record = sweep.read_record(small_ws.jobs_dir, plan.id)
    assert (record["objectives"], record["seeds"], record["varied"], record["name"]) == (
        ["bt", "adaptive", "more"], [0, 1], {"lr": [1e-4, 3e-4]}, "grid")
    line = sweep.summary(small_ws.jobs_dir, plan.id, made)
    assert line == (f"{plan.id} (grid): 0/24 jobs done · 3 objectives (bt, adaptive, more) × lr 0.0001, 0.0003 = "
                    "6 cells × 2 seeds (0, 1) = 12 training jobs, each scored on 'test'")


def test_a_bad_value_anywhere_in_the_grid_makes_nothing(small_ws):
    def nothing_made():
        assert jobs.list_jobs(small_ws.jobs_dir) == [] and not (small_ws.jobs_dir / "sweeps").exists()
        assert small_ws.con.execute("SELECT count(*) FROM jobs").fetchone() == (0,)

    plan = sweep.plan_sweep({"backbone": NOWHERE, **FAST}, ("bt", "adaptive"), (0, 1), {"lr": [1e-4, -1.0]})
    with pytest.raises(PrefstudioError, match=r"^sweep run bt lr=-1.0 seed 0: lr -1: expected a learning rate above 0"):
        sweep.check_sweep(small_ws, plan)
    nothing_made()
    # a cell the workspace cannot train (margins with no label) is refused as `train` refuses it
    plan = sweep.plan_sweep({"backbone": NOWHERE, **FAST}, ("bt", "margin"), (0,))
    with pytest.raises(PrefstudioError, match=r"^sweep run margin seed 0: objective margin: none of the"):
        sweep.check_sweep(small_ws, plan)
    plan = sweep.plan_sweep({"backbone": NOWHERE, **FAST}, ("bt",), (0,), split="dev")
    with pytest.raises(PrefstudioError, match=r"--split dev: no pairs to score each run on \(splits: test, train\)"):
        sweep.check_sweep(small_ws, plan)
    big = sweep.plan_sweep({"backbone": NOWHERE, **FAST}, ("bt", "adaptive"), tuple(range(101)))
    with pytest.raises(PrefstudioError, match="makes 202 training jobs .* more than 200: .*add --yes"):
        sweep.check_sweep(small_ws, big)
    nothing_made()
    assert len(sweep.check_sweep(small_ws, big, yes=True)[0]) == 202  # checked, still nothing made
    nothing_made()


def test_sweep_and_jobs_commands_group_a_sweep(tmp_path, monkeypatch):
    from prefstudio import demo

    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 20)
    path, _ = demo.ensure_demo(tmp_path / "ws")
    alone = cli("train", str(path), "--backbone", NOWHERE, "--no-start", "--name", "alone")
    bad = cli("sweep", str(path), "--backbone", NOWHERE, "--objective", "bt,adaptive", "--seeds", "2",
              "--set", "lr=1e-4,0", "--no-start")
    assert bad.returncode == 2 and bad.stderr == (
        "prefstudio: error: sweep run bt lr=0 seed 0: lr 0: expected a learning rate above 0, e.g. 9e-6\n")
    made = cli("sweep", str(path), "--backbone", NOWHERE, "--objective", "bt,adaptive", "--seeds", "0,5",
               "--set", "lr=1e-4,3e-4", "--max-length", "32", "--name", "cli", "--no-start")
    assert alone.returncode == 0 and made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    sweep_id = lines[0].split()[1].rstrip(":")
    assert lines[0] == (f"sweep {sweep_id}: 2 objectives (bt, adaptive) × lr 0.0001, 0.0003 = 4 cells × 2 seeds "
                        "(0, 5) = 8 training jobs, each scored on 'test'")
    assert [line.split()[1:] [:3] for line in lines[1:9]] == [
        [objective, f"lr={lr}", "seed"] for seed in (0, 5) for lr in ("0.0001", "0.0003") for objective in ("bt", "adaptive")]
    assert lines[-1].startswith("not started")
    listed = cli("jobs", str(path)).stdout.splitlines()
    assert listed[0].split()[1] == "train" and "alone" not in listed[0]  # the job made alone, first, ungrouped
    assert listed[1] == (f"sweep {sweep_id} (cli): 0/16 jobs done, 16 held · 2 objectives (bt, adaptive) × "
                         "lr 0.0001, 0.0003 = 4 cells × 2 seeds (0, 5) = 8 training jobs, each scored on 'test'")
    members = listed[2:]
    assert len(members) == 16 and all(line.startswith("  ") for line in members)
    assert [line.split()[1] for line in members] == ["train", "eval"] * 8  # each scoring job below its training job
    cancelled = cli("jobs", str(path), "--cancel", sweep_id)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"sweep {sweep_id}: 16 jobs cancelled (0 had")
    states = {(s.sweep, s.state) for s in jobs.list_jobs(path / "jobs")}
    assert states == {(sweep_id, "cancelled"), (None, "held")}  # all of the sweep's, and only those


# -- waiting for the training job ------------------------------------------------------------------------

def _state(job, state: str, **more) -> None:
    status = json.loads((job.folder / STATUS).read_text())
    (job.folder / STATUS).write_text(json.dumps({**status, "state": state, **more}))


def _checkpoint(ws, backbone, job, step: int) -> None:
    """A complete checkpoint of `job`: the backbone with a fresh head, as training would leave one."""
    from prefstudio.train.reward_model import RewardModel, load_tokenizer

    folder = job.folder / CHECKPOINTS / f"step-{step}"
    RewardModel.from_pretrained(backbone).save(folder, load_tokenizer(backbone))
    (folder / TRAINER_STATE).write_bytes(b"")


def test_a_scoring_job_waits_for_its_training_job_and_scores_its_latest_checkpoint(small_ws, backbone):
    from tests.sweep_helpers import wait_until_all_end

    training = create_training_job(small_ws, make_config({"backbone": str(backbone), **FAST}))
    with pytest.raises(PrefstudioError, match="has no checkpoint yet"):  # scoring now needs a checkpoint now
        scoring_job.eval_config(small_ws, training.id)
    config = scoring_job.eval_config(small_ws, training.id, when_done=True)
    with pytest.raises(PrefstudioError, match="needs the job made to run after it"):
        scoring_job.create_eval_job(small_ws, config)
    scoring = scoring_job.create_eval_job(small_ws, config, after=training.id)
    assert scoring.name == f"eval {training.id} latest on test"
    _state(training, "failed", message="by hand")
    waiting = jobs.read_status(scoring.folder)
    assert waiting.state == "queued" and waiting.stuck
    assert waiting.message == f"waiting for {training.id}, which failed: resume it"
    assert jobs.start_next(small_ws.jobs_dir) is None  # the only queued job waits: nothing starts
    with pytest.raises(PrefstudioError, match=f"job {training.id} is failed: this scoring job scores"):
        scoring_job.resolve_checkpoint(scoring.folder, config)  # run by hand, it refuses too
    _state(training, "cancelled")
    assert jobs.read_status(scoring.folder).message == f"waiting for {training.id}, which was cancelled: resume it"
    # the training job resumed and done (by hand here) with two checkpoints: the scoring job starts, takes the latest
    _checkpoint(small_ws, backbone, training, 3)
    _checkpoint(small_ws, backbone, training, 12)
    _state(training, "done")
    ready = jobs.read_status(scoring.folder)
    assert not ready.waiting and ready.message == ""
    assert jobs.start_next(small_ws.jobs_dir).id == scoring.id
    (done,) = [s for s in wait_until_all_end(small_ws) if s.id == scoring.id]
    assert done.state == "done", done.message
    resolved = scoring_job.load_config(scoring.folder)
    assert resolved.checkpoint_name == "step-12" and resolved.checkpoint.endswith(f"{training.id}/checkpoints/step-12")
    jobs.bring_in(small_ws)
    n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    assert small_ws.con.execute("SELECT job_id, checkpoint, count(*) FROM predictions GROUP BY ALL").fetchall() == [
        (training.id, "step-12", n_test)]


def test_a_waiting_job_whose_job_is_gone_says_so_and_a_held_one_stays_held(small_ws):
    training = create_training_job(small_ws, make_config({"backbone": NOWHERE, **FAST}))
    config = scoring_job.eval_config(small_ws, training.id, when_done=True)
    held = scoring_job.create_eval_job(small_ws, config, after=training.id, held=True)
    queued = scoring_job.create_eval_job(small_ws, config, after=training.id)
    _state(training, "done")
    assert jobs.read_status(held.folder).state == "held"
    import shutil

    shutil.rmtree(training.folder)
    gone = jobs.read_status(queued.folder)
    assert gone.stuck and gone.message == f"waiting for {training.id}, which is not in the jobs folder: cancel this job"
    assert jobs.start_next(small_ws.jobs_dir) is None
    with pytest.raises(PrefstudioError, match="no job 'nope'"):
        jobs.new_job(small_ws, "eval", {}, "eval", lambda folder: None, after="nope")


# -- the CI run: a real sweep to its end -----------------------------------------------------------------

def test_a_two_objective_two_seed_sweep_runs_to_four_scored_models(small_ws, backbone):
    sweep_id = finished_sweep(small_ws, backbone)
    statuses = [s for s in jobs.list_jobs(small_ws.jobs_dir) if s.sweep == sweep_id]
    training = {s.id: s for s in statuses if s.kind == "train"}
    scoring = [s for s in statuses if s.kind == "eval"]
    assert len(training) == len(scoring) == 4 and all(s.state == "done" for s in statuses)
    for job in scoring:  # each scoring job started once its training job had ended
        assert job.started >= training[job.after].finished
    assert sweep.sweep_jobs(small_ws.con, sweep_id) == list(training)
    n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    scored = small_ws.con.execute("SELECT job_id, checkpoint, count(*) FROM predictions GROUP BY ALL ORDER BY 1").fetchall()
    assert scored == sorted((job_id, f"step-{job.total_steps}", n_test) for job_id, job in training.items())
    seeds = {(read_config(job.folder)["objective"], read_config(job.folder)["seed"]) for job in training.values()}
    assert seeds == {("bt", 0), ("bt", 1), ("adaptive", 0), ("adaptive", 1)}
