"""Reading a training job's metrics file while the job appends to it: only the bytes added since the last look.

A long run's file is never read twice. A resumed job writes again the steps after its
last checkpoint; the newest line of a step wins. A line a crash cut short is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from prefstudio.jobs.layout import METRICS


@dataclass
class MetricsLog:
    """What one job's metrics file said so far (step -> record), and where to go on reading it."""

    offset: int = 0
    by_step: dict[int, dict] = field(default_factory=dict)

    def read_more(self, job_dir: Path) -> bool:
        """Read the complete lines added since the last call; True if there were any."""
        try:
            with open(job_dir / METRICS, "rb") as file:
                if file.seek(0, 2) < self.offset:  # a new file: start over
                    self.offset, self.by_step = 0, {}
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
