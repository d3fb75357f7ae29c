"""Background jobs: a folder each, a process each, one after another.

`jobs/<id>/` holds the frozen config (config.toml), the input snapshot
(pairs.parquet), the log, metrics.jsonl, checkpoints and status.json. The job
process (`python -m prefstudio.train.jobs JOB_DIR`, or under `accelerate
launch` for several GPUs) is detached from whoever started it, so closing the
app leaves it running; it never opens the workspace database (docs/methods.md,
"Jobs and the workspace database"). The queue needs no daemon: a job that ends
starts the oldest queued one. A job
whose process died without a word (kill -9, out of memory) shows as failed
with the end of its log, and can be resumed from its last checkpoint.

Jobs come in kinds: `train`, and kinds that other parts of prefstudio register
in RUNNERS (scoring pairs for evaluation, best-of-N sampling). A kind's runner
is the body of its process; its ingester, if any, is run by whoever holds the
workspace database (the app, the CLI) once the job is done, to bring the job's
output files into the database — exactly once (a marker file says it was done).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tomli_w

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.train.config import TrainConfig, load_config

CONFIG = "config.toml"
STATUS = "status.json"
LOG = "log.txt"
LAUNCH = "launch.json"  # how to start the process: GPUs, number of processes
CANCEL = "cancel.requested"  # a cancel outlives a signal that came too early to be handled
INGESTED = "ingested"  # the job's output is in the workspace database

# kind -> "module:function". A runner is called as runner(folder, should_stop=, on_progress=) in the job
# process; an ingester as ingester(ws, folder, con) by the process that holds the database.
RUNNERS = {"train": "prefstudio.train.jobs:run_training", "eval": "prefstudio.evaluate.scoring_job:run",
           "bon": "prefstudio.bon.job:run"}
INGESTERS = {"eval": "prefstudio.evaluate.predictions:ingest", "bon": "prefstudio.bon.job:ingest"}
_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass
class JobStatus:
    id: str
    folder: Path
    state: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    pid: int | None = None
    created: float = 0.0
    started: float | None = None
    updated: float | None = None
    finished: float | None = None
    message: str = ""
    name: str = ""
    kind: str = "train"

    @property
    def eta_seconds(self) -> float | None:
        if self.state != "running" or not self.started or not self.step or not self.updated:
            return None
        per_step = (self.updated - self.started) / self.step
        return per_step * (self.total_steps - self.step)

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines as a reader sees them: colour codes gone, a redrawn progress bar once."""
        try:
            with open(self.folder / LOG, "rb") as file:
                file.seek(max(0, file.seek(0, 2) - 64 * 1024))  # a long run's log is never read whole
                text = file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        text = _ANSI_ESCAPE.sub("", text)
        shown = [line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                 for line in text.split("\n")]
        while shown and not shown[-1]:
            shown.pop()
        return "\n".join(shown[-lines:])


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _pid_alive(pid: int | None, folder: Path) -> bool:
    """True if `pid` runs, and is this job's process (not a pid reused by another program)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    if not cmdline.strip():
        # Empty: a zombie, or a process just spawned (vfork) whose new arguments the kernel has not set yet.
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    return str(folder).encode() in cmdline or str(folder.resolve()).encode() in cmdline


def read_status(folder: Path) -> JobStatus:
    try:
        data = json.loads((folder / STATUS).read_text())
    except (OSError, json.JSONDecodeError):
        data = {"state": "failed", "message": "no readable status.json"}
    status = JobStatus(id=folder.name, folder=folder, **{k: v for k, v in data.items() if k in JobStatus.__dataclass_fields__ and k not in ("id", "folder")})
    if status.state == "running" and not _pid_alive(status.pid, folder):
        if (folder / CANCEL).exists():  # it was asked to stop, and stopped before it could say so
            status.state = "cancelled"
            status.finished = status.finished or (folder / CANCEL).stat().st_mtime
            status.message = "cancelled; resume goes on from its last checkpoint"
        else:
            status.state = "failed"
            status.message = ("the job's process ended without a word (killed?); "
                              "resume it to go on from its last checkpoint")
    return status


def list_jobs(jobs_dir: Path) -> list[JobStatus]:
    folders = [p for p in jobs_dir.iterdir() if (p / CONFIG).exists()] if jobs_dir.is_dir() else []
    return sorted((read_status(p) for p in folders), key=lambda s: (s.created, s.id))


def create_job(ws, config: TrainConfig, *, gpus: list[int] | None = None, num_processes: int = 1,
               name: str | None = None, con=None) -> JobStatus:
    """Freeze the config and a snapshot of the pairs into a new training job folder, queued.

    `con`: the cursor to use, for a caller in a thread other than the workspace's.
    """
    from prefstudio.train.snapshot import write_snapshot

    con = con or ws.cursor()
    return new_job(ws, "train", config.model_dump(exclude_none=True), f"{config.objective}",
                   lambda folder: write_snapshot(ws, folder / "pairs.parquet", con=con),
                   gpus=gpus, num_processes=num_processes, name=name, con=con)


def new_job(ws, kind: str, config: dict, label: str, write_inputs, *, gpus: list[int] | None = None,
            num_processes: int = 1, name: str | None = None, con=None) -> JobStatus:
    """A queued job of `kind`: its frozen config, the inputs `write_inputs(folder)` writes, a row in `jobs`.

    The folder only gets its status file, which makes it a job, once the inputs are written:
    a failure on the way leaves no half-made job in the queue.
    """
    if kind not in RUNNERS:
        raise PrefstudioError(f"unknown job kind {kind!r} (known: {', '.join(RUNNERS)})")
    con = con or ws.cursor()
    job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{label}-{secrets.token_hex(2)}"
    folder = ws.jobs_dir / job_id
    folder.mkdir(parents=True)
    try:
        (folder / CONFIG).write_text(tomli_w.dumps(config))
        write_inputs(folder)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    _write_json(folder / LAUNCH, {"kind": kind, "gpus": gpus, "num_processes": num_processes})
    now = time.time()
    _write_json(folder / STATUS, {"state": "queued", "created": now, "name": name or job_id, "kind": kind})
    con.execute(
        "INSERT INTO jobs (id, kind, name, state, config, created_at) VALUES (?, ?, ?, 'queued', ?, to_timestamp(?)::TIMESTAMP)",
        [job_id, kind, name or job_id, json.dumps(config), now],
    )
    return read_status(folder)


def sync_jobs(ws, con=None) -> list[JobStatus]:
    """Copy the jobs' states from their folders into the workspace's jobs table; ingest finished outputs."""
    con = con or ws.cursor()
    statuses = list_jobs(ws.jobs_dir)
    for s in statuses:
        con.execute(
            "UPDATE jobs SET state = ?, started_at = to_timestamp(?)::TIMESTAMP, finished_at = to_timestamp(?)::TIMESTAMP WHERE id = ?",
            [s.state, s.started, s.finished, s.id],
        )
        if s.state == "done" and s.kind in INGESTERS and not (s.folder / INGESTED).exists():
            _resolve(INGESTERS[s.kind])(ws, s.folder, con)  # in one transaction, or safe to repeat
            (s.folder / INGESTED).touch()
    return statuses


def _resolve(target: str):
    import importlib

    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


# -- starting, stopping ----------------------------------------------------------------------------

class _QueueLock:
    """Serialises 'is anything running? then start the next' across processes."""

    def __init__(self, jobs_dir: Path):
        self.path = jobs_dir / ".queue.lock"

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _command(folder: Path) -> tuple[list[str], dict]:
    launch = json.loads((folder / LAUNCH).read_text()) if (folder / LAUNCH).exists() else {}
    env = dict(os.environ)
    gpus = launch.get("gpus")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    processes = launch.get("num_processes") or (len(gpus) if gpus else 1)
    if launch.get("kind", "train") != "train":
        processes = 1  # only training runs data-parallel
    if processes > 1 and gpus:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
        return cmd + ["-m", "prefstudio.train.jobs", str(folder)], env
    if processes > 1:  # several CPU processes (gloo): accelerate's launcher runs only one on the CPU
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        return cmd + ["-m", "prefstudio.train.jobs", str(folder)], env
    return [sys.executable, "-m", "prefstudio.train.jobs", str(folder)], env


def _spawn(folder: Path) -> int:
    cmd, env = _command(folder)
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    status = json.loads((folder / STATUS).read_text())
    status.update(state="running", pid=proc.pid, started=status.get("started") or time.time(), updated=time.time(),
                  message="")
    _write_json(folder / STATUS, status)
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
        _write_json(folder / STATUS, {**json.loads((folder / STATUS).read_text()), "state": "cancelled",
                                      "finished": time.time(), "message": "cancelled before it started"})
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
    data = json.loads((folder / STATUS).read_text()) if (folder / STATUS).exists() else {}
    (folder / CANCEL).unlink(missing_ok=True)
    _write_json(folder / STATUS, {**data, "state": "queued", "message": "resumed", "pid": None, "finished": None})
    start_next(folder.parent)
    return read_status(folder)


# -- the job process ---------------------------------------------------------------------------------

def run_job(folder: Path) -> int:
    """The body of a job process; returns its exit status."""
    # First of all: a cancel that comes while torch is still importing must not kill the process unrecorded.
    stop = {"asked": (folder / CANCEL).exists()}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))

    import torch
    from accelerate import PartialState

    folder = folder.resolve()
    # cpu=True where there is no GPU: without it, ranks started by torchrun each think they are alone
    main = PartialState(cpu=not torch.cuda.is_available()).is_main_process
    status = json.loads((folder / STATUS).read_text())
    launch = json.loads((folder / LAUNCH).read_text()) if (folder / LAUNCH).exists() else {}

    def write(**changes) -> None:
        if main:
            status.update(changes, updated=time.time())
            _write_json(folder / STATUS, status)

    write(state="running", pid=status.get("pid") or os.getpid())
    try:
        runner = _resolve(RUNNERS[launch.get("kind", "train")])
        runner(folder, should_stop=lambda: stop["asked"],
               on_progress=lambda p: write(step=p.step, total_steps=p.total, loss=p.loss))
        if stop["asked"]:
            write(state="cancelled", finished=time.time(), message="cancelled; resume goes on from the checkpoint saved on the way out")
        else:
            write(state="done", finished=time.time(), message="")
        code = 0
    except BaseException as exc:  # recorded for the user; the traceback goes to the log
        traceback.print_exc()
        write(state="failed", finished=time.time(), message=first_line(exc) if isinstance(exc, PrefstudioError)
              else f"{type(exc).__name__}: {first_line(exc)}")
        code = 1
    if main:
        sys.stdout.flush()
        start_next(folder.parent)
    return code


def run_training(folder: Path, *, should_stop, on_progress) -> None:
    from prefstudio.train.loop import train

    train(folder, load_config(folder / CONFIG), should_stop=should_stop, on_progress=on_progress)


if __name__ == "__main__":
    raise SystemExit(run_job(Path(sys.argv[1])))
