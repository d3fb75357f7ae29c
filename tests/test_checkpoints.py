"""Checkpoints: the newest few kept, the optimiser's state only in the newest, each step once in metrics.jsonl."""

import errno
import json
import os
import signal

import pyarrow.parquet as pq
import pytest
import torch

from prefstudio import jobs
from prefstudio.jobs import layout
from prefstudio.jobs.metrics_log import MetricsLog, keep_steps_up_to
from prefstudio.train import checkpoints
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.loop import train
from prefstudio.train.reward_model import RewardModel
from prefstudio.train.scoring import score_pairs
from prefstudio.train.snapshot import write_snapshot
from tests.test_jobs import checkpoint_step, steps_logged, wait_for


def steps_so_far(folder):
    """The steps a job has logged, read while it writes (a line it is writing is not yet a step)."""
    try:
        text = (folder / layout.METRICS).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in text[: text.rfind("\n") + 1].splitlines()]


def settings(backbone, **extra):
    return make_config({"backbone": str(backbone), "batch_size": 8, "lr": 1e-3, "max_length": 48,
                        "warmup_ratio": 0.0, **extra})


def names(folder):
    return sorted((p.name for p in (folder / layout.CHECKPOINTS).iterdir()), key=lambda n: (n[0] == ".", n))


def test_the_newest_checkpoints_are_kept_and_only_the_newest_holds_the_optimiser(small_ws, backbone, tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    write_snapshot(small_ws, folder / layout.PAIRS)
    final = train(folder, settings(backbone, checkpoint_every=1, keep_checkpoints=2, epochs=0.3))
    total = json.loads((folder / layout.METRICS).read_text().splitlines()[-1])["total_steps"]
    assert total >= 4
    assert names(folder) == [f"step-{total - 1}", f"step-{total}"]  # nothing else: no .tmp, no .old
    older, newest = (folder / layout.CHECKPOINTS / name for name in names(folder))
    assert final == newest == layout.latest_checkpoint(folder)  # what a resume goes on from
    assert (newest / layout.OPTIMIZER_STATE).is_file() and not (older / layout.OPTIMIZER_STATE).exists()
    state, optimizer = checkpoints.load_trainer_state(newest)
    assert state["step"] == total and optimizer["state"]  # AdamW's moments, for the resume
    # the older one is a whole model for scoring, and not the one a resume takes
    assert RewardModel.from_pretrained(older).pooling == "last"
    rows = [r for r in pq.read_table(folder / layout.PAIRS).to_pylist() if r["split"] == "test"][:4]
    assert len(list(score_pairs(older, rows, batch_size=4, max_length=48))) == 4


def test_keep_checkpoints_defaults_to_3_and_a_resume_takes_the_newest(tmp_path):
    assert make_config({"backbone": "x"}).keep_checkpoints == 3
    folder = tmp_path / "job"
    for step in (2, 4, 6, 8):  # as a job from before rotation left them: each with the optimiser's state
        saved = layout.checkpoint_dir(folder, step)
        saved.mkdir(parents=True)
        torch.save({"step": step}, saved / layout.OPTIMIZER_STATE)
        torch.save({"step": step, "scheduler": {}, "momentum": None}, saved / layout.TRAINER_STATE)
    (folder / layout.CHECKPOINTS / ".step-10.tmp").mkdir()  # a write a kill cut short
    checkpoints.rotate(folder, 3)
    assert names(folder) == ["step-4", "step-6", "step-8"]
    assert [p.parent.name for p in (folder / layout.CHECKPOINTS).glob(f"*/{layout.OPTIMIZER_STATE}")] == ["step-8"]
    state, optimizer = checkpoints.load_trainer_state(layout.latest_checkpoint(folder))
    assert state["step"] == optimizer["step"] == 8


def test_a_checkpoint_written_before_rotation_still_resumes(tmp_path):
    old = tmp_path / "step-2"
    old.mkdir()
    torch.save({"optimizer": {"state": {0: 1}}, "scheduler": {}, "step": 2, "momentum": None}, old / layout.TRAINER_STATE)
    state, optimizer = checkpoints.load_trainer_state(old)
    assert optimizer == {"state": {0: 1}} and state == {"scheduler": {}, "step": 2, "momentum": None}


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    OSError(errno.EFBIG, os.strerror(errno.EFBIG)),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 200704 vs 200656"),  # torch, full tmpfs
    RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"),  # torch, older releases
    Exception("Error while serializing: I/O error: No space left on device (os error 28)"),  # safetensors
], ids=["ENOSPC", "EFBIG", "torch-zip-writer", "torch-stream-writer", "safetensors"])
def test_what_the_writers_raise_on_a_full_disk_is_seen_as_one(error):
    assert checkpoints.is_disk_full(error)


@pytest.mark.parametrize("error", [PermissionError(errno.EACCES, "Permission denied"), RuntimeError("CUDA error"),
                                   ValueError("bad state dict")])
def test_other_failures_are_not_called_a_full_disk(error):
    assert not checkpoints.is_disk_full(error)


def test_a_resume_drops_the_steps_after_its_checkpoint_from_the_metrics(tmp_path):
    lines = [json.dumps({"step": s, "loss": s / 10}) for s in (1, 2, 3, 2, 3, 4, 5)] + ['{"step": 6, "lo']
    (tmp_path / layout.METRICS).write_text("\n".join(lines))
    reader = MetricsLog()
    assert reader.read_more(tmp_path) and sorted(reader.by_step) == [1, 2, 3, 4, 5]
    assert keep_steps_up_to(tmp_path, 3) == 5
    kept = [json.loads(line) for line in (tmp_path / layout.METRICS).read_text().splitlines()]
    assert [r["step"] for r in kept] == [1, 2, 3]
    assert [r["loss"] for r in kept] == [0.1, 0.2, 0.3]  # the newest line of a step
    assert not list(tmp_path.glob("*.tmp"))
    assert keep_steps_up_to(tmp_path, 3) == 0  # nothing to drop: the file is left alone
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / layout.METRICS).write_text('{"step": 1}\n{"step": 2}')  # killed just before the newline
    assert keep_steps_up_to(tmp_path / "cut", 2) == 0
    assert (tmp_path / "cut" / layout.METRICS).read_text() == '{"step": 1}\n{"step": 2}\n'
    # a reader that was following the old file starts over on the new one, even once it has grown past its offset
    with open(tmp_path / layout.METRICS, "a") as file:
        file.write("".join(json.dumps({"step": s, "loss": 1.0, "pad": "x" * 200}) + "\n" for s in (4, 5)))
    assert reader.read_more(tmp_path)
    assert sorted(reader.by_step) == [1, 2, 3, 4, 5] and reader.by_step[5]["loss"] == 1.0


def test_a_killed_job_resumed_logs_each_step_once(small_ws, backbone):
    # 120 steps: on an idle machine a 40-step job could end before the poll below saw its window
    job = create_training_job(small_ws, settings(backbone, epochs=3, batch_size=4, checkpoint_every=3,
                                                 keep_checkpoints=1))
    jobs.start_next(small_ws.jobs_dir)

    def stopped_past_a_checkpoint(status):
        """Looked at while frozen (SIGSTOP): no checkpoint can land between the look and the kill."""
        assert status.state in ("queued", "running"), f"the job ended before it could be killed: {status}"
        if status.state != "running" or not status.pid:
            return False
        os.killpg(status.pid, signal.SIGSTOP)
        if 0 < checkpoint_step(job.folder) < max(steps_so_far(job.folder), default=0):
            return True
        os.killpg(status.pid, signal.SIGCONT)
        return False

    # killed once a checkpoint is on disk and steps past it are logged: the resume trains those again
    running = wait_for(job.folder, stopped_past_a_checkpoint)
    os.killpg(running.pid, signal.SIGKILL)
    wait_for(job.folder, lambda s: s.state == "failed")
    assert max(steps_so_far(job.folder)) > checkpoint_step(job.folder)
    jobs.resume(job.folder)
    done = wait_for(job.folder, lambda s: s.state == "done")
    assert steps_logged(job.folder) == list(range(1, done.total_steps + 1))  # each step once, in order
    assert names(job.folder) == [f"step-{done.total_steps}"]  # keep_checkpoints 1
