"""The queue: jobs made, started one after another, cancelled and resumed, with no daemon.

A job's process is detached from whoever started it, so closing the app leaves it
running; when it ends it starts the oldest queued job (process.py). A lock file
serialises "is anything running? then start the next" across processes. A held
job (`train --no-start`, to be run elsewhere: docs/cluster.md) is not in the queue:
nothing starts it but `resume` or running its folder by hand, and a job running on
another host does not hold the local queue up. A job made to run `after` another (a
sweep's scoring job after its training job) stays queued until that one is done; the
queue starts the oldest job that is not waiting.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from prefstudio.errors import PrefstudioError
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import (CANCEL, LAUNCH, LOG, RUNNER_LOCK, STATUS, TMP_PREFIX, is_job, read_launch,
                                   write_config)
from prefstudio.jobs.liveness import describe, visible_here
from prefstudio.jobs.runner_lock import holder
from prefstudio.jobs.status import JobStatus, list_jobs, read_raw, read_status, write_json

ENTRY = "prefstudio.jobs"  # `python -m prefstudio.jobs FOLDER` runs a job (process.py)
QUEUE_LOCK = ".queue.lock"  # in the jobs folder, beside the job folders
FROM_QUEUE_ENV = "PREFSTUDIO_JOB_FROM_QUEUE"  # set for a job the queue started: it starts the next when it ends
ACCELERATE_CONFIG = "accelerate.yaml"  # how a sharded training job is launched on GPUs (train/strategy.py)
ABANDONED_AFTER_S = 3600  # a folder still being made after this long was left by a killed launch


def new_job(ws, kind: str, config: dict, label: str, write_inputs, *, gpus: list[int] | None = None,
            num_processes: int = 1, name: str | None = None, con=None, held: bool = False,
            after: str | None = None) -> JobStatus:
    """A queued job of `kind` (held: made to run elsewhere): its frozen config, the inputs
    `write_inputs(folder)` writes, a row in `jobs`. `after`: the id of a job this one waits for;
    the queue starts it once that one is done. A `sweep` in the config is copied into the status,
    so listing the jobs groups them without reading every config.

    The folder is made whole under a temporary name (TMP_PREFIX) and renamed to its id at the
    end: a failure or a kill -9 on the way leaves no half-made job, only a hidden folder that
    is removed (`remove_abandoned`).
    """
    kinds.get(kind)
    config = {key: value for key, value in config.items() if value is not None}  # TOML has no null: unset is None
    if after is not None and not is_job(ws.jobs_dir / after):
        raise PrefstudioError(f"no job {after!r} in {ws.jobs_dir} to run after")
    con = con or ws.cursor()
    job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{label}-{secrets.token_hex(2)}"
    folder = ws.jobs_dir / job_id
    making = ws.jobs_dir / f"{TMP_PREFIX}{job_id}"
    making.mkdir(parents=True)
    state = "held" if held else "queued"
    now = time.time()
    try:
        write_config(making, config)
        write_inputs(making)
        write_json(making / LAUNCH, {"kind": kind, "gpus": gpus, "num_processes": num_processes})
        linked = {key: value for key, value in (("sweep", config.get("sweep")), ("after", after)) if value}
        write_json(making / STATUS, {"state": state, "created": now, "name": name or job_id, "kind": kind, **linked})
        making.rename(folder)
    except BaseException:
        shutil.rmtree(making, ignore_errors=True)
        raise
    _add_row(con, [job_id, kind, name or job_id, state, json.dumps(config), now])
    return read_status(folder)


def _add_row(con, row: list) -> None:
    """The new job's row in `jobs`. The folder is there from the rename on, so a bring_in in another thread
    (the app's once-a-second read) may have added the row first, from the folder: the same row."""
    import duckdb

    try:
        con.execute("INSERT INTO jobs (id, kind, name, state, config, created_at) "
                    "VALUES (?, ?, ?, ?, ?, to_timestamp(?)::TIMESTAMP) ON CONFLICT (id) DO NOTHING", row)
    except duckdb.Error:  # its insert committed while ours ran
        if not con.execute("SELECT count(*) FROM jobs WHERE id = ?", [row[0]]).fetchone()[0]:
            raise


def remove_abandoned(jobs_dir: Path, older_than: float = ABANDONED_AFTER_S) -> list[Path]:
    """Remove the folders launches killed half-way left (under TMP_PREFIX, untouched for `older_than` s)."""
    removed = []
    for making in jobs_dir.glob(f"{TMP_PREFIX}*") if jobs_dir.is_dir() else []:
        try:
            touched = max([making.stat().st_mtime] + [p.stat().st_mtime for p in making.iterdir()])
            if time.time() - touched > older_than:  # a snapshot still being written is a file still growing
                shutil.rmtree(making)
                removed.append(making)
        except OSError:
            continue  # someone else's, or already gone: tried again at the next open
    return removed


class _QueueLock:
    """Serialises 'is anything running? then start the next' across processes."""

    def __init__(self, jobs_dir: Path):
        self.path = jobs_dir / QUEUE_LOCK

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def command(folder: Path) -> tuple[list[str], dict]:
    """The command line and environment that run the job in `folder`: one process, or several for training
    (GPUs: `accelerate launch`, with the job's accelerate.yaml where its strategy shards; CPU: torchrun, gloo,
    where an fsdp job shards itself: train/strategy.py)."""
    launch = read_launch(folder)
    env = {**os.environ, FROM_QUEUE_ENV: "1"}
    gpus = launch.get("gpus")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    processes = launch.get("num_processes") or (len(gpus) if gpus else 1)
    if not kinds.get(launch.get("kind", kinds.DEFAULT)).data_parallel:
        processes = 1
    if processes > 1 and gpus:  # a sharded job (fsdp, zero2, zero3) brings its own Accelerate config
        own = folder / ACCELERATE_CONFIG
        how = ["--config_file", str(own)] if own.exists() else ["--multi_gpu"]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *how, "--num_processes", str(processes)]
        return cmd + ["-m", ENTRY, str(folder)], env
    if processes > 1:  # several CPU processes (gloo): accelerate's launcher runs only one on the CPU
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        return cmd + ["-m", ENTRY, str(folder)], env
    return [sys.executable, "-m", ENTRY, str(folder)], env


def _spawn(folder: Path) -> int:
    cmd, env = command(folder)
    write_json(folder / STATUS, {**read_raw(folder), "heartbeat": None})  # an earlier run's, maybe on another host
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    status = read_raw(folder)
    status.update(state="running", pid=proc.pid, started=status.get("started") or time.time(), updated=time.time(),
                  message="")
    write_json(folder / STATUS, status)
    return proc.pid


def start_next(jobs_dir: Path) -> JobStatus | None:
    """Start the oldest queued job if none runs on this host; returns it. Held jobs are not in the queue,
    nor are jobs waiting for another that is not done yet."""
    with _QueueLock(jobs_dir):
        jobs = list_jobs(jobs_dir)
        if any(j.state == "running" and not j.elsewhere for j in jobs):
            return None
        queued = [j for j in jobs if j.state == "queued" and not j.waiting and holder(j.folder) is None]
        if not queued:
            return None
        _spawn(queued[0].folder)
        return read_status(queued[0].folder)


def cancel(folder: Path) -> JobStatus:
    status = read_status(folder)
    if status.state in ("queued", "held"):
        write_json(folder / STATUS, {**read_raw(folder), "state": "cancelled", "finished": time.time(),
                                     "message": "cancelled before it started"})
    elif status.state == "running":
        (folder / CANCEL).touch()  # a job on another host sees it at its next heartbeat
        if status.heartbeat is None or visible_here(status.heartbeat):
            try:
                os.killpg(status.pid, signal.SIGTERM)  # the job stops after its current step and saves
            except (ProcessLookupError, PermissionError, TypeError):
                pass
    else:
        raise PrefstudioError(f"job {status.id} is {status.state}; only queued, held or running jobs can be cancelled")
    return read_status(folder)


def resume(folder: Path) -> JobStatus:
    """Queue a failed or cancelled job again (it goes on from its last checkpoint), or a held one to run here."""
    status = read_status(folder)
    if status.state not in ("failed", "cancelled", "held"):
        raise PrefstudioError(f"job {status.id} is {status.state}; only failed, cancelled or held jobs can be resumed")
    if (running := holder(folder)) is not None:
        raise PrefstudioError(f"job {status.id} still has a runner: {describe(running)}; a job runs once: "
                              f"wait for its lock ({folder / RUNNER_LOCK}) to go stale, or cancel it")
    data = read_raw(folder)
    (folder / CANCEL).unlink(missing_ok=True)
    write_json(folder / STATUS, {**data, "state": "queued", "message": "resumed", "pid": None, "finished": None,
                                 "heartbeat": None})
    start_next(folder.parent)
    return read_status(folder)
