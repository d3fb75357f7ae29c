"""Faults a real user meets: a killed import, a killed app with a job running, a full disk at a checkpoint."""

import errno
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
from prefstudio.errors import PrefstudioError
from prefstudio.jobs import layout
from prefstudio.train import loop
from prefstudio.train.config import make_config
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


def test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_last_checkpoint_stays(small_ws, backbone, tmp_path,
                                                                                     monkeypatch):
    from prefstudio.train.snapshot import write_snapshot

    folder = tmp_path / "job"
    folder.mkdir()
    write_snapshot(small_ws, folder / layout.PAIRS)
    config = make_config({"backbone": str(backbone), "batch_size": 8, "lr": 1e-3, "max_length": 64,
                          "checkpoint_every": 2, "epochs": 1})
    real_save, saves = loop.torch.save, []

    def save_until_the_disk_fills(obj, target, *args, **kwargs):
        saves.append(target)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(loop.torch, "save", save_until_the_disk_fills)
    with pytest.raises(PrefstudioError) as failed:
        loop.train(folder, config)
    message = str(failed.value)
    assert message == (f"{folder / layout.CHECKPOINTS / 'step-4'}: could not write the checkpoint "
                       f"(No space left on device); the previous checkpoints are intact")
    assert sorted(p.name for p in (folder / layout.CHECKPOINTS).iterdir()) == ["step-2"]  # no half-written .tmp
    assert layout.latest_checkpoint(folder).name == "step-2"
