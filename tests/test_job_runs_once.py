"""A job runs once, wherever it runs; a damaged output is said and passed by (issue 14, items 1 and 7).

Held jobs stay out of the queue; a heartbeat from another host reads as running until it is stale;
a second runner finds the folder's lock and leaves; a killed launch leaves no half job; a Parquet
file cut short makes its job "damaged" in `jobs`, `report` and the app, and nothing else stops.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from prefstudio import jobs
from prefstudio.cli import main
from prefstudio.errors import PrefstudioError
from prefstudio.jobs import layout, liveness, queue
from prefstudio.jobs.runner_lock import RunnerLock, holder
from prefstudio.workspace import Workspace
from tests.bad_input_cases.jobs import (ELSEWHERE, cut_in_half, done_eval_job, heartbeat, training_job, write_lock,
                                        write_running)
from tests.eval_helpers import add_pairs
from tests.test_jobs import SAFETY_NET_S, config, wait_for
from prefstudio.train.jobs import create_training_job


def cli(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefstudio", *map(str, args)], capture_output=True, text=True,
                          timeout=SAFETY_NET_S, env={**os.environ, **env})


def status_bytes(job) -> bytes:
    return (job.folder / layout.STATUS).read_bytes()


# -- held jobs ---------------------------------------------------------------------------------------------

def test_a_held_job_is_started_by_no_queue_and_no_finishing_job(small_ws, backbone):
    held = create_training_job(small_ws, config(backbone, epochs=1), held=True)
    queued = create_training_job(small_ws, config(backbone, epochs=1))
    assert (held.state, queued.state) == ("held", "queued")
    assert "not in the local queue (--no-start)" in held.message
    started = jobs.start_next(small_ws.jobs_dir)  # the held job is older, and still not the next
    assert started.id == queued.id
    wait_for(queued.folder, lambda s: s.state == "done")  # its process ended, and looked for the next job
    assert jobs.read_status(held.folder).state == "held" and not (held.folder / layout.LOG).exists()
    assert jobs.start_next(small_ws.jobs_dir) is None
    # `resume` runs it here, on purpose
    assert jobs.resume(held.folder).id == held.id
    assert wait_for(held.folder, lambda s: s.state == "done").step > 0


def test_a_job_run_by_hand_hears_a_cancel_through_its_folder_and_leaves_the_queue_alone(small_ws, backbone):
    by_hand = create_training_job(small_ws, config(backbone, epochs=50, batch_size=4), held=True)
    queued = create_training_job(small_ws, config(backbone, epochs=1))
    with open(by_hand.folder / layout.LOG, "wb") as log:  # as on a cluster node: no queue, no signal from here
        proc = subprocess.Popen([sys.executable, "-m", "prefstudio.jobs", str(by_hand.folder)], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, liveness.INTERVAL_ENV: "0.2"})
    wait_for(by_hand.folder, lambda s: s.state == "running" and s.step >= 1)
    (by_hand.folder / layout.CANCEL).touch()  # what `jobs --cancel` leaves for a job it cannot signal
    assert proc.wait(timeout=SAFETY_NET_S) == 0
    cancelled = jobs.read_status(by_hand.folder)
    assert cancelled.state == "cancelled" and cancelled.step < cancelled.total_steps
    assert jobs.read_status(queued.folder).state == "queued"  # a job run by hand starts nothing here
    assert not (by_hand.folder / layout.RUNNER_LOCK).exists()


# -- heartbeats --------------------------------------------------------------------------------------------

def test_a_heartbeat_from_another_host_is_running_while_fresh_then_failed(ws, monkeypatch):
    job = training_job(ws)
    write_running(job.folder, heartbeat(age=5))
    fresh = jobs.read_status(job.folder)
    assert fresh.state == "running" and fresh.elsewhere
    assert fresh.message.startswith(f"running on {ELSEWHERE} (pid 4242, last heartbeat 5 s ago)")

    # the local queue is not held up by it: another job starts (its process is stubbed here)
    other = training_job(ws)
    spawned = []
    monkeypatch.setattr(queue, "_spawn", lambda folder: spawned.append(folder.name))
    jobs.start_next(ws.jobs_dir)
    assert spawned == [other.id]

    # a cancel cannot signal a process on another host (its pid means nothing here): the folder carries it
    signalled = []
    monkeypatch.setattr(os, "killpg", lambda *args: signalled.append(args))
    jobs.cancel(job.folder)
    assert signalled == [] and (job.folder / layout.CANCEL).exists()
    (job.folder / layout.CANCEL).unlink()

    write_running(job.folder, heartbeat(age=liveness.stale_after() + 1))
    lost = jobs.read_status(job.folder)
    assert lost.state == "failed"
    assert lost.message.startswith(f"no heartbeat from {ELSEWHERE} (pid 4242") and "resume it" in lost.message


def test_a_heartbeat_from_this_host_in_another_pid_namespace_counts_by_its_age(ws):
    job = training_job(ws)
    write_running(job.folder, heartbeat(host=liveness.this_host(), pid=2 ** 22 + 7))  # a pid this namespace lacks
    assert jobs.read_status(job.folder).state == "running"
    write_running(job.folder, heartbeat(host=liveness.this_host(), pid=2 ** 22 + 7, age=liveness.stale_after() + 1))
    assert jobs.read_status(job.folder).state == "failed"


def test_a_dead_process_here_fails_at_once_though_its_heartbeat_is_fresh(ws):
    job = training_job(ws)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_running(job.folder, {**liveness.heartbeat(), "pid": gone.pid, "start": "1"})  # not that process
    failed = jobs.read_status(job.folder)
    assert failed.state == "failed" and "ended without a word" in failed.message
    write_running(job.folder, liveness.heartbeat())  # this very process: alive
    assert jobs.read_status(job.folder).state == "running"


# -- one runner per folder ----------------------------------------------------------------------------------

def test_a_second_runner_on_a_running_job_exits_with_one_line(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, epochs=50, batch_size=4))
    jobs.start_next(small_ws.jobs_dir)
    first = wait_for(job.folder, lambda s: s.state == "running" and s.heartbeat and s.step >= 1)
    before = status_bytes(job)
    second = subprocess.run([sys.executable, "-m", "prefstudio.jobs", str(job.folder)], capture_output=True,
                            text=True, timeout=SAFETY_NET_S)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.count("\n") == 1 and second.stderr.startswith("prefstudio: error: ")
    assert f"this job already has a runner: {liveness.this_host()} (pid {first.heartbeat['pid']}," in second.stderr
    assert "last heartbeat" in second.stderr
    # the status is the first runner's alone: what the second saw, or newer, never the second's pid
    after = json.loads(status_bytes(job))
    assert after["heartbeat"]["pid"] == first.heartbeat["pid"] and after.get("step", 0) >= json.loads(before)["step"]
    jobs.cancel(job.folder)
    wait_for(job.folder, lambda s: s.state == "cancelled")
    assert not (job.folder / layout.RUNNER_LOCK).exists()  # released on the way out


def test_a_second_runner_leaves_the_status_file_as_it_was(ws):
    job = training_job(ws, held=True)
    write_lock(job.folder, heartbeat())  # a runner on another host, beating
    before, mtime = status_bytes(job), (job.folder / layout.STATUS).stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-m", "prefstudio.jobs", str(job.folder)], capture_output=True, text=True,
                          timeout=SAFETY_NET_S)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"already has a runner: {ELSEWHERE} (pid 4242, last heartbeat" in done.stderr
    assert status_bytes(job) == before and (job.folder / layout.STATUS).stat().st_mtime_ns == mtime
    assert not (job.folder / layout.LOG).exists()


def test_resume_is_refused_while_the_lock_is_fresh_and_takes_over_a_stale_one(ws):
    job = training_job(ws)
    status = json.loads(status_bytes(job))
    (job.folder / layout.STATUS).write_text(json.dumps({**status, "state": "failed"}))
    write_lock(job.folder, heartbeat(age=1))
    with pytest.raises(PrefstudioError, match=f"still has a runner: {ELSEWHERE} \\(pid 4242"):
        jobs.resume(job.folder)
    assert jobs.read_status(job.folder).state == "failed"

    write_lock(job.folder, heartbeat(age=liveness.stale_after() + 1))  # the node died: its lock goes stale
    jobs.resume(job.folder)
    # the new runner broke the stale lock and ran (its backbone does not exist: it fails, saying so)
    failed = wait_for(job.folder, lambda s: s.state == "failed" and s.finished)
    assert "/models/tiny" in failed.message
    assert not (job.folder / layout.RUNNER_LOCK).exists()


def test_two_runners_taking_a_stale_lock_at_once_one_wins(tmp_path):
    (tmp_path / layout.RUNNER_LOCK).write_text(json.dumps({**heartbeat(age=3600), "token": "dead"}))
    first, second = RunnerLock(tmp_path), RunnerLock(tmp_path)
    first.acquire()
    with pytest.raises(PrefstudioError, match="already has a runner"):
        second.acquire()
    assert holder(tmp_path)["token"] == first.token
    assert second.refresh() is False and first.refresh() is True
    second.release()  # not its lock: nothing happens
    assert holder(tmp_path)["token"] == first.token
    first.release()
    assert holder(tmp_path) is None and not (tmp_path / layout.RUNNER_LOCK).exists()


# -- a launch killed half-way -------------------------------------------------------------------------------

KILLED_TRAIN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import prefstudio.train.snapshot as snapshot

    real = snapshot.write_snapshot

    def write_then_hang(ws, path, **kw):  # the snapshot half-written, then the kill comes
        real(ws, path, **kw)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        Path(sys.argv[1]).write_text("mid-snapshot")
        time.sleep(600)

    snapshot.write_snapshot = write_then_hang
    from prefstudio.cli import main
    raise SystemExit(main(sys.argv[2:]))
""")


def test_a_train_killed_while_writing_its_snapshot_leaves_no_half_job(tmp_path, backbone):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        add_pairs(ws.con, {"alpha": 30, "beta": 30}, split="train")
    marker = tmp_path / "marker"
    train = ["train", str(path), "--backbone", str(backbone), "--set", "max_length=64", "--no-start"]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_TRAIN, str(marker), *train])
    deadline = time.monotonic() + SAFETY_NET_S
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the train ended before its snapshot"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (half,) = [p for p in (path / "jobs").iterdir() if p.name.startswith(layout.TMP_PREFIX)]

    listed = cli("jobs", path)
    assert listed.returncode == 0 and listed.stdout == "", listed.stdout  # no half job listed, none queued
    made = cli(*train)
    assert made.returncode == 0, made.stderr
    (job,) = jobs.list_jobs(path / "jobs")
    assert job.state == "held" and (job.folder / layout.PAIRS).stat().st_size > 0
    assert half.exists()  # young: it might be a launch still writing
    old = time.time() - queue.ABANDONED_AFTER_S - 60
    for p in [half, *half.iterdir()]:
        os.utime(p, (old, old))
    Workspace.open(path).close()  # opening removes what a killed launch left
    assert not half.exists()
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT id, state FROM jobs").fetchall() == [(job.id, "held")]


def test_a_job_folder_without_its_row_gets_one_on_open(ws):
    job = training_job(ws)
    ws.con.execute("DELETE FROM jobs")  # as if the launch was killed between its rename and its row
    jobs.bring_in(ws)
    assert ws.con.execute("SELECT id, kind, state FROM jobs").fetchall() == [(job.id, "train", "queued")]


# -- damaged outputs ----------------------------------------------------------------------------------------

def test_a_damaged_part_is_one_line_in_jobs_and_report_and_the_others_go_on(tmp_path):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ids = add_pairs(ws.con, {"alpha": 4, "beta": 3})
        every = ids["alpha"] + ids["beta"]
        whole = done_eval_job(ws, every, subject="raw:whole")
        damaged = done_eval_job(ws, every, subject="raw:cut")
    part = damaged.folder / "predictions" / "part-000000.parquet"
    cut_in_half(part)

    assert main(["jobs", str(path)]) == 0  # the open brings the whole one in and passes the damaged one by
    listed = cli("jobs", path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert " done " in lines[whole.id]
    assert " damaged " in lines[damaged.id]
    assert "damaged: predictions/part-000000.parquet is cut short" in lines[damaged.id]

    reported = cli("report", path, "all", "--out", tmp_path / "out")
    assert reported.returncode == 0, reported.stderr
    assert f"left out: scoring job {damaged.id} is damaged: predictions/part-000000.parquet" in reported.stdout
    assert "raw:whole" in reported.stdout and "raw:cut" not in reported.stdout.split("left out")[-1].split("\n", 1)[1]
    with Workspace.open(path) as ws:
        assert ws.con.execute("SELECT DISTINCT job_id FROM predictions").fetchall() == [("raw:whole",)]
        assert dict(ws.con.execute("SELECT id, state FROM jobs").fetchall()) == {whole.id: "done",
                                                                                 damaged.id: "damaged"}


def test_a_damaged_snapshot_or_garbage_is_named_and_a_whole_file_is_not(ws, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefstudio.jobs.parts import damage

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), good)
    assert damage(good) is None
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    assert damage(garbage) == "garbage.parquet is not a Parquet file (18 bytes)"
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-3])
    assert damage(cut).startswith("cut.parquet is cut short (")

    job = training_job(ws)
    status = json.loads(status_bytes(job))
    (job.folder / layout.STATUS).write_text(json.dumps({**status, "state": "done"}))
    assert jobs.read_status(job.folder).state == "done"
    cut_in_half(job.folder / layout.PAIRS)
    read = jobs.read_status(job.folder)
    assert read.state == "damaged" and read.message.startswith("damaged: pairs.parquet is cut short (")
