"""A training job's settings: what `prefstudio train` flags and a job's TOML file say.

Frozen into the job folder at launch, so a job can always be read back and
resumed exactly. Unknown keys are refused (a typo must not train silently with
a default). Defaults follow the papers where they say (docs/methods.md).

A preset is a named set of settings applied under the user's own: `preset =
"more-paper"` comes as close as one process allows to MORE's official run
(docs/methods.md, "MORE as the paper ran it").
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from prefstudio.config import describe_validation_error
from prefstudio.errors import PrefstudioError
from prefstudio.settings import MIN_MAX_LENGTH, Objective, RankingLoss, Sampling, sampling_mismatch


# The least each whole-number setting may be, and what it is (None, where allowed, is always fine).
LOWEST: dict[str, tuple[int, str]] = {
    "max_length": (MIN_MAX_LENGTH, f"at least {MIN_MAX_LENGTH} tokens per text, room for a prompt and a response "
                                   "(default 512)"),
    "batch_size": (1, "a whole number of pairs per step of at least 1 (default 80)"),
    "grad_accum": (1, "a whole number of batches per optimiser step of at least 1 (1: none)"),
    "quota": (1, "a whole number of pairs per source of at least 1, or leave it out for the largest source's size"),
    "checkpoint_every": (0, "a whole number of steps of at least 0 (0: a checkpoint only at the end)"),
    "keep_checkpoints": (1, "a whole number of at least 1 (default 3): the newest checkpoint is always kept"),
    "freeze_layers": (0, "a whole number of layers of at least 0 (0: train them all)"),
    "lora_rank": (0, "a whole number of at least 0 (0: train every weight; 8 to 64 for LoRA)"),
}
ABOVE_ZERO: dict[str, str] = {
    "epochs": "a number above 0, e.g. 1, or 0.5 for half an epoch",
    "lr": "a learning rate above 0, e.g. 9e-6",
}
# (low, high, low excluded, what)
RANGES: dict[str, tuple[float, float, bool, str]] = {
    "weight_decay": (0.0, math.inf, False, "a number of at least 0 (default 0)"),
    "warmup_ratio": (0.0, 1.0, False, "a share of the steps from 0 to 1 (default 0.03)"),
    "more_momentum": (0.0, 1.0, True, "a number in (0, 1]: 1 is no momentum, MORE's paper used 0.99"),
    "lora_dropout": (0.0, 0.999, False, "a dropout rate from 0 to below 1 (default 0.05)"),
    "lora_alpha": (0.0, math.inf, True, "a number above 0 (default: twice lora_rank)"),
}


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: str
    objective: Objective = "bt"
    more_loss: RankingLoss = "bt"  # MORE's per-source ranking loss
    sampling: Sampling = "multitask"
    sources: list[str] | None = None  # None: every source in the workspace
    quota: int | None = None  # pairs per source after resampling (MORE: 40,000)
    split: str = "train"
    unlabelled: Literal["zero", "drop"] = "zero"  # pairs without a margin label, for `margin`
    pooling: Literal["auto", "last", "cls", "mean"] = "auto"
    template: str = "{prompt}\n\nAssistant: {response}"  # for text rendering (base models)
    # How texts become tokens: "chat" renders the stored turns with the tokenizer's chat template, "text" uses
    # `template`; "auto" is resolved when the job is made (chat where the backbone's tokenizer has a template and
    # no `template` was given) and the job keeps the resolved value and, for chat, the template itself.
    render: Literal["auto", "chat", "text"] = "auto"
    chat_template: str | None = None  # the Jinja text of the chat template, frozen into the job at launch
    max_length: int = 512
    batch_size: int = 80  # pairs per step (MORE: 5 sources x 16)
    grad_accum: int = 1
    epochs: float = 1.0
    lr: float = 9e-6  # margin paper; MORE used 1e-6
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    freeze_layers: int = 0  # freeze the embeddings and the bottom k layers
    # Dropout off in every layer, as TRL's RewardTrainer and OpenRLHF do by default: on MiniLM it held 530 MB of
    # activations for the backward pass (bench/README.md). Off by default here: the papers trained with it.
    disable_dropout: bool = False
    # LoRA (train/lora.py, with peft): the backbone frozen under low-rank adapters, the head trained whole
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: float | None = None  # None: 2 x lora_rank
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None  # module names; None: the architecture's attention and MLP projections
    load_in_4bit: bool = False  # QLoRA: the frozen base quantised to 4 bits (bitsandbytes, on a CUDA GPU)
    # How the model is spread over processes (docs/cluster.md): ddp copies it whole to every process; fsdp and
    # DeepSpeed's zero2 / zero3 shard it; the job folder gets the Accelerate config that says so.
    strategy: Literal["ddp", "fsdp", "zero2", "zero3"] = "ddp"
    padding_free: bool = False  # decoders on a GPU with flash-attention: pairs packed into one row, no padding
    more_momentum: float = 1.0  # α in g_i <- (1 - α) g_prev + α g_i; 1 = none
    more_normalize: Literal["none", "l2", "loss"] = "none"
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 3  # the newest N; only the newest holds the optimiser state (docs/methods.md)
    seed: int = 0
    group_by_length: bool | None = None  # None: grouped unless the objective uses a batch statistic
    preset: Literal["more-paper"] | None = None  # recorded; its settings are already applied
    sweep: str | None = None  # the sweep the job is one run of (train/sweep.py); recorded, changes no step

    @field_validator(*LOWEST)
    @classmethod
    def _at_least(cls, value: int | None, info) -> int | None:
        lowest, what = LOWEST[info.field_name]
        if value is not None and value < lowest:
            raise ValueError(f"{info.field_name} {value}: expected {what}")
        return value

    @field_validator(*ABOVE_ZERO)
    @classmethod
    def _positive(cls, value: float, info) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{info.field_name} {_shown(value)}: expected {ABOVE_ZERO[info.field_name]}")
        return value

    @field_validator(*RANGES)
    @classmethod
    def _in_range(cls, value: float | None, info) -> float | None:
        low, high, low_open, what = RANGES[info.field_name]
        if value is None:
            return value
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
            raise ValueError(f"{info.field_name} {_shown(value)}: expected {what}")
        return value

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        mismatch = sampling_mismatch(self.objective, self.sampling)
        if mismatch:
            raise ValueError(mismatch)
        if self.sampling == "single" and (not self.sources or len(self.sources) != 1):
            raise ValueError("sampling 'single' needs exactly one source")
        if self.load_in_4bit and not self.lora_rank:
            raise ValueError("load_in_4bit: a 4-bit base cannot be trained itself; set lora_rank too (e.g. 16)")
        if self.lora_rank and self.freeze_layers:
            raise ValueError(f"freeze_layers {self.freeze_layers}: LoRA (lora_rank {self.lora_rank}) freezes the "
                             "whole backbone already, only its adapters and the head train; leave freeze_layers at 0")
        if self.lora_targets is not None and not self.lora_targets:
            raise ValueError("lora_targets []: expected module names, e.g. [\"q_proj\", \"v_proj\"], or leave it out "
                             "for the architecture's attention and MLP projections")
        if self.render == "chat" and not self.chat_template:
            raise ValueError("render 'chat' needs the backbone's chat template; leave render at 'auto' to find it")
        return self

    @property
    def uses_batch_statistic(self) -> bool:
        """adaptive's μ_B and MORE's λ are statistics of a batch: length grouping would change them."""
        return self.objective in ("adaptive", "more")

    @property
    def grouped(self) -> bool:
        """Whether batches hold pairs of similar length (speed) or are drawn at random."""
        return (not self.uses_batch_statistic) if self.group_by_length is None else self.group_by_length

    @property
    def uses_margins(self) -> bool:
        return self.objective == "margin" or (self.objective == "more" and self.more_loss == "margin")


def _shown(value: float) -> str:
    """A number as it was most likely typed: `--epochs 0` is told as 0, not 0.0."""
    return str(int(value)) if math.isfinite(value) and value == int(value) else str(value)


PRESETS: dict[str, dict] = {
    # MORE's README run: one pair per source per device step, 8 GPUs x 2 accumulation steps, --normalize l2,
    # --alpha 0.99, lr 1e-6, 40k pairs per source, last-token pooling, one epoch.
    "more-paper": {"objective": "more", "sampling": "balanced", "more_loss": "bt", "grad_accum": 16,
                   "more_normalize": "l2", "more_momentum": 0.99, "lr": 1e-6, "quota": 40_000},
}


def apply_preset(values: dict, sources: list[str] | None = None) -> dict:
    """The preset's settings under the given ones. more-paper's batch is one pair per source: `batch_size`
    becomes the number of sources (those named, else `sources`, the workspace's) unless given."""
    name = values.get("preset")
    if name is None:
        return values
    if name not in PRESETS:
        raise PrefstudioError(f"preset {name!r}: expected one of {', '.join(PRESETS)}")
    merged = {**PRESETS[name], **values}
    named = merged.get("sources") or sources
    if name == "more-paper" and "batch_size" not in values and named:
        merged["batch_size"] = len(named)
    return merged


def make_config(values: dict, where: str = "training settings", sources: list[str] | None = None) -> TrainConfig:
    """`sources`: the workspace's training sources, for a preset whose batch depends on them."""
    try:
        return TrainConfig.model_validate(apply_preset(values, sources))
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "value_error":  # our own rules: the message names the setting, its value, what is expected
            raise PrefstudioError(f"{where}: {first['ctx']['error']}") from None
        raise PrefstudioError(describe_validation_error(exc, where, "setting", "see 'prefstudio train --help'")) from None


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PrefstudioError(f"{path}: not a readable TOML file ({exc})") from None
    return make_config({**values, **(overrides or {})}, str(path))
