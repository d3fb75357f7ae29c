"""Data parallelism on two CPU processes (torchrun, gloo): MORE agrees across ranks."""

import json
import os
import subprocess
import sys
import time

import torch

from prefstudio import demo, jobs
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.loop import more_objective
from prefstudio.workspace import Workspace
from tests import ddp_more_check as check
from tests.tiny_models import tiny_gpt2


def launch(*args, timeout=600):  # only a limit against a hang
    """torchrun with gloo: `accelerate launch --cpu` would start a single process."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_more_lambda_is_the_same_on_both_ranks_and_as_one_process(tmp_path):
    done = launch("tests/ddp_more_check.py", str(tmp_path))
    if done.returncode != 0:  # once: two processes meeting over gloo on a busy 2-core machine can time out
        done = launch("tests/ddp_more_check.py", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["lambda"] == r1["lambda"]
    # one process on the union of both ranks' batches: per source, rank 0's pairs then rank 1's
    chosen, rejected = check.batch_of(0)
    union_c = torch.cat([chosen[0], chosen[1]], dim=1).reshape(-1, check.HIDDEN)
    union_r = torch.cat([rejected[0], rejected[1]], dim=1).reshape(-1, check.HIDDEN)
    pooled = torch.cat([union_c, union_r])
    w = check.head()
    rewards = (pooled @ w.T).squeeze(-1)
    n = union_c.shape[0]
    config = make_config({"backbone": "unused", "objective": "more", "sampling": "balanced", "batch_size": n})
    loss, lam, _, _ = more_objective(rewards[:n] - rewards[n:], pooled, torch.zeros(n), check.K, w, config, None)
    assert lam.tolist() == pytest_approx(r0["lambda"])
    assert (r0["loss"] + r1["loss"]) / 2 == pytest_approx(loss.item())


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-5, abs=1e-6)  # the all-reduce runs in float32


def test_a_job_runs_unchanged_on_two_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 60)
    path, _ = demo.ensure_demo(tmp_path / "ws")
    backbone = tiny_gpt2(tmp_path / "gpt2")
    with Workspace.open(path) as ws:
        job = create_training_job(ws, make_config({"backbone": str(backbone), "objective": "more",
                                                   "sampling": "balanced", "batch_size": 6, "lr": 1e-3,
                                                   "max_length": 64}), num_processes=2)
        jobs.start_next(ws.jobs_dir)
    deadline = time.monotonic() + 600  # only a limit against a hang: the loop waits for the job's state
    while jobs.read_status(job.folder).state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
    status = jobs.read_status(job.folder)
    assert status.state == "done", status.log_tail(40)
    steps = [json.loads(line) for line in (job.folder / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, status.total_steps + 1))  # one writer: rank 0
    assert steps[0]["processes"] == 2
    assert all(abs(sum(s["lambda"].values()) - 1) < 1e-5 for s in steps)
