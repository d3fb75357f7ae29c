"""A training job's settings: what `prefstudio train` flags and a job's TOML file say.

Frozen into the job folder at launch, so a job can always be read back and
resumed exactly. Unknown keys are refused (a typo must not train silently with
a default). Defaults follow the papers where they say (SPEC §3).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prefstudio.config import describe_validation_error
from prefstudio.errors import PrefstudioError


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: str
    objective: Literal["bt", "margin", "adaptive", "more"] = "bt"
    more_loss: Literal["bt", "margin", "adaptive"] = "bt"  # MORE's per-source ranking loss
    sampling: Literal["single", "multitask", "balanced"] = "multitask"
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

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.objective == "more" and self.sampling != "balanced":
            raise ValueError("objective 'more' needs sampling 'balanced' (one sub-batch per source)")
        if self.sampling == "single" and (not self.sources or len(self.sources) != 1):
            raise ValueError("sampling 'single' needs exactly one source")
        for name in ("max_length", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.more_momentum <= 1:
            raise ValueError("more_momentum must be in (0, 1]")
        return self

    @property
    def uses_margins(self) -> bool:
        return self.objective == "margin" or (self.objective == "more" and self.more_loss == "margin")


def make_config(values: dict, where: str = "training settings") -> TrainConfig:
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise PrefstudioError(describe_validation_error(exc, where, "setting", "see 'prefstudio train --help'")) from None


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PrefstudioError(f"{path}: not a readable TOML file ({exc})") from None
    return make_config({**values, **(overrides or {})}, str(path))
