"""Workspace configuration (``workspace.toml``), validated with pydantic.

Unknown keys are refused rather than ignored: a typo in a margin map silently
falling back to a default would train the wrong model.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefstudio.errors import PrefstudioError

CONFIG_NAME = "workspace.toml"

# Level -> margin (docs/methods.md, "Margin labels"). "small" is Llama 2's 0..1 scale, "large" its 0..3 one.
MARGIN_SCALES: dict[str, tuple[float, float, float, float]] = {
    "small": (0.0, 1 / 3, 2 / 3, 1.0),
    "large": (0.0, 1.0, 2.0, 3.0),
}

LEVEL_NAMES = (
    "Negligibly better / unsure",
    "Slightly better",
    "More effective",
    "Distinctly superior",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Margins that come with the data (docs/methods.md, "Margins that come with the data"): each kind's value
# becomes level 1, 2, 3 from these thresholds on (below the first: level 0). None: no natural scale, so the
# import needs --margin-levels (or [margins.data_levels] in workspace.toml).
DATA_LEVELS: dict[str, tuple[float, float, float] | None] = {
    "alpaca-eval": (0.25, 0.5, 0.75),  # 2·|p − 1.5|, in [0, 1]
    "shp": (1.0, 2.0, 3.0),  # log2 of the score ratio: 2×, 4×, 8× the votes
    "webgpt": (0.5, 1.0, 1.5),  # score difference, scores in [−1, 1]
    "ratio": (1.0, 2.0, 3.0),  # --margin-from COL:ratio, log2 of the ratio
    "diff": (1.0, 2.0, 3.0),  # --margin-from A,B:diff, e.g. ratings 1..5 or 1..10
    "abs-from": None,  # --margin-from COL:abs-from=C
    "value": None,  # --margin-from COL, taken as it is
}


class MarginConfig(_Strict):
    """How annotated levels 0..3 become margins m in the margin loss, and how data margins become levels."""

    scale: Literal["small", "large", "custom"] = "small"
    custom: list[float] | None = None
    # A data label's margin: its level through the scale, like any label, or its continuous value as it is.
    data: Literal["level", "value"] = "level"
    data_levels: dict[str, list[float]] = {}

    @model_validator(mode="after")
    def _check_custom(self) -> "MarginConfig":
        if self.scale == "custom":
            if self.custom is None or len(self.custom) != 4:
                raise ValueError("margins.custom must list 4 margins, for levels 0, 1, 2, 3")
            bad = next((m for m in self.custom if not (abs(m) < float("inf") and m >= 0)), None)  # nan fails both
            if bad is not None:
                raise ValueError(f"margins.custom: {bad}: expected 4 finite margins of at least 0, for levels 0, 1, "
                                 "2, 3 (e.g. [0, 1, 2, 3])")
        for kind, thresholds in self.data_levels.items():
            if kind not in DATA_LEVELS:
                raise ValueError(f"margins.data_levels: unknown kind {kind!r}; kinds: {', '.join(DATA_LEVELS)}")
            check_thresholds(thresholds, f"margins.data_levels.{kind}")
        return self

    def margin(self, level: int) -> float:
        values = self.custom if self.scale == "custom" else MARGIN_SCALES[self.scale]
        return float(values[level])

    def thresholds(self, kind: str) -> tuple[float, float, float] | None:
        """Where a data margin of this kind reaches levels 1, 2, 3: workspace.toml's, else the default."""
        if kind in self.data_levels:
            return tuple(self.data_levels[kind])
        return DATA_LEVELS.get(kind)


def check_thresholds(thresholds: list[float], where: str) -> tuple[float, float, float]:
    """Three increasing numbers, or ValueError saying so."""
    if len(thresholds) != 3 or any(b <= a for a, b in zip(thresholds, thresholds[1:])):
        raise ValueError(f"{where} must be 3 increasing thresholds (where levels 1, 2, 3 start), got {thresholds}")
    return tuple(float(t) for t in thresholds)


# USD per million tokens (input, output), for the estimate shown before a run spends.
KNOWN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
}


REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")  # what OpenAI's reasoning_effort takes


class JudgeConfig(_Strict):
    """Defaults for `prefstudio annotate --judge`; command-line options override them."""

    model: str = "gpt-4o"
    base_url: str | None = None
    prompt: str = "general"
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(6, ge=0)
    timeout_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    # A server's Retry-After is honoured up to this many seconds: a proxy's "retry in a day" must not stall a run.
    retry_after_cap_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    max_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.0, ge=0, allow_inf_nan=False)
    # Reasoning models (o1, o3, o4-mini, GPT-5: judge/request.py's table, or this override) take
    # max_completion_tokens, no temperature, and spend completion tokens on reasoning: a budget of their own.
    reasoning: bool | Literal["auto"] = "auto"
    reasoning_max_tokens: int = Field(4000, ge=1)
    reasoning_effort: Literal[REASONING_EFFORTS] | None = None
    token_parameter: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    logprobs: bool = False  # ask for the verdict's logprobs (a soft label) where the model gives them
    price_input_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_output_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("reasoning", mode="before")
    @classmethod
    def _check_reasoning(cls, value):
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError('expected true, false or "auto" (the model table decides)')

    def prices(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per million tokens, or None when unknown."""
        if self.price_input_per_mtok is not None and self.price_output_per_mtok is not None:
            return self.price_input_per_mtok, self.price_output_per_mtok
        return KNOWN_PRICES.get(model)


class AnnotationConfig(_Strict):
    """Hand labelling: who labels, and whether A/B are shown blind."""

    annotator: str | None = None  # None: the login name ($USER)
    blind: bool = False
    blind_seed: int = 0
    guidelines: str = "guidelines.md"  # a file in the workspace, shown beside the pair

    def annotator_name(self) -> str:
        import getpass

        if self.annotator:
            return self.annotator
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "me"


class BackupConfig(_Strict):
    """Automatic backups (prefstudio/backup.py): one a day on open, the newest `keep` daily ones kept."""

    daily: bool = True
    keep: int = Field(7, ge=1)


class WorkspaceConfig(_Strict):
    name: str
    margins: MarginConfig = MarginConfig()
    judge: JudgeConfig = JudgeConfig()
    annotation: AnnotationConfig = AnnotationConfig()
    backup: BackupConfig = BackupConfig()


def describe_validation_error(err: ValidationError, where: str, unknown: str = "key", hint: str = "") -> str:
    """One line for the first problem pydantic found: where, which field, what was expected."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown {unknown} '{field}'; {hint or 'remove it or check its spelling'}"
    given = first.get("input")
    got = f" (got {given!r})" if isinstance(given, (bool, int, float, str)) and len(repr(given)) <= 60 else ""
    message = first["msg"].removeprefix("Value error, ")  # our own validators' words need no pydantic prefix
    return f"{where}: {field}: {message}{got}"


def load_config(path: Path) -> WorkspaceConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefstudioError(f"{path}: missing; is this a prefstudio workspace? (make one with 'prefstudio init')") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PrefstudioError(f"{path}: not valid TOML ({exc})") from None
    try:
        return WorkspaceConfig.model_validate(data)
    except ValidationError as exc:
        raise PrefstudioError(describe_validation_error(exc, str(path))) from None


def save_config(path: Path, config: WorkspaceConfig) -> None:
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(config.model_dump(exclude_none=True)), encoding="utf-8")
    tmp.replace(path)
