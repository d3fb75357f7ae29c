"""What the launch form starts from and tells before Launch: settings that fit the machine, the time an epoch
will take, and the values last launched in this workspace.

TrainConfig's defaults (batch 80, max_length 512) are the papers', for a GPU. On a
CPU the demo's epoch took 20 minutes with them; a CPU job's cost is its tokens, and a
batch is padded to its longest text only, so a smaller batch and a shorter max_length
change little on the demo's short texts but bound what long texts cost and show the
loss sooner (CPU_DEFAULTS). The estimate tells the time before Launch: the pairs of
an epoch divided by a throughput: the newest past job of the workspace with the same
backbone, max_length and device (its metrics' pairs_per_s), else a rough figure scaled
from the demo's backbone by the model's size and the texts' length, and says which. The form's last
values live in `launch-form.json` in the workspace folder: settings only, never a
key or a name.

No torch here: the form asks on the spot, and importing torch takes seconds.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from prefstudio.jobs.layout import METRICS, read_config, read_launch
from prefstudio.jobs.status import JobStatus

REMEMBERED_FILE = "launch-form.json"
REMEMBERED = ("backbone", "objective", "sampling", "batch_size", "lr", "epochs", "max_length", "mixed_precision",
              "gpus", "sources", "unlabelled", "dropout")  # the form's fields a next launch starts from (not the job's name)
# On a CPU. A batch is padded to its longest text, not to max_length, so neither setting changes much what a
# pair costs on the demo (its texts: 44 tokens median, 109 at most, with all-MiniLM-L6-v2's tokenizer).
# 128 cuts none of the demo's texts and keeps a long imported text from costing four times as much; 24 pairs
# a step put a point on the loss curve every second or two instead of every half minute, and split into equal
# sub-batches for balanced sampling (MORE) over 2, 3, 4, 6 or 8 sources (the demo has 3).
# Measured (2026-12-07, this project's 2-core machine, nothing else running): a bt job on the demo at 24 x 128
# trained its epoch (4,050 pairs, 168 steps) in 303 s at 13.6 pairs/s and scored 69.6 % on test; scoring the
# 450 test pairs took 30 s. On the same machine, short runs of random batches (12 steps) found no speed in
# freezing the bottom 4 layers (7.98 against 7.37 pairs/s) or in two processes (6.19): the two cores are busy
# either way, so neither is a CPU default.
# Dropout stays on (the papers trained with it): off, it saved 530 MB on MiniLM (bench/README.md), but two demo jobs
# at 24 x 128 on the loaded CPU ran at 2.87 pairs/s without it and 3.24 with it: no speed to be had here.
CPU_DEFAULTS = {"batch_size": 24, "max_length": 128}
# The rough throughput: all-MiniLM-L6-v2 (10.6M parameters outside the embeddings) on that CPU, on the demo's
# texts (42 tokens a text by CHARS_PER_TOKEN): the demo job above. Random batches (adaptive, MORE) pad more
# and run slower; a busy machine runs slower still: the form says the figure is rough until a job of the
# workspace has measured its own.
REF_PAIRS_PER_S = 13.6
REF_COMPUTE = 10.6e6 * 42  # non-embedding parameters x tokens per text of that measure
GPU_SPEEDUP = 25.0  # a GPU over that CPU, for a first guess only
CHARS_PER_TOKEN = 4.0


def has_gpu() -> bool:
    """Whether a CUDA GPU is visible, without importing torch: the driver's device files, as
    CUDA_VISIBLE_DEVICES leaves them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def machine_defaults(gpu: bool | None = None) -> dict:
    """The settings that fit this machine over TrainConfig's own: on a CPU, CPU_DEFAULTS; on a GPU, none."""
    return {} if (has_gpu() if gpu is None else gpu) else dict(CPU_DEFAULTS)


# -- the form's last values ----------------------------------------------------------------------------

def read_remembered(ws_path: Path) -> dict:
    """The values last launched from the form in this workspace; {} when none or unreadable (a start, not a fault)."""
    try:
        data = json.loads((ws_path / REMEMBERED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: data[key] for key in REMEMBERED if isinstance(data, dict) and isinstance(data.get(key), str)}


def remember(ws_path: Path, values: dict) -> None:
    """Keep the form's values (as typed, text) for the next launch; a folder that cannot be written keeps none."""
    kept = {key: str(values[key]) for key in REMEMBERED if values.get(key) not in (None, "")}
    tmp = ws_path / f".{REMEMBERED_FILE}.tmp"
    try:
        tmp.write_text(json.dumps(kept, indent=1), encoding="utf-8")
        os.replace(tmp, ws_path / REMEMBERED_FILE)
    except OSError:
        tmp.unlink(missing_ok=True)


# -- the estimate ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Throughput:
    pairs_per_s: float
    source: str  # where the figure comes from, as the form says it


def _last_record(path: Path) -> dict | None:
    """The last whole line of a metrics file, read from its end: a long run's file is never read whole."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, 2) - 4096))
            lines = file.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


@dataclass(frozen=True)
class PastRun:
    """What a past training job of the workspace says about this machine's speed."""

    backbone: str
    max_length: int
    gpu: bool
    pairs_per_s: float
    job: str  # its name, or id
    dropout: bool = True


def past_runs(statuses: list[JobStatus]) -> list[PastRun]:
    """The training jobs that recorded a throughput (their metrics' last pairs_per_s), oldest first."""
    runs = []
    for status in statuses:
        try:
            config, launch = read_config(status.folder), read_launch(status.folder)
        except (OSError, ValueError):
            continue
        record = _last_record(status.folder / METRICS)
        rate = record.get("pairs_per_s") if record else None
        if isinstance(rate, (int, float)) and rate > 0 and isinstance(config.get("backbone"), str):
            runs.append(PastRun(config["backbone"], int(config.get("max_length", 512)), bool(launch.get("gpus")),
                                float(rate), status.name or status.id, not config.get("disable_dropout", False)))
    return runs


def recorded_throughput(runs: list[PastRun], backbone: str, max_length: int, gpu: bool,
                        dropout: bool = True) -> Throughput | None:
    """The newest past run's pairs_per_s with this backbone, max_length, device (GPUs given or not) and dropout."""
    for run in reversed(runs):
        if (run.backbone, run.max_length, run.gpu, run.dropout) == (backbone, max_length, gpu, dropout):
            return Throughput(run.pairs_per_s, f"measured by job {run.job}")
    return None


@cache
def compute_params(backbone: str) -> float | None:
    """The backbone's parameters outside its embeddings, from config.json (12·H² per layer); None when unknown."""
    try:
        config = json.loads((Path(backbone).expanduser() / "config.json").read_text(encoding="utf-8"))
        hidden = config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
        layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
        inner = config.get("intermediate_size") or config.get("n_inner") or 4 * hidden
        return float(layers * (4 * hidden * hidden + 2 * hidden * inner))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def rough_throughput(backbone: str, max_length: int, text_chars: float, gpu: bool) -> Throughput:
    """REF_PAIRS_PER_S scaled by the model's size and the tokens of a text (its characters / 4, at most
    max_length): a first guess before any job of this backbone has run here."""
    tokens = max(1.0, min(float(max_length), text_chars / CHARS_PER_TOKEN))
    params = compute_params(backbone)
    rate = REF_PAIRS_PER_S * REF_COMPUTE / ((params or 10.6e6) * tokens)
    what = "rough: no past job of this backbone at this length" + ("" if params else ", model size unknown")
    return Throughput(rate * (GPU_SPEEDUP if gpu else 1.0), what)


def epoch_line(pairs: int, batch_size: int, epochs: float, throughput: Throughput) -> str:
    """What the form shows before Launch: the time an epoch takes, and what that rests on."""
    steps = math.ceil(pairs / batch_size) if batch_size else 0
    seconds = pairs / throughput.pairs_per_s
    total = f"; {_duration(seconds * epochs)} for {epochs:g} epochs" if epochs != 1 else ""
    return (f"≈ {_duration(seconds)} per epoch ({pairs:,} pairs, {steps:,} steps of {batch_size} at "
            f"{throughput.pairs_per_s:.3g} pairs/s, {throughput.source}){total}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def mean_text_chars(con, split: str = "train") -> float:
    """Characters of a text as a job sees it (the prompt and one response) on average in `split`; 0 when empty."""
    row = con.execute("SELECT avg(length(prompt) + (length(chosen) + length(rejected)) / 2) FROM pairs "
                      "WHERE split = ?", [split]).fetchone()
    return float(row[0] or 0.0)
