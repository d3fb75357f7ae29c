"""How far a job's body has got: what a runner reports, and the job process writes into the status file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    step: int  # steps, pairs or candidates done
    total: int
    loss: float | None  # training only
