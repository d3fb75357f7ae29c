"""Jobs under kills, other hosts, full disks and damaged outputs: each runs once and says what happened.

The helpers below make job folders by hand (no model runs): tests/test_job_runs_once.py uses them too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.bad_input_cases.case import Case, Fault

ELSEWHERE = "elsewhere"  # a host name no test machine has


# -- job folders made by hand ----------------------------------------------------------------------------

def done_eval_job(ws, pair_ids: list[int], subject: str = "raw:hand"):
    """A finished scoring job (no model run): its folder holds one part of rewards."""
    import pyarrow as pa

    from prefstudio import jobs
    from prefstudio.evaluate import scoring_job
    from prefstudio.jobs import kinds, layout
    from prefstudio.jobs.parts import PartWriter

    config = scoring_job.EvalConfig(subject=subject, checkpoint="/nowhere", checkpoint_name="raw")
    job = jobs.new_job(ws, kinds.EVAL, config.model_dump(), kinds.EVAL, lambda folder: None)
    status = json.loads((job.folder / layout.STATUS).read_text())
    (job.folder / layout.STATUS).write_text(json.dumps({**status, "state": "done", "finished": status["created"]}))
    PartWriter(job.folder / scoring_job.PARTS).write(pa.table({
        "pair_id": pa.array(pair_ids, pa.int64()), "r_chosen": pa.array([1.0] * len(pair_ids), pa.float64()),
        "r_rejected": pa.array([0.0] * len(pair_ids), pa.float64())}))
    return job


def cut_in_half(path: Path) -> None:
    """What a full disk or a copy stopped half-way leaves."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def heartbeat(host: str = ELSEWHERE, age: float = 0.0, pid: int = 4242, **more) -> dict:
    """A job process's heartbeat written `age` seconds ago on `host`."""
    return {"host": host, "pidns": "pid:[1]", "pid": pid, "start": "1", "at": time.time() - age, **more}


def write_running(folder: Path, beat: dict) -> None:
    """The status a job process running where `beat` says writes."""
    from prefstudio.jobs import layout

    status = json.loads((folder / layout.STATUS).read_text())
    status.update(state="running", pid=beat["pid"], started=time.time() - 60, step=3, total_steps=10,
                  heartbeat=beat)
    (folder / layout.STATUS).write_text(json.dumps(status))


def write_lock(folder: Path, beat: dict) -> None:
    """The runner lock a runner with this heartbeat holds."""
    from prefstudio.jobs import layout

    (folder / layout.RUNNER_LOCK).write_text(json.dumps({**beat, "token": "theirs"}))


def training_job(ws, **options):
    """A training job made as `prefstudio train` makes it, over a model that is never loaded."""
    from prefstudio.train.config import make_config
    from prefstudio.train.jobs import create_training_job

    return create_training_job(ws, make_config({"backbone": "/models/tiny", "max_length": 48}), **options)


# -- the cases -------------------------------------------------------------------------------------------

def _with_pairs(ws_path: Path):
    from prefstudio.workspace import Workspace
    from tests.eval_helpers import add_pairs

    ws = Workspace.open(ws_path)
    return ws, add_pairs(ws.con, {"alpha": 3, "beta": 2})


def _damaged_and_whole_scoring_jobs(ws_path: Path, file: Path) -> None:
    ws, ids = _with_pairs(ws_path)
    with ws:
        done_eval_job(ws, ids["alpha"] + ids["beta"], subject="raw:whole")
        damaged = done_eval_job(ws, ids["alpha"] + ids["beta"], subject="raw:cut")
    cut_in_half(damaged.folder / "predictions" / "part-000000.parquet")


def _damaged_snapshot(ws_path: Path, file: Path) -> None:
    from prefstudio.jobs import layout
    from prefstudio.workspace import Workspace

    with Workspace.open(ws_path) as ws:
        job = training_job(ws)
    status = json.loads((job.folder / layout.STATUS).read_text())
    (job.folder / layout.STATUS).write_text(json.dumps({**status, "state": "done"}))
    cut_in_half(job.folder / layout.PAIRS)


def _job_on_another_host(age: float):
    def setup(ws_path: Path, file: Path) -> None:
        from prefstudio.workspace import Workspace

        with Workspace.open(ws_path) as ws:
            job = training_job(ws)
        write_running(job.folder, heartbeat(age=age))
        write_lock(job.folder, heartbeat(age=age))

    return setup


def _failed_job_with_a_fresh_lock(ws_path: Path, file: Path) -> None:
    from prefstudio.jobs import layout
    from prefstudio.workspace import Workspace

    with Workspace.open(ws_path) as ws:
        job = training_job(ws)
    status = json.loads((job.folder / layout.STATUS).read_text())
    (job.folder / layout.STATUS).write_text(json.dumps({**status, "state": "failed", "message": "by hand"}))
    write_lock(job.folder, heartbeat())


def _held_job(ws_path: Path, file: Path) -> None:
    from prefstudio.workspace import Workspace

    with Workspace.open(ws_path) as ws:
        training_job(ws, held=True)


def _the_job(ws_path: Path) -> str:
    """The id of the workspace's one job (its placeholder where the page shows the command)."""
    folders = [p.name for p in (ws_path / "jobs").iterdir() if not p.name.startswith(".")] \
        if (ws_path / "jobs").is_dir() else []
    return folders[0] if len(folders) == 1 else "ID"


def _jobs(ws: Path, file: Path) -> list[str]:
    return ["jobs", str(ws)]


def _no_change(ws: Path, file: Path) -> None:
    """The workspace opens; no pairs were meant to change."""


CASES: list[Case] = [
    Case("a done scoring job with a Parquet part cut short", "damaged-part.txt", b"", "is cut short", 0,
         command=_jobs, setup=_damaged_and_whole_scoring_jobs, check=_no_change),
    Case("report over a damaged scoring job and a whole one", "damaged-report.txt", b"",
         "left out: scoring job", 0, check=_no_change, setup=_damaged_and_whole_scoring_jobs,
         command=lambda ws, file: ["report", str(ws), "all", "--out", str(file.parent / "report-out")]),
    Case("a done training job whose pairs snapshot was cut short", "damaged-snapshot.txt", b"",
         "damaged: pairs.parquet is cut short", 0, command=_jobs, setup=_damaged_snapshot, check=_no_change),
    Case("a job running on another host, its heartbeat fresh", "elsewhere-fresh.txt", b"",
         f"running on {ELSEWHERE} (pid 4242", 0, command=_jobs, setup=_job_on_another_host(0), check=_no_change),
    Case("a job on another host whose heartbeat went stale", "elsewhere-stale.txt", b"",
         f"no heartbeat from {ELSEWHERE} (pid 4242", 0, command=_jobs, setup=_job_on_another_host(3600),
         check=_no_change),
    Case("--resume while another host's runner holds the job's lock", "resume-locked.txt", b"",
         f"still has a runner: {ELSEWHERE} (pid 4242", None, setup=_failed_job_with_a_fresh_lock,
         command=lambda ws, file: ["jobs", str(ws), "--resume", _the_job(ws)]),
    Case("a job made with --no-start, listed", "held.txt", b"", "not in the local queue (--no-start)", 0,
         command=_jobs, setup=_held_job, check=_no_change),
]

FAULTS = [
    Fault("the app killed while a job runs", "kill -9 the app, reopen it",
          "the job goes on in its own process; the reopened app shows it",
          "tests/test_faults.py::test_a_job_outlives_a_killed_app_and_the_reopened_app_shows_it"),
    Fault("a full disk while a job writes a checkpoint", "fill the disk at a checkpoint",
          "the job fails with \"disk full at step N, last good checkpoint step-M\" and how to go on; the half-written "
          "checkpoint is removed, the previous one is intact and loads, `jobs` lists the job",
          "tests/test_faults.py::test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_last_checkpoint_stays"),
    Fault("a --no-start job and the local queue", "`train --no-start`, then another job runs to its end",
          "the held job is never started by the queue, a finishing job, `eval` or `train`; `jobs --resume` or "
          "`python -m prefstudio.jobs FOLDER` runs it",
          "tests/test_job_runs_once.py::test_a_held_job_is_started_by_no_queue_and_no_finishing_job"),
    Fault("a job heartbeat from another host", "run the job folder on a cluster node, watch it from the workstation",
          "running while its heartbeat is fresh (6 beats of 10 s), failed naming the host once it is stale; "
          "the local queue is not held up by it and a cancel reaches it through its folder",
          "tests/test_job_runs_once.py::test_a_heartbeat_from_another_host_is_running_while_fresh_then_failed"),
    Fault("two runners on one job folder", "`python -m prefstudio.jobs FOLDER` while the folder's job runs",
          "the second exits at once (exit 2) with one line naming the holder's host, pid and heartbeat; "
          "status.json untouched",
          "tests/test_job_runs_once.py::test_a_second_runner_on_a_running_job_exits_with_one_line"),
    Fault("a train killed while writing its snapshot", "kill -9 `prefstudio train` mid-snapshot",
          "no half job is listed or queued; a new train works; the hidden half folder is removed after an hour",
          "tests/test_job_runs_once.py::test_a_train_killed_while_writing_its_snapshot_leaves_no_half_job"),
    Fault("a damaged job output in the app", "a done scoring job's part cut short, open the Jobs screen",
          "the job shows as damaged with the file named; the app keeps running",
          "tests/test_tui_jobs.py::test_a_damaged_job_shows_damaged_and_the_app_goes_on"),
]

FAULTS += [
    Fault("a sweep's training job fails or is cancelled", "cancel or kill one training job of a sweep",
          "its scoring job stays queued and says \"waiting for JOB, which failed: resume it\"; the queue starts "
          "nothing in its place that waits; once the training job is resumed and done, the scoring job runs and "
          "scores its latest checkpoint",
          "tests/test_sweep.py::test_a_scoring_job_waits_for_its_training_job_and_scores_its_latest_checkpoint"),
]

CASES += [
    Case("--cancel of a sweep that does not exist", "cancel-sweep.txt", b"",
         "no job or sweep 'sw-nope-0000' in", None, setup=_held_job,
         command=lambda ws, file: ["jobs", str(ws), "--cancel", "sw-nope-0000"]),
]


def _named_jobs(*names: str):
    """Held jobs with these names, made as the app names its scoring jobs: a name may repeat there."""
    def setup(ws_path: Path, file: Path) -> None:
        from prefstudio.workspace import Workspace

        with Workspace.open(ws_path) as ws:
            for name in names:
                training_job(ws, held=True, name=name)

    return setup


CASES += [
    Case("train --name that another job of the workspace has", "name-taken.txt", b"",
         "--name 'first try': taken by job", None, setup=_named_jobs("first try"),
         command=lambda ws, file: ["train", str(ws), "--backbone", "/models/tiny", "--name", "first try",
                                   "--no-start"]),
    Case("a job name two jobs share, given where a job id is taken", "name-shared.txt", b"",
         "job name 'twin' is shared by 2 jobs", None, setup=_named_jobs("twin", "twin"),
         command=lambda ws, file: ["jobs", str(ws), "--follow", "twin"]),
    Case("a job name no job has", "name-unknown.txt", b"", "no job 'second try' in", None,
         setup=_named_jobs("first try"), command=lambda ws, file: ["eval", str(ws), "second try"]),
]
