"""Faults a real user meets: a killed import, a killed app with a job running, a full disk at a checkpoint."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefstudio import ingest, jobs
from prefstudio.jobs import layout
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.reward_model import RewardModel
from prefstudio.workspace import Workspace
from tests.test_jobs import wait_for


def workspace_state(path):
    with Workspace.open(path) as ws:
        return (ws.con.execute("SELECT count(*), coalesce(sum(hash(content_hash)), 0) FROM pairs").fetchone(),
                ws.con.execute("SELECT count(*) FROM import_batches").fetchone()[0])


def read_offset(pid, path):
    """How far process `pid` has read `path`: its open file's offset (0 until it has the file open)."""
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            if os.readlink(fd) == str(path):
                return int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("pos:")[1].split()[0])
        except (OSError, IndexError, ValueError):  # an fd closed meanwhile
            continue
    return 0


def test_kill_9_during_an_import_leaves_the_workspace_as_it_was(tmp_path):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                             for i in range(10)))
    with open(big, "w") as out:
        for i in range(8 * ingest.CHUNK_ROWS):
            out.write(json.dumps({"prompt": f"question {i} " * 3, "chosen": f"a fine answer {i} " * 4,
                                  "rejected": f"a poor answer {i} " * 4}) + "\n")
    cli = [sys.executable, "-m", "prefstudio", "import", str(path)]
    assert subprocess.run([*cli, str(small)], capture_output=True).returncode == 0
    before = workspace_state(path)

    importing = subprocess.Popen([*cli, str(big)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Well into the file: past 4 of its 8 chunks of ingest.CHUNK_ROWS rows, the reader (at most 2 chunks ahead of
    # the inserts) has handed 2 to be inserted, so rows are in the open transaction. A limit only against a hang.
    size, deadline = big.stat().st_size, time.monotonic() + 600
    while read_offset(importing.pid, big.resolve()) < 0.55 * size and importing.poll() is None:
        assert time.monotonic() < deadline, "the import read nothing for 10 minutes"
        time.sleep(0.02)
    assert importing.poll() is None, "the import ended before it could be killed; make the file bigger"
    importing.send_signal(signal.SIGKILL)
    importing.wait()

    assert workspace_state(path) == before  # nothing half-imported, the earlier pairs all there
    again = subprocess.run([*cli, str(small)], capture_output=True, text=True)
    assert again.returncode == 0 and "imported 0 pairs, 10 already present" in again.stdout


def test_a_job_outlives_a_killed_app_and_the_reopened_app_shows_it(small_ws, backbone):
    path = small_ws.path
    config = {"backbone": str(backbone), "batch_size": 8, "lr": 1e-3, "max_length": 64, "epochs": 2}
    small_ws.close()
    app = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from prefstudio import jobs
        from prefstudio.train.jobs import create_training_job
        from prefstudio.train.config import make_config
        from prefstudio.tui.app import PrefstudioApp
        from prefstudio.workspace import Workspace
        ws = Workspace.open({str(path)!r})
        job = create_training_job(ws, make_config({config!r}), name="survivor")
        jobs.start_next(ws.jobs_dir)
        print(job.id, flush=True)
        PrefstudioApp(ws).run(headless=True)
    """)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    job_id = app.stdout.readline().strip()
    folder = path / "jobs" / job_id
    wait_for(folder, lambda s: s.state == "running" and s.step > 0)
    app.send_signal(signal.SIGKILL)
    app.wait()
    assert jobs.read_status(folder).state == "running"  # the job is its own process
    done = wait_for(folder, lambda s: s.state == "done")
    assert done.step == done.total_steps
    with Workspace.open(path) as ws:  # the app's lock went with it
        assert {s.id: s.state for s in jobs.bring_in(ws)} == {job_id: "done"}
        assert ws.con.execute("SELECT name, state FROM jobs").fetchall() == [("survivor", "done")]


# A job process whose disk fills once its first checkpoint is on disk: from then on no file may grow past `limit`
# bytes (RLIMIT_FSIZE, which any user may lower), so every later write past it really fails in the kernel (EFBIG).
FILLS_AFTER_THE_FIRST_CHECKPOINT = """
import resource, signal, sys
from prefstudio.jobs.process import main
from prefstudio.train import loop

save = loop.save_checkpoint

def then_the_disk_fills(*args, **kwargs):
    saved = save(*args, **kwargs)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    return saved

loop.save_checkpoint = then_the_disk_fills
raise SystemExit(main(sys.argv[1:2]))
"""


def disk_config(backbone):
    """6 steps of the small demo workspace, a checkpoint every 2: the disk fills after step-2, at step 4."""
    return make_config({"backbone": str(backbone), "batch_size": 8, "lr": 1e-3, "max_length": 64,
                        "warmup_ratio": 0.0, "checkpoint_every": 2, "epochs": 0.3})


def model_bytes(backbone):
    return (backbone / "model.safetensors").stat().st_size


def checkpoint_names(folder):
    return sorted(p.name for p in (folder / layout.CHECKPOINTS).iterdir())


# The model file (safetensors: a SafetensorError) or the optimiser's state (torch's zip writer: a RuntimeError, no
# errno) is the first file that no longer fits: the optimiser's state is twice the model's size.
@pytest.mark.parametrize("limit", [lambda m: m // 2, lambda m: m * 3 // 2], ids=["model-file", "optimiser-file"])
def test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_last_checkpoint_stays(small_ws, backbone, limit):
    job = create_training_job(small_ws, disk_config(backbone))
    small_ws.close()
    with open(job.folder / layout.LOG, "ab") as log:
        ran = subprocess.run([sys.executable, "-c", FILLS_AFTER_THE_FIRST_CHECKPOINT, str(job.folder),
                              str(limit(model_bytes(backbone)))], stdout=log, stderr=subprocess.STDOUT, timeout=600)
    failed = jobs.read_status(job.folder)
    assert ran.returncode == 1 and failed.state == "failed", failed.log_tail()
    assert failed.message.startswith("disk full at step 4, last good checkpoint step-2 (")
    assert "resume" in failed.message and "\n" not in failed.message
    assert checkpoint_names(job.folder) == ["step-2"]  # the half-written .step-4.tmp is gone
    kept = layout.latest_checkpoint(job.folder)
    assert kept.name == "step-2" and (kept / layout.OPTIMIZER_STATE).is_file()
    assert RewardModel.from_pretrained(kept).pooling == "last"  # whole
    listed = subprocess.run([sys.executable, "-m", "prefstudio", "jobs", str(small_ws.path)], capture_output=True,
                            text=True, timeout=600)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert "failed" in listed.stdout and "disk full at step 4, last good checkpoint step-2" in listed.stdout


def test_a_really_full_file_system_at_a_checkpoint_then_room_made_and_the_job_resumed(small_ws, backbone):
    """A tmpfs that holds one checkpoint and a half (where this machine lets a test mount one)."""
    job = create_training_job(small_ws, disk_config(backbone))
    room = job.folder / layout.CHECKPOINTS
    room.mkdir()
    one = 3 * model_bytes(backbone) + (backbone / "tokenizer.json").stat().st_size  # model + AdamW's two moments
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={one * 3 // 2}", "tmpfs", str(room)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        jobs.start_next(small_ws.jobs_dir)
        failed = wait_for(job.folder, lambda s: s.state == "failed" and s.finished)
        assert failed.message.startswith("disk full at step 4, last good checkpoint step-2 ("), failed.log_tail()
        assert checkpoint_names(job.folder) == ["step-2"]
        subprocess.run(["mount", "-o", "remount,size=64m", str(room)], check=True)  # room made
        jobs.resume(job.folder)
        done = wait_for(job.folder, lambda s: s.state == "done")
        assert [json.loads(line)["step"] for line in (job.folder / layout.METRICS).read_text().splitlines()] == \
            list(range(1, done.total_steps + 1))  # steps 3 and 4 trained again, logged once
        assert checkpoint_names(job.folder) == ["step-2", "step-4", f"step-{done.total_steps}"]
    finally:
        subprocess.run(["umount", "-l", str(room)], capture_output=True)
