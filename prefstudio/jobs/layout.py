"""What is where in a job folder, `jobs/<id>/`: the one place that spells its file names.

Every kind of job has its frozen config, a status file, a launch file and a log; a
training job also writes metrics and checkpoints that the app, `eval` and best-of-N
read. A kind's private inputs and outputs (best-of-N's prompts, samples, scores;
scoring's reward parts) are named by that kind's own module.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import tomli_w

# -- every job ---------------------------------------------------------------------------------------
CONFIG = "config.toml"  # the frozen settings; its presence makes a folder a job
STATUS = "status.json"  # state, step, pid, times: written by the job, read by everyone
LAUNCH = "launch.json"  # how to start the process: kind, GPUs, number of processes
LOG = "log.txt"  # the process's stdout and stderr
CANCEL = "cancel.requested"  # a cancel outlives a signal that came too early to be handled
INGESTED = "ingested"  # the job's output is in the workspace database
INGEST_FAILED = "ingest-failed.txt"  # why bringing the output in failed; tried again at the next open
RUNNER_LOCK = ".runner.lock"  # who runs the job now: host, pid, heartbeat (runner_lock.py)
TMP_PREFIX = ".tmp-"  # a job folder being made: renamed to its id once whole, never listed
SWEEPS = "sweeps"  # in the jobs folder: one ID.json per sweep, its grid (train/sweep.py); not a job

# -- what training writes and others read --------------------------------------------------------------
PAIRS = "pairs.parquet"  # the pairs the job reads: training's snapshot, scoring's split
METRICS = "metrics.jsonl"  # one line per training step
TRUNCATION = "truncation.json"  # what max_length cost the pairs (train/truncation.py)
CHECKPOINTS = "checkpoints"  # step-N folders
TRAINER_STATE = "trainer_state.pt"  # in a checkpoint: scheduler, step; written last, so it marks it complete
OPTIMIZER_STATE = "optimizer.pt"  # in the newest checkpoint only: the optimiser's state, twice the model's size


def read_config(job_dir: Path) -> dict:
    """The job's frozen settings; OSError, UnicodeDecodeError or TOMLDecodeError when unreadable."""
    return tomllib.loads((job_dir / CONFIG).read_text(encoding="utf-8"))


def write_config(job_dir: Path, config: dict) -> None:
    """Replace the config whole: a scoring job records the checkpoint it resolved when it started."""
    tmp = job_dir / f".{CONFIG}.tmp"
    tmp.write_text(tomli_w.dumps(config), encoding="utf-8")
    os.replace(tmp, job_dir / CONFIG)


def read_launch(job_dir: Path) -> dict:
    """How to start the job's process (kind, GPUs, processes); {} for a folder made before it existed."""
    return json.loads((job_dir / LAUNCH).read_text()) if (job_dir / LAUNCH).exists() else {}


def is_job(folder: Path) -> bool:
    """A finished job folder: one being made is under a TMP_PREFIX name."""
    return not folder.name.startswith(".") and (folder / CONFIG).is_file()


# -- checkpoints ---------------------------------------------------------------------------------------
def checkpoint_name(step: int) -> str:
    return f"step-{step}"


def checkpoint_dir(job_dir: Path, step: int) -> Path:
    return job_dir / CHECKPOINTS / checkpoint_name(step)


def checkpoint_tmp_dir(job_dir: Path, step: int) -> Path:
    """Where a checkpoint is written before it is renamed: a failed write leaves the older ones whole."""
    return job_dir / CHECKPOINTS / f".{checkpoint_name(step)}.tmp"


def latest_checkpoint(job_dir: Path) -> Path | None:
    """The newest complete checkpoint (one being written is under a .tmp name)."""
    folder = job_dir / CHECKPOINTS
    done = [p for p in folder.glob("step-*") if p.is_dir() and (p / TRAINER_STATE).exists()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)
