"""What a job folder says about its job: state, progress, log; read by the queue, the app and the CLI.

The job process writes its status file; a job whose status says running but whose
process is gone (kill -9, out of memory) reads as failed, or as cancelled if a cancel
was asked for, and can be resumed from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from prefstudio.jobs import kinds
from prefstudio.jobs.layout import CANCEL, INGEST_FAILED, LOG, STATUS, is_job
from prefstudio.jobs.liveness import pid_alive

STATES = ("queued", "running", "done", "failed", "cancelled")
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


def read_status(folder: Path) -> JobStatus:
    try:
        data = json.loads((folder / STATUS).read_text())
    except (OSError, json.JSONDecodeError):
        data = {"state": "failed", "message": f"no readable {STATUS}"}
    status = JobStatus(id=folder.name, folder=folder, **{k: v for k, v in data.items() if k in JobStatus.__dataclass_fields__ and k not in ("id", "folder")})
    if status.state == "running" and not pid_alive(status.pid, folder):
        if (folder / CANCEL).exists():  # it was asked to stop, and stopped before it could say so
            status.state = "cancelled"
            status.finished = status.finished or (folder / CANCEL).stat().st_mtime
            status.message = "cancelled; resume goes on from its last checkpoint"
        else:
            status.state = "failed"
            status.message = ("the job's process ended without a word (killed?); "
                              "resume it to go on from its last checkpoint")
    if status.state == "done" and (folder / INGEST_FAILED).exists():
        try:
            why = (folder / INGEST_FAILED).read_text(encoding="utf-8").strip()
        except OSError:
            why = ""
        status.message = f"done, but its output could not be brought into the workspace ({why}); the next open tries again"
    return status


def list_jobs(jobs_dir: Path) -> list[JobStatus]:
    """Every job in the workspace's jobs folder, oldest first."""
    folders = [p for p in jobs_dir.iterdir() if is_job(p)] if jobs_dir.is_dir() else []
    return sorted((read_status(p) for p in folders), key=lambda s: (s.created, s.id))
