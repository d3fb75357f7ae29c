"""What a job folder says about its job: state, progress, log; read by the queue, the app and the CLI.

The job process writes its status file; a job whose status says running but whose
process is gone (kill -9, out of memory; elsewhere, a heartbeat gone stale: liveness.py)
reads as failed, or as cancelled if a cancel was asked for, and can be resumed from its
last checkpoint. A done job whose Parquet files are not whole reads as damaged, naming
the file, and is not brought into the workspace. A job made to run after another (a sweep's
scoring job after its training job) says what it waits for, and whether that needs a hand.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from prefstudio.jobs import kinds
from prefstudio.jobs import liveness
from prefstudio.jobs.layout import CANCEL, INGEST_FAILED, INGESTED, LOG, STATUS, is_job
from prefstudio.jobs.parts import damaged_file

# held: made with --no-start to run elsewhere, not in the local queue; damaged: done, but a file it wrote is not whole
STATES = ("held", "queued", "running", "done", "damaged", "failed", "cancelled")
_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


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
    kind: str = kinds.DEFAULT
    heartbeat: dict | None = None  # the job process's latest: host, pid, time (liveness.py)
    sweep: str | None = None  # the sweep the job belongs to (train/sweep.py)
    after: str | None = None  # the job it runs after: the queue starts it once that one is done
    after_state: str | None = None  # read, not stored: that job's state now ("gone" without its folder)

    @property
    def waiting(self) -> bool:
        """Queued, but not startable: the job it runs after is not done."""
        return self.state == "queued" and self.after is not None and self.after_state != "done"

    @property
    def stuck(self) -> bool:
        """Waiting for a job that will not end done by itself: it needs a resume (or is gone)."""
        return self.waiting and self.after_state in ("failed", "cancelled", "damaged", "held", "gone")

    @property
    def elsewhere(self) -> bool:
        """Running on another host (a cluster node): it takes nothing from this machine's queue."""
        return bool(self.heartbeat) and not liveness.on_this_host(self.heartbeat)

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


def write_json(path: Path, data: dict) -> None:
    """Replace `path` whole: a reader never sees half a status."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_raw(folder: Path) -> dict:
    """The status file as written, for changing some of it; {} when there is none."""
    return json.loads((folder / STATUS).read_text()) if (folder / STATUS).exists() else {}


def read_status(folder: Path, *, follow: bool = True) -> JobStatus:
    """`follow`: read the state of the job this one runs after, too (one level: that one's is not read)."""
    try:
        data = json.loads((folder / STATUS).read_text())
    except (OSError, ValueError):
        data = {"state": "failed", "message": f"no readable {STATUS}"}
    if not isinstance(data, dict):
        data = {"state": "failed", "message": f"{STATUS} does not hold a status"}
    status = JobStatus(id=folder.name, folder=folder, **{k: v for k, v in data.items() if k in JobStatus.__dataclass_fields__ and k not in ("id", "folder", "after_state")})
    beat = status.heartbeat if isinstance(status.heartbeat, dict) else None
    if status.state == "running":
        alive = liveness.beat_alive(beat) if beat else liveness.pid_alive(status.pid, folder)
        if alive and status.elsewhere and not status.message:
            status.message = f"running on {liveness.describe(beat)}"
        elif not alive and (folder / CANCEL).exists():  # it was asked to stop, and stopped before it could say so
            status.state = "cancelled"
            status.finished = status.finished or (folder / CANCEL).stat().st_mtime
            status.message = "cancelled; resume goes on from its last checkpoint"
        elif not alive:
            status.state = "failed"
            status.message = (f"no heartbeat from {liveness.describe(beat)}: its process ended without a word; "
                              if beat and not liveness.visible_here(beat) else
                              "the job's process ended without a word (killed?); ") + \
                "resume it to go on from its last checkpoint"
    if status.state == "held" and not status.message:
        status.message = ("not in the local queue (--no-start): run it "
                          + (f"once {status.after} is done, " if status.after else "")
                          + f"with `python -m prefstudio.jobs {folder}` (docs/cluster.md), or resume it to run it here")
    if follow and status.after and status.state == "queued":
        before = folder.parent / str(status.after)
        status.after_state = read_status(before, follow=False).state if is_job(before) else "gone"
        if status.waiting:
            status.message = _waiting_message(status.after, status.after_state)
    if status.state == "done" and (damage := damaged_file(folder)):
        status.state = "damaged"
        kind = kinds.KINDS.get(status.kind)
        waiting = kind is not None and kind.ingester is not None and not (folder / INGESTED).exists()
        status.message = f"damaged: {damage}" + ("; its output stays out of the workspace until it is whole"
                                                  if waiting else "")
    if status.state == "done" and (folder / INGEST_FAILED).exists():
        try:
            why = (folder / INGEST_FAILED).read_text(encoding="utf-8").strip()
        except OSError:
            why = ""
        status.message = f"done, but its output could not be brought into the workspace ({why}); the next open tries again"
    return status


def _waiting_message(after: str, state: str) -> str:
    """What a queued job that runs after `after` waits for, and what it takes when that one cannot end well."""
    return {
        "failed": f"waiting for {after}, which failed: resume it",
        "cancelled": f"waiting for {after}, which was cancelled: resume it",
        "damaged": f"waiting for {after}, which is damaged: see its message",
        "held": f"waiting for {after}, which is held (--no-start): run it elsewhere, or resume it to run it here",
        "gone": f"waiting for {after}, which is not in the jobs folder: cancel this job",
    }.get(state, f"waiting for {after} ({state})")


def list_jobs(jobs_dir: Path) -> list[JobStatus]:
    """Every job in the workspace's jobs folder, oldest first (folders still being made are not jobs yet)."""
    folders = [p for p in jobs_dir.iterdir() if is_job(p)] if jobs_dir.is_dir() else []
    return sorted((read_status(p) for p in folders), key=lambda s: (s.created, s.id))
