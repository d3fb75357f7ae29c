"""Reading a training job's metrics file while the job appends to it: only the bytes added since the last look.

A long run's file is never read twice. A resumed job first drops the lines of the steps
after its checkpoint (keep_steps_up_to), which it trains again, so the file holds each step
once; a file written before that rule may hold a step twice, and the newest line of a step
wins. A line a crash cut short is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from prefstudio.jobs.layout import METRICS


@dataclass
class MetricsLog:
    """What one job's metrics file said so far (step -> record), and where to go on reading it."""

    offset: int = 0
    by_step: dict[int, dict] = field(default_factory=dict)
    inode: int = 0  # the file read: a resume replaces it (keep_steps_up_to)

    def read_more(self, job_dir: Path) -> bool:
        """Read the complete lines added since the last call; True if there were any."""
        try:
            with open(job_dir / METRICS, "rb") as file:
                inode = os.fstat(file.fileno()).st_ino
                if inode != self.inode or file.seek(0, 2) < self.offset:  # a new file: start over
                    self.offset, self.by_step, self.inode = 0, {}, inode
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return False
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
                self.by_step[int(record["step"])] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line a crash cut short
        return bool(complete)


def keep_steps_up_to(job_dir: Path, step: int) -> int:
    """Drop the lines of the steps after `step`, the checkpoint a resumed job goes on from; returns how many.

    Those steps are trained, and logged, again. The file is replaced whole (written beside it, then renamed), so
    a kill meanwhile leaves the old file or the new one. What is kept is each step's newest line, in step order.
    """
    path = job_dir / METRICS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.splitlines()
    by_step: dict[int, bytes] = {}
    for line in lines:
        try:
            at = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a line a crash cut short
        if at <= step:
            by_step[at] = line
    kept = [by_step[at] for at in sorted(by_step)]
    if kept == lines and data.endswith(b"\n"):  # else the next line would be glued onto the last
        return 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.write(b"".join(line + b"\n" for line in kept))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return len(lines) - len(kept)
