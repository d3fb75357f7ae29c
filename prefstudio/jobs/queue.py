"""The queue: jobs made, started one after another, cancelled and resumed, with no daemon.

A job's process is detached from whoever started it, so closing the app leaves it
running; when it ends it starts the oldest queued job (process.py). A lock file
serialises "is anything running? then start the next" across processes.
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
from prefstudio.jobs.layout import CANCEL, LAUNCH, LOG, STATUS, read_launch, write_config
from prefstudio.jobs.status import JobStatus, list_jobs, read_raw, read_status, write_json

ENTRY = "prefstudio.jobs"  # `python -m prefstudio.jobs FOLDER` runs a job (process.py)
QUEUE_LOCK = ".queue.lock"  # in the jobs folder, beside the job folders


def new_job(ws, kind: str, config: dict, label: str, write_inputs, *, gpus: list[int] | None = None,
            num_processes: int = 1, name: str | None = None, con=None) -> JobStatus:
    """A queued job of `kind`: its frozen config, the inputs `write_inputs(folder)` writes, a row in `jobs`.

    The folder only gets its status file, which makes it a job, once the inputs are written:
    a failure on the way leaves no half-made job in the queue.
    """
    kinds.get(kind)
    con = con or ws.cursor()
    job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{label}-{secrets.token_hex(2)}"
    folder = ws.jobs_dir / job_id
    folder.mkdir(parents=True)
    try:
        write_config(folder, config)
        write_inputs(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    write_json(folder / LAUNCH, {"kind": kind, "gpus": gpus, "num_processes": num_processes})
    now = time.time()
    write_json(folder / STATUS, {"state": "queued", "created": now, "name": name or job_id, "kind": kind})
    con.execute(
        "INSERT INTO jobs (id, kind, name, state, config, created_at) VALUES (?, ?, ?, 'queued', ?, to_timestamp(?)::TIMESTAMP)",
        [job_id, kind, name or job_id, json.dumps(config), now],
    )
    return read_status(folder)


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
    """The command line and environment that run the job in `folder`: one process, or several for training."""
    launch = read_launch(folder)
    env = dict(os.environ)
    gpus = launch.get("gpus")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    processes = launch.get("num_processes") or (len(gpus) if gpus else 1)
    if not kinds.get(launch.get("kind", kinds.DEFAULT)).data_parallel:
        processes = 1
    if processes > 1 and gpus:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
        return cmd + ["-m", ENTRY, str(folder)], env
    if processes > 1:  # several CPU processes (gloo): accelerate's launcher runs only one on the CPU
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        return cmd + ["-m", ENTRY, str(folder)], env
    return [sys.executable, "-m", ENTRY, str(folder)], env


def _spawn(folder: Path) -> int:
    cmd, env = command(folder)
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    status = read_raw(folder)
    status.update(state="running", pid=proc.pid, started=status.get("started") or time.time(), updated=time.time(),
                  message="")
    write_json(folder / STATUS, status)
    return proc.pid


def start_next(jobs_dir: Path) -> JobStatus | None:
    """Start the oldest queued job if none is running; returns it."""
    with _QueueLock(jobs_dir):
        jobs = list_jobs(jobs_dir)
        if any(j.state == "running" for j in jobs):
            return None
        queued = [j for j in jobs if j.state == "queued"]
        if not queued:
            return None
        _spawn(queued[0].folder)
        return read_status(queued[0].folder)


def cancel(folder: Path) -> JobStatus:
    status = read_status(folder)
    if status.state == "queued":
        write_json(folder / STATUS, {**read_raw(folder), "state": "cancelled", "finished": time.time(),
                                     "message": "cancelled before it started"})
    elif status.state == "running":
        (folder / CANCEL).touch()
        try:
            os.killpg(status.pid, signal.SIGTERM)  # the job stops after its current step and saves
        except ProcessLookupError:
            pass
    else:
        raise PrefstudioError(f"job {status.id} is {status.state}; only queued or running jobs can be cancelled")
    return read_status(folder)


def resume(folder: Path) -> JobStatus:
    """Queue a failed or cancelled job again; it goes on from its last checkpoint."""
    status = read_status(folder)
    if status.state not in ("failed", "cancelled"):
        raise PrefstudioError(f"job {status.id} is {status.state}; only failed or cancelled jobs can be resumed")
    data = read_raw(folder)
    (folder / CANCEL).unlink(missing_ok=True)
    write_json(folder / STATUS, {**data, "state": "queued", "message": "resumed", "pid": None, "finished": None})
    start_next(folder.parent)
    return read_status(folder)
