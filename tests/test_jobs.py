"""Jobs as real detached processes: run, queue, cancel, kill -9, resume, fail."""

import json
import os
import signal
import time

import pytest

from prefstudio import demo, jobs
from prefstudio.errors import PrefstudioError
from prefstudio.jobs import layout
from prefstudio.jobs.layout import latest_checkpoint
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job


def config(backbone, **extra):
    return make_config({"backbone": str(backbone), "batch_size": 8, "lr": 1e-3, "max_length": 64,
                        "warmup_ratio": 0.0, **extra})


# Only a safety net against a hung job: tests wait for what a job writes (its status, a checkpoint), never for a
# time, so a busy machine makes them slower, not red.
SAFETY_NET_S = 600


def wait_for(folder, predicate, timeout=SAFETY_NET_S):
    """Poll the job's status until `predicate(status)` holds (it may read the job folder's other files too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.read_status(folder)
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"no sign after {timeout} s; status {jobs.read_status(folder)}; "
                         f"log:\n{jobs.read_status(folder).log_tail()}")


def checkpoint_step(folder):
    saved = latest_checkpoint(folder)
    return int(saved.name.split("-")[1]) if saved else 0


def steps_logged(folder):
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_job_runs_detached_to_done_and_the_queue_chains(small_ws, backbone):
    first = create_training_job(small_ws, config(backbone, epochs=1))
    second = create_training_job(small_ws, config(backbone, objective="more", sampling="balanced", batch_size=6))
    assert (first.state, second.state) == ("queued", "queued")
    started = jobs.start_next(small_ws.jobs_dir)
    assert started.id == first.id and started.state == "running"
    assert jobs.start_next(small_ws.jobs_dir) is None  # one at a time
    done = wait_for(first.folder, lambda s: s.state == "done")
    assert done.step == done.total_steps > 0 and done.loss is not None
    assert latest_checkpoint(first.folder).name == f"step-{done.total_steps}"
    # the first job started the second when it ended
    wait_for(second.folder, lambda s: s.state == "done")
    assert "lambda" in json.loads((second.folder / "metrics.jsonl").read_text().splitlines()[-1])
    states = {s.id: s.state for s in jobs.bring_in(small_ws)}
    assert states == {first.id: "done", second.id: "done"}
    assert dict(small_ws.con.execute("SELECT id, state FROM jobs").fetchall()) == states


def test_cancel_then_resume_goes_on_from_the_checkpoint(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, epochs=8, batch_size=4))
    jobs.start_next(small_ws.jobs_dir)
    wait_for(job.folder, lambda s: s.step >= 3)
    jobs.cancel(job.folder)
    cancelled = wait_for(job.folder, lambda s: s.state == "cancelled")
    saved = latest_checkpoint(job.folder)
    assert saved is not None and int(saved.name.split("-")[1]) == cancelled.step < cancelled.total_steps
    jobs.resume(job.folder)
    done = wait_for(job.folder, lambda s: s.state == "done")
    logged = steps_logged(job.folder)
    assert logged == list(range(1, done.total_steps + 1))  # no step lost, none done twice


def test_kill_9_shows_failed_and_resumes(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, epochs=4, batch_size=4, checkpoint_every=2))
    jobs.start_next(small_ws.jobs_dir)
    # killed once a checkpoint is on disk, and most likely with steps done past it that the resume must redo
    running = wait_for(job.folder, lambda s: s.state == "running" and 0 < checkpoint_step(job.folder) < s.step)
    os.killpg(running.pid, signal.SIGKILL)
    failed = wait_for(job.folder, lambda s: s.state == "failed")
    assert "ended without a word" in failed.message
    resumed_from = checkpoint_step(job.folder)
    assert resumed_from >= 2 and resumed_from % 2 == 0
    jobs.resume(job.folder)
    done = wait_for(job.folder, lambda s: s.state == "done")
    logged = steps_logged(job.folder)
    assert logged[-1] == done.total_steps
    # steps after the last checkpoint were redone after the kill; each step from the checkpoint on appears once
    after = logged[logged.index(resumed_from) + 1:]
    assert after[-(done.total_steps - resumed_from):] == list(range(resumed_from + 1, done.total_steps + 1))


def test_a_failing_job_says_why(small_ws, tmp_path):
    job = create_training_job(small_ws, config(tmp_path / "no-such-model"))
    jobs.start_next(small_ws.jobs_dir)
    failed = wait_for(job.folder, lambda s: s.state == "failed" and s.finished)  # the job's own word
    assert "no-such-model" in failed.message and "not a Hugging Face model folder" in failed.message
    assert "Traceback" in failed.log_tail(200)
    with pytest.raises(PrefstudioError, match="only queued, held or running"):
        jobs.cancel(job.folder)


def test_train_and_jobs_commands(tmp_path, backbone, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 60)
    path, _ = demo.ensure_demo(tmp_path / "ws")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "prefstudio", *args], capture_output=True, text=True,
                              timeout=SAFETY_NET_S)

    bad = cli("train", str(path), "--backbone", str(backbone), "--set", "lr_rate=1")
    assert bad.returncode == 2 and "unknown setting 'lr_rate'" in bad.stderr and bad.stderr.count("\n") == 1
    made = cli("train", str(path), "--backbone", str(backbone), "--objective", "more", "--batch-size", "6",
               "--set", "max_length=64", "--set", "more_loss=adaptive", "--set", "lr=0.001")
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.split()[1].rstrip(":")
    followed = cli("jobs", str(path), "--follow", job_id)
    assert followed.returncode == 0 and f"{job_id}: done" in followed.stdout
    listed = cli("jobs", str(path))
    assert job_id in listed.stdout and "done" in listed.stdout
    frozen = (path / "jobs" / job_id / "config.toml").read_text()
    assert 'objective = "more"' in frozen and 'sampling = "balanced"' in frozen and 'more_loss = "adaptive"' in frozen
    assert cli("jobs", str(path), "--cancel", "nope").stderr.startswith("prefstudio: error: no job 'nope'")


def test_a_cancel_during_start_up_is_recorded_and_the_name_kept(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, epochs=8, batch_size=4), name="baseline bt")
    jobs.start_next(small_ws.jobs_dir)
    jobs.cancel(job.folder)  # before the process has even imported torch
    ended = wait_for(job.folder, lambda s: s.state in ("cancelled", "done", "failed") and s.finished)
    assert ended.state == "cancelled" and (ended.step < ended.total_steps or ended.total_steps == 0)
    assert ended.name == "baseline bt"
    assert small_ws.con.execute("SELECT name FROM jobs WHERE id = ?", [job.id]).fetchone() == ("baseline bt",)


def test_the_log_tail_reads_as_a_terminal_would_show_it(tmp_path):
    (tmp_path / layout.LOG).write_bytes(b"start\n\x1b[31mred warning\x1b[0m\nbar 10%\rbar 50%\rbar 100%\n\n")
    tail = jobs.JobStatus(id="x", folder=tmp_path, state="done").log_tail(5)
    assert tail == "start\nred warning\nbar 100%"


def test_a_job_made_while_another_thread_brings_the_folders_in_is_made_once(small_ws, backbone, monkeypatch):
    """The app reads the job folders every second in a worker: it may add a new job's row (from its folder)
    between the folder's rename and the launch's own insert; the launch must not fail on it."""
    import pathlib

    rename = pathlib.Path.rename

    def rename_then_bring_in(self, target):
        done = rename(self, target)
        with small_ws.cursor() as other:  # another thread's cursor: its transaction commits first
            jobs.bring_in(small_ws, other)
        return done

    monkeypatch.setattr(pathlib.Path, "rename", rename_then_bring_in)
    job = create_training_job(small_ws, config(backbone), name="raced")
    monkeypatch.undo()
    assert small_ws.con.execute("SELECT id, name, state FROM jobs").fetchall() == [(job.id, "raced", "queued")]
