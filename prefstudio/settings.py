"""The rules for settings a person types, in one place for the command line and the app.

The CLI and the app's forms used to check these each in their own way and had
drifted apart (`--gpus a` was a traceback in one and a one-line message in the
other); both now ask here. Every refusal is a PrefstudioError of one line that
names the setting as the caller spells it (`--gpus` on the command line, `GPUs`
in a form).
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Literal, get_args

from prefstudio.errors import PrefstudioError

if TYPE_CHECKING:  # `prefstudio --help` reads the names here: no pydantic for that
    from prefstudio.config import JudgeConfig

RankingLoss = Literal["bt", "margin", "adaptive"]
"""A loss on each pair's reward difference (train/objectives.py); MORE weighs one of these per source."""
Objective = Literal[RankingLoss, "more"]
Sampling = Literal["single", "multitask", "balanced"]

RANKING_LOSSES: tuple[str, ...] = get_args(RankingLoss)
OBJECTIVES: tuple[str, ...] = get_args(Objective)
SAMPLINGS: tuple[str, ...] = get_args(Sampling)

MIN_MAX_LENGTH = 16
"""The fewest tokens a training text may have (max_length): the tokenizer's special tokens, the template's
"Assistant:" and a few tokens of prompt and response. Below it nearly every pair is cut to nothing and most
become identical (no signal)."""

# MORE weighs one sub-batch per source, so its batches must hold one of each.
_SAMPLING_NEEDED: dict[str, str] = {"more": "balanced"}


def sampling_needed(objective: str | None) -> str | None:
    """The sampling an objective cannot train without, or None when any will do."""
    return _SAMPLING_NEEDED.get(objective or "")


def sampling_mismatch(objective: str, sampling: str) -> str | None:
    """Why `objective` cannot train with `sampling`, or None when it can."""
    needed = sampling_needed(objective)
    if needed is not None and sampling != needed:
        return f"objective {objective!r} needs sampling {needed!r} (one sub-batch per source)"
    return None


def parse_gpus(text: str | None, what: str = "GPUs") -> list[int] | None:
    """Device numbers from "0" or "0,1"; None for nothing given. Each number at most once, none negative."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        gpus = [int(part) for part in text.split(",")]
    except ValueError:
        gpus = [-1]
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise PrefstudioError(f"{what}: device numbers separated by commas, e.g. 0,1 (or empty for none)")
    return gpus


def parse_sources(text: str | None) -> list[str] | None:
    """Source names from "a,b" (blanks dropped); None for nothing given: every source."""
    sources = [name.strip() for name in (text or "").split(",") if name.strip()]
    return sources or None


JUDGE_OVERRIDES = ("model", "base_url", "prompt", "concurrency")
"""The judge settings a run may set over the workspace's [judge] defaults."""


def judge_settings(defaults: JudgeConfig, *, model: str | None = None, base_url: str | None = None,
                   prompt: str | None = None, concurrency: int | None = None) -> JudgeConfig:
    """The workspace's judge defaults with what a person gave over them.

    None leaves a default as it is; an empty base URL means none (the OpenAI
    API), so a form that clears the field and `--base-url ''` both reach it.
    """
    given = {"model": model, "base_url": base_url, "prompt": prompt, "concurrency": concurrency}
    overrides = {key: value for key, value in given.items() if value is not None}
    if "base_url" in overrides:
        overrides["base_url"] = overrides["base_url"].strip() or None
    if "model" in overrides and not overrides["model"].strip():
        raise PrefstudioError("model must not be empty")
    if "concurrency" in overrides and overrides["concurrency"] < 1:
        raise PrefstudioError("concurrency must be a whole number of at least 1")
    return defaults.model_copy(update=overrides)


def setting_value(raw: str):
    """The value of `--set KEY=RAW`: read as TOML (1e-4, true, ["a", "b"], "text"), else a bare word as the string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
