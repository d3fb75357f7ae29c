"""The body of a job process: `python -m prefstudio.jobs JOB_DIR`, alone or under `accelerate launch`.

It runs the job's kind's runner on the folder, writes its progress and end into the
status file, and never opens the workspace database (docs/methods.md, "Jobs and the
workspace database"). When it ends it starts the oldest queued job.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import CANCEL, STATUS, read_launch
from prefstudio.jobs.queue import start_next
from prefstudio.jobs.status import read_raw, write_json


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
    status = read_raw(folder)
    launch = read_launch(folder)

    def write(**changes) -> None:
        if main:
            status.update(changes, updated=time.time())
            write_json(folder / STATUS, status)

    write(state="running", pid=status.get("pid") or os.getpid())
    try:
        runner = kinds.resolve(kinds.get(launch.get("kind", kinds.DEFAULT)).runner)
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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m prefstudio.jobs JOB_DIR", file=sys.stderr)
        return 2
    return run_job(Path(argv[0]))
