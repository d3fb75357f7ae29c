"""What every command shares: the workspace argument, confirmation, progress, following a job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefstudio.errors import PrefstudioError


def add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="workspace folder")


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PrefstudioError("not asking without a terminal: add --yes to go on without confirmation")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def check_sources(con, wanted: list[str], split: str) -> None:
    known = [row[0] for row in con.execute("SELECT DISTINCT source FROM pairs WHERE split = ? ORDER BY source",
                                           [split]).fetchall()]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise PrefstudioError(f"--source {', '.join(unknown)}: no such source on split {split!r} "
                              f"(sources: {', '.join(known) or 'none'})")


class progress_bar:
    """A rich progress bar on stderr, driven by the core's (position, total) callbacks.

    Where stderr is not a terminal (a pipe, `tee`, a CI or Slurm log) a bar would be noise,
    so a plain line is printed instead once the work has taken PLAIN_EVERY_S seconds, then
    every PLAIN_EVERY_S seconds and whenever the status word changes: a long job shows that it
    is alive, a short one prints nothing more.
    """

    PLAIN_EVERY_S = 10.0

    def __init__(self, description: str, quiet: bool = False):
        self.description = description
        self.quiet = quiet
        self._bar = None

    def __enter__(self):
        if self.quiet:
            return None
        if not sys.stderr.isatty():
            return self._plain_lines()
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TimeRemainingColumn(), TextColumn("{task.fields[status]}"), transient=True)
        self._bar.start()
        task = self._bar.add_task(self.description, total=None, status="")

        def update(position: int, total: int | None, status: str = "") -> None:
            self._bar.update(task, completed=position, total=total, status=status)

        return update

    def _plain_lines(self):
        import time

        started = time.monotonic()
        last = {"at": started, "status": None}

        def update(position: int, total: int | None, status: str = "") -> None:
            now = time.monotonic()
            word = status.split(" ")[0]
            if now - started < self.PLAIN_EVERY_S:  # work this short needs no news, and errors stay one line
                return
            if now - last["at"] < self.PLAIN_EVERY_S and word == last["status"]:
                return
            last.update(at=now, status=word)
            done = f"{position:,}/{total:,} ({position / total:.0%})" if total else f"{position:,}"
            print(f"{self.description}: {done}" + (f" {status}" if status else ""), file=sys.stderr, flush=True)

        return update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def follow_job(job, description: str):
    """Show a background job's progress until it ends; its status when done, else a one-line error."""
    import time

    from prefstudio import jobs
    from prefstudio.jobs.layout import LOG

    with progress_bar(description) as on_progress:
        while (status := jobs.read_status(job.folder)).state in ("queued", "running"):
            if on_progress:
                on_progress(status.step, status.total_steps or None, status.state)
            time.sleep(0.5)
    if status.state != "done":
        raise PrefstudioError(f"job {job.id} {status.state}: {status.message or 'see ' + str(job.folder / LOG)}")
    return status
