"""Shared by the sweep and report tests: a sweep of tiny models made, run to its end and brought in."""

from __future__ import annotations

import time

from prefstudio import jobs
from prefstudio.train import sweep

SAFETY_NET_S = 900  # only against a hung job: the wait is for the jobs' own word, a busy machine only slows it

# As small as a run can be and still learn something: a few steps of a tiny model, short texts.
FAST = {"batch_size": 16, "max_length": 32, "epochs": 1.0, "lr": 1e-3, "warmup_ratio": 0.0}


def make_sweep(ws, backbone, objectives=("bt", "adaptive"), seeds=(0, 1), varied=None, *, name=None,
               split="test", **settings) -> sweep.Sweep:
    """A sweep over `backbone` made as `prefstudio sweep` makes it (checked, then made), not started."""
    plan = sweep.plan_sweep({"backbone": str(backbone), **FAST, **settings}, tuple(objectives), tuple(seeds),
                            varied or {}, split=split, name=name)
    configs, _ = sweep.check_sweep(ws, plan)
    sweep.make_sweep(ws, plan, configs)
    return plan


def wait_until_all_end(ws, timeout: float = SAFETY_NET_S) -> list[jobs.JobStatus]:
    """Poll the job folders until no job is queued or running; every job's status then."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = jobs.list_jobs(ws.jobs_dir)
        if not any(s.state in ("queued", "running") and not s.stuck for s in statuses):
            return statuses
        if time.monotonic() > deadline:
            busy = [f"{s.id} {s.state} {s.message}" for s in statuses if s.state in ("queued", "running")]
            raise AssertionError(f"no end after {timeout} s: {busy}")
        time.sleep(0.3)


def finished_sweep(ws, backbone, objectives=("bt", "adaptive"), seeds=(0, 1), varied=None, **settings) -> str:
    """A sweep run to its end in real job processes, its scores brought into `ws` (an open workspace); its id.

    With the defaults, 2 objectives × 2 seeds: four training jobs and four scoring jobs on the test split.
    """
    plan = make_sweep(ws, backbone, objectives, seeds, varied, **settings)
    jobs.start_next(ws.jobs_dir)
    statuses = wait_until_all_end(ws)
    failed = [f"{s.id}: {s.state} {s.message}" for s in statuses if s.sweep == plan.id and s.state != "done"]
    assert not failed, failed
    jobs.bring_in(ws)
    return plan.id
