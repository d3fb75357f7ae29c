"""A training job's settings: what `prefstudio train` flags and a job's TOML file say.

Frozen into the job folder at launch, so a job can always be read back and
resumed exactly. Unknown keys are refused (a typo must not train silently with
a default). Defaults follow the papers where they say (docs/methods.md).

A preset is a named set of settings applied under the user's own: `preset =
"more-paper"` comes as close as one process allows to MORE's official run
(docs/methods.md, "MORE as the paper ran it").
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prefstudio.config import describe_validation_error
from prefstudio.errors import PrefstudioError
from prefstudio.settings import Objective, RankingLoss, Sampling, sampling_mismatch


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
    template: str = "{prompt}\n\nAssistant: {response}"
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
    more_momentum: float = 1.0  # α in g_i <- (1 - α) g_prev + α g_i; 1 = none
    more_normalize: Literal["none", "l2", "loss"] = "none"
    checkpoint_every: int = 0  # steps; 0 = only at the end
    seed: int = 0
    group_by_length: bool | None = None  # None: grouped unless the objective uses a batch statistic
    preset: Literal["more-paper"] | None = None  # recorded; its settings are already applied

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        mismatch = sampling_mismatch(self.objective, self.sampling)
        if mismatch:
            raise ValueError(mismatch)
        if self.sampling == "single" and (not self.sources or len(self.sources) != 1):
            raise ValueError("sampling 'single' needs exactly one source")
        for name in ("max_length", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.more_momentum <= 1:
            raise ValueError("more_momentum must be in (0, 1]")
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
        raise PrefstudioError(describe_validation_error(exc, where, "setting", "see 'prefstudio train --help'")) from None


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PrefstudioError(f"{path}: not a readable TOML file ({exc})") from None
    return make_config({**values, **(overrides or {})}, str(path))
