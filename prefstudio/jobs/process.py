"""The body of a job process: `python -m prefstudio.jobs JOB_DIR`, alone or under `accelerate launch`.

It takes the folder's runner lock (runner_lock.py: a job runs once, wherever it runs), runs
the job's kind's runner on the folder, writes its progress, a heartbeat every few seconds and
its end into the status file, and never opens the workspace database (docs/methods.md, "Jobs
and the workspace database"). A job the local queue started starts the oldest queued job when
it ends; one run by hand (on a cluster: docs/cluster.md) leaves the queue alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.jobs import kinds, liveness
from prefstudio.jobs.layout import CANCEL, STATUS, read_launch
from prefstudio.jobs.queue import FROM_QUEUE_ENV, start_next
from prefstudio.jobs.runner_lock import RunnerLock
from prefstudio.jobs.status import read_raw, write_json


def is_main_rank() -> bool:
    """The process that speaks for the job: rank 0 under torchrun or accelerate, else the only one."""
    return os.environ.get("RANK", "0") == "0"


class Heartbeat:
    """Every `liveness.interval()` seconds: refresh the lock, pick up a cancel file, say it lives in the status."""

    def __init__(self, beat):
        self._beat = beat
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(liveness.interval()):
            try:
                self._beat()
            except OSError as exc:  # a shared disk that hiccups: the next beat tries again
                print(f"heartbeat: {exc}", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def run_job(folder: Path) -> int:
    """The body of a job process; returns its exit status."""
    # First of all: a cancel that comes while torch is still importing must not kill the process unrecorded.
    # Only the main rank reads the cancel file; the others hear of it through the loop's agreed stop.
    main = is_main_rank()
    stop = {"asked": main and (folder / CANCEL).exists(), "lost": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    folder = folder.resolve()
    lock = RunnerLock(folder) if main else None
    if lock is not None:
        try:
            lock.acquire()  # before anything is touched: a second runner leaves the folder as it found it
        except (PrefstudioError, OSError) as exc:
            why = first_line(exc) if isinstance(exc, PrefstudioError) else \
                f"{folder}: cannot take the job's lock ({exc.strerror or exc}); is the folder writable?"
            print(f"prefstudio: error: {why}", file=sys.stderr, flush=True)
            return 2
    try:
        return _run(folder, main, lock, stop)
    finally:
        if lock is not None:
            lock.release()


def _run(folder: Path, main: bool, lock: RunnerLock | None, stop: dict) -> int:
    status = read_raw(folder)
    launch = read_launch(folder)
    if main and _cancel_was_honoured(folder, status):  # a folder cancelled once, now run again by hand
        (folder / CANCEL).unlink(missing_ok=True)
        stop["asked"] = False
    writing = threading.Lock()  # the heartbeat thread writes the status file too

    def write(**changes) -> None:
        if main and not stop["lost"]:
            with writing:
                status.update(changes, updated=time.time())
                write_json(folder / STATUS, status)

    def beat() -> None:
        with writing:
            if stop["lost"]:
                return
            if not lock.refresh():  # broken by a runner that took our silence for death: it owns the folder now
                stop.update(asked=True, lost=True)
                print("prefstudio: this job's lock was taken by another runner; stopping without a word",
                      file=sys.stderr, flush=True)
                return
            if (folder / CANCEL).exists():  # a cancel from another host cannot signal this process
                stop["asked"] = True
            status["heartbeat"] = liveness.heartbeat()
            write_json(folder / STATUS, status)

    # The process group: what a cancel on this host signals (the queue starts each job as its own group).
    write(state="running", pid=os.getpgrp(), started=status.get("started") or time.time(), message="",
          heartbeat=liveness.heartbeat(), finished=None)
    with Heartbeat(beat) if main else contextlib.nullcontext():
        import torch
        from accelerate import PartialState

        # cpu=True where there is no GPU: without it, ranks started by torchrun each think they are alone
        PartialState(cpu=not torch.cuda.is_available())
        try:
            runner = kinds.resolve(kinds.get(launch.get("kind", kinds.DEFAULT)).runner)
            runner(folder, should_stop=lambda: stop["asked"],
                   on_progress=lambda p: write(step=p.step, total_steps=p.total, loss=p.loss))
            if stop["asked"]:
                write(state="cancelled", finished=time.time(),
                      message="cancelled; resume goes on from the checkpoint saved on the way out")
            else:
                write(state="done", finished=time.time(), message="")
            code = 0
        except BaseException as exc:  # recorded for the user; the traceback goes to the log
            traceback.print_exc()
            write(state="failed", finished=time.time(), message=first_line(exc) if isinstance(exc, PrefstudioError)
                  else f"{type(exc).__name__}: {first_line(exc)}")
            code = 1
    if main and not stop["lost"] and os.environ.get(FROM_QUEUE_ENV) == "1":
        sys.stdout.flush()
        if lock is not None:
            lock.release()
        start_next(folder.parent)
    return code


def _cancel_was_honoured(folder: Path, status: dict) -> bool:
    """True if the cancel file is from before the run that ended cancelled, not for this run."""
    try:
        asked = (folder / CANCEL).stat().st_mtime
    except OSError:
        return False
    finished = status.get("finished")
    return status.get("state") == "cancelled" and isinstance(finished, (int, float)) and asked <= finished


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m prefstudio.jobs JOB_DIR", file=sys.stderr)
        return 2
    return run_job(Path(argv[0]))
