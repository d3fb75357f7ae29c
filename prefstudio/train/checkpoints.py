"""A training job's checkpoints: each written whole or not at all, the newest few kept, a full disk told in one line.

A checkpoint is written under a temporary name and renamed (prefstudio/jobs/layout.py); `trainer_state.pt`,
written last, marks it complete. The optimiser's state (AdamW's: twice the model) is kept in the newest
checkpoint only, the one a resume goes on from; the older ones keep the model and tokenizer, all that scoring
needs. Training evaluates nothing held out, so no checkpoint is known to be "best": the newest
`keep_checkpoints` are kept (docs/methods.md, "Checkpoints").

A full disk does not always come as an OSError: torch's zip writer raises a RuntimeError ("[enforce fail at
inline_container.cc] unexpected pos ...", or "PytorchStreamWriter failed writing file ..."), safetensors a
SafetensorError ("... No space left on device (os error 28)"). Those are what tests/test_faults.py met on a
real full tmpfs and under a file size limit.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import torch

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.jobs.layout import (CHECKPOINTS, OPTIMIZER_STATE, TRAINER_STATE, checkpoint_dir, checkpoint_tmp_dir,
                                    latest_checkpoint)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# What the writers say where they give no errno: safetensors quotes the OS error; torch's zip writer only says that
# a write came up short.
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "File too large", "os error 28", "os error 122",
                   "os error 27", "PytorchStreamWriter failed writing", "inline_container.cc")


def complete_checkpoints(job_dir: Path) -> list[Path]:
    """The job's complete checkpoints, oldest first (one being written, or being removed, has a dot name)."""
    folder = job_dir / CHECKPOINTS
    done = [p for p in folder.glob("step-*") if (p / TRAINER_STATE).exists()] if folder.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(job_dir: Path, step: int, *, model, tokenizer, optimizer_state: dict, trainer_state: dict,
                    keep: int, finished: bool = False) -> Path:
    """Write step `step`'s checkpoint, then rotate; a write that fails leaves no trace and the older ones whole.
    `finished`: the job's last step, whose checkpoint a LoRA model also writes merged (RewardModel.save).

    Raises PrefstudioError "disk full at step N, last good checkpoint step-M ..." when the disk is full.
    """
    final = checkpoint_dir(job_dir, step)
    if not (final / OPTIMIZER_STATE).exists() or not (final / TRAINER_STATE).exists():  # else: saved already
        tmp = checkpoint_tmp_dir(job_dir, step)  # (a cancel just after a checkpoint, or a resume cancelled at once)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            model.save(tmp, tokenizer, finished=finished)
            torch.save(optimizer_state, tmp / OPTIMIZER_STATE)
            torch.save(trainer_state, tmp / TRAINER_STATE)
            _put_in_place(tmp, final)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            error = _write_error(exc, job_dir, step, final)
            if error is None:
                raise
            raise error from exc  # the log keeps what the writer said
    rotate(job_dir, keep)
    return final


def rotate(job_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints, the optimiser's state in the newest alone; clear writes a kill cut short."""
    done = complete_checkpoints(job_dir)
    for old in done[:-keep]:
        _remove(old)
    for old in done[-keep:-1]:
        (old / OPTIMIZER_STATE).unlink(missing_ok=True)
    for leftover in (job_dir / CHECKPOINTS).glob(".step-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def load_trainer_state(checkpoint: Path) -> tuple[dict, dict | None]:
    """(scheduler, step, momentum; the optimiser's state or None) of a checkpoint to resume from."""
    state = torch.load(checkpoint / TRAINER_STATE, map_location="cpu", weights_only=False)
    optimizer = state.pop("optimizer", None)  # a checkpoint written before the optimiser had a file of its own
    if (checkpoint / OPTIMIZER_STATE).exists():
        optimizer = torch.load(checkpoint / OPTIMIZER_STATE, map_location="cpu", weights_only=False)
    return state, optimizer


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space (or a file size limit), however the writer put it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        if any(words in str(seen) for words in DISK_FULL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _write_error(exc: Exception, job_dir: Path, step: int, final: Path) -> PrefstudioError | None:
    """The one line for a checkpoint write that failed; None for a failure that is not the file system's."""
    if is_disk_full(exc):
        kept = latest_checkpoint(job_dir)
        last = f"last good checkpoint {kept.name}" if kept else "no checkpoint saved before it"
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)[:160]
        return PrefstudioError(f"disk full at step {step}, {last} ({detail}); free space on the disk of {job_dir} "
                               f"(or lower keep_checkpoints), then resume the job")
    if isinstance(exc, OSError):
        return PrefstudioError(f"{final}: could not write the checkpoint ({exc.strerror or exc}); "
                               "the previous checkpoints are intact")
    return None


def _put_in_place(tmp: Path, final: Path) -> None:
    """Rename the written checkpoint to its name; one already there under that name goes only once it is replaced."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _remove(checkpoint: Path) -> None:
    """Rename, then delete: a kill midway leaves a dot name that nothing reads, never a checkpoint half gone."""
    doomed = checkpoint.with_name(f".{checkpoint.name}.old")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(checkpoint, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
