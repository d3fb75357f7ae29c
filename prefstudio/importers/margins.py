"""Margins that come with the data: a record's field as a continuous margin and one of the four levels.

AlpacaEval's weighted preference, SHP's score ratio, WebGPT's score
difference, a file's ratings: each is turned into a value on its own scale
(the *kind*'s) and a level 0..3 by thresholds (prefstudio.config.DATA_LEVELS,
overridable in workspace.toml or with --margin-levels). The formats that carry
such a field attach the label themselves; `--margin-from` does it for any file.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable

from prefstudio.config import check_thresholds
from prefstudio.errors import PrefstudioError
from prefstudio.ingest import DataLabel

TRANSFORMS = ("abs-from", "ratio", "diff")
SPEC_HELP = "COL, COL:abs-from=C, COL:ratio or COL_A,COL_B:diff"


def level_of(value: float, thresholds: tuple[float, float, float]) -> int:
    """0..3: how many of the thresholds the value reaches.

    Within 1e-9 counts as reaching it: 2·|1.35 − 1.5| is 0.2999999… in binary
    floating point, and a threshold of 0.3 is meant to include it.
    """
    return bisect_right(thresholds, value + 1e-9)


def number(value: object) -> float | None:
    """A finite number from a number or a numeric string (AlpacaEval writes both); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def parse_levels(text: str) -> tuple[float, float, float]:
    """--margin-levels T1,T2,T3."""
    try:
        values = [float(part) for part in text.split(",")]
        return check_thresholds(values, "--margin-levels")
    except ValueError as exc:
        message = str(exc) if "--margin-levels" in str(exc) else f"--margin-levels {text!r}: expected 3 numbers"
        raise PrefstudioError(f"{message}, e.g. --margin-levels 0.25,0.5,0.75") from None


@dataclass(frozen=True)
class MarginRule:
    """--margin-from: which columns give the margin, and how.

    value     COL                as it is; negative means rejected is better
    abs-from  COL:abs-from=C     |x − C|, no direction (the pair's orientation gives it)
    ratio     COL:ratio          log2 of the ratio; below 1 means the second response is better
    diff      COL_A,COL_B:diff   A − B; negative means B is better

    The signed kinds compare the file's first response with its second: when a
    winner column put the second response in `chosen`, the sign is read the other way.
    """

    kind: str
    columns: tuple[str, ...]
    center: float | None
    annotator: str
    thresholds: tuple[float, float, float]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.columns

    def label(self, row: dict, swapped: bool) -> DataLabel | str:
        """The row's data label, or the reason there is none (a skip reason)."""
        values = [number(row.get(column)) for column in self.columns]
        for column, value in zip(self.columns, values):
            if value is None:
                return f"--margin-from: column '{column}' is not a number"
        if self.kind == "abs-from":
            value, signed = abs(values[0] - self.center), False
        elif self.kind == "ratio":
            if values[0] <= 0:
                return f"--margin-from: ratio in '{self.columns[0]}' is not positive"
            value, signed = math.log2(values[0]), True
        elif self.kind == "diff":
            value, signed = values[0] - values[1], True
        else:
            value, signed = values[0], True
        flip = signed and (value < 0) != swapped and value != 0
        if signed:
            value = abs(value)
        extra = {"from": ",".join(self.columns), "kind": self.kind, "raw": values if len(values) > 1 else values[0]}
        return DataLabel(self.annotator, value, level_of(value, self.thresholds), flip, extra)


def parse_rule(spec: str, dataset: str,
               thresholds_for: Callable[[str], tuple[float, float, float] | None]) -> MarginRule:
    """--margin-from SPEC for a file whose pairs are named `dataset`.

    `thresholds_for(kind)`: the levels given on the command line, else the workspace's, else the kind's default.
    """
    columns_part, _, transform = spec.partition(":")
    columns = tuple(c.strip() for c in columns_part.split(",") if c.strip())
    kind, center = "value", None
    if transform:
        name, _, argument = transform.partition("=")
        kind = name.strip()
        if kind not in TRANSFORMS:
            raise PrefstudioError(f"--margin-from {spec!r}: unknown transform {kind!r}; expected {SPEC_HELP}")
        if kind == "abs-from":
            center = number(argument)
            if center is None:
                raise PrefstudioError(
                    f"--margin-from {spec!r}: abs-from needs a number, e.g. {columns_part}:abs-from=1.5")
        elif argument:
            raise PrefstudioError(f"--margin-from {spec!r}: {kind} takes no '={argument}'; expected {SPEC_HELP}")
    wanted = 2 if kind == "diff" else 1
    if len(columns) != wanted:
        raise PrefstudioError(f"--margin-from {spec!r}: {kind} reads {wanted} column{'s' if wanted > 1 else ''}; "
                              f"expected {SPEC_HELP}")
    thresholds = thresholds_for(kind)
    if thresholds is None:
        raise PrefstudioError(
            f"--margin-from {spec!r}: {kind} margins have no default levels; give them with --margin-levels T1,T2,T3 "
            "(where levels 1, 2, 3 start on its scale) or [margins.data_levels] in workspace.toml"
        )
    return MarginRule(kind, columns, center, f"{dataset}/{'-'.join(columns)}", thresholds)
