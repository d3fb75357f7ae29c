"""Margin-aware calibration: do a model's reward differences grow with the margin a labeller gave?

docs/methods.md, "Calibration by margin level", defines the figures. For the pairs
that carry a margin label (the label that counts, prefstudio.labels: a person's,
else a judge's, else the data's), per level 0-3: the pair count, the mean reward
difference, the accuracy and MORE's two-entry ECE (metrics.ece, same bins), and
over every level Spearman's ρ(level, d). A model whose rewards know the margins
has mean d rising with the level and ρ > 0; the usual accuracy and ECE cannot
tell it from one that ranks every pair by the same small step.

A label's direction is applied: where the labeller judged the rejected response
better (`flip`), the pair enters with -d, so d always runs from the response the
label calls better to the other. Flipped pairs are kept, not dropped: they are
the pairs where label and data disagree, which is the label noise the margin
paper studies, and dropping them would make every model look as if it agreed
with the labellers. Each level says how many of its pairs are flipped.

Everything is vectorised over numpy arrays, like metrics.py; nothing here
reads more than the labels of the pairs asked about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefstudio.evaluate import metrics
from prefstudio.evaluate.compare import Comparison
from prefstudio.evaluate.predictions import Rewards
from prefstudio.labels import RESOLVED_LABELS_SQL, level_label

LEVELS = (0, 1, 2, 3)
KIND_NAMES = {"human": "human", "llm": "judge", "data": "data"}  # annotator kinds, as the counts name them
ALL_LEVELS = "all levels"


def no_labels_line(split: str) -> str:
    """What every view says where no pair it shows has a margin label, and how to get some."""
    return f"no margin labels on the {split} pairs; label some (F2) or judge them (F3)"


@dataclass(frozen=True)
class MarginLabels:
    """The label that counts on each of some pairs, aligned with the pair ids asked about."""

    level: np.ndarray  # per pair, 0..3; -1 where the pair has no label
    flip: np.ndarray  # per pair: the labeller judged the rejected response better
    kinds: dict[str, int]  # labelled pairs per annotator kind (human, llm, data), the kinds present only

    @property
    def labelled(self) -> np.ndarray:
        return self.level >= 0

    @property
    def n(self) -> int:
        return int(np.count_nonzero(self.labelled))


def load_labels(con, pair_ids: np.ndarray) -> MarginLabels:
    """The resolved label (labels.RESOLVED_LABELS_SQL) of each pair of `pair_ids`, which must be sorted."""
    pair_ids = np.asarray(pair_ids, dtype=np.int64)
    kind_codes = " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(KIND_NAMES))  # numbers, not a million strings
    found = con.execute(f"SELECT pair_id, CASE annotator_kind {kind_codes} END AS kind, level, flip "
                        f"FROM ({RESOLVED_LABELS_SQL})").fetchnumpy()
    ids = np.asarray(found["pair_id"], dtype=np.int64)
    at = np.searchsorted(pair_ids, ids)
    inside = at < pair_ids.size
    matched = np.zeros(ids.size, dtype=bool)
    matched[inside] = pair_ids[at[inside]] == ids[inside]
    level = np.full(pair_ids.size, -1, dtype=np.int64)
    flip = np.zeros(pair_ids.size, dtype=bool)
    level[at[matched]] = np.asarray(found["level"], dtype=np.int64)[matched]
    flip[at[matched]] = np.asarray(found["flip"], dtype=bool)[matched]
    counts = np.bincount(np.asarray(found["kind"], dtype=np.int64)[matched], minlength=len(KIND_NAMES))
    return MarginLabels(level, flip, {k: int(c) for k, c in zip(KIND_NAMES, counts) if c})


def kinds_text(kinds: dict[str, int]) -> str:
    """"30 human, 10 judge": who gave the labels that count."""
    return ", ".join(f"{kinds[k]:,} {name}" for k, name in KIND_NAMES.items() if kinds.get(k))


# -- the figures ---------------------------------------------------------------------------------------------

def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span (scipy's rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x)  # any sort will do: tied values get the same average rank
    ordered = x[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]] if x.size else np.array([], dtype=bool)
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    sizes = np.diff(np.r_[starts, x.size])
    ranks = np.empty(x.size)
    ranks[order] = (starts + (sizes + 1) / 2.0)[group]
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ with ties at average ranks: Pearson's r of the ranks. NaN where x or y is constant."""
    if len(x) < 2:
        return float("nan")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
    return float(np.dot(rx, ry) / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class LevelFigures:
    level: int | None  # None: every level together
    n: int
    flipped: int  # pairs whose label calls the rejected response better
    mean_d: float  # d with the label's direction applied; NaN when empty
    accuracy: float  # share of d > 0 (direction applied), a tie counting half
    ece: float  # MORE's two-entry ECE of σ(d) at `ece_bins` bins

    @property
    def name(self) -> str:
        return ALL_LEVELS if self.level is None else level_label(self.level)


@dataclass(frozen=True)
class MarginFigures:
    """One set of labelled pairs (a source, or all): each level present, every level together, and ρ."""

    levels: list[LevelFigures]  # the levels with pairs, lowest first
    overall: LevelFigures
    spearman: float  # ρ(level, d) over the labelled pairs, ties at average ranks

    @property
    def n(self) -> int:
        return self.overall.n


def _level_figures(level: int | None, d: np.ndarray, flip: np.ndarray, ece_bins: int) -> LevelFigures:
    return LevelFigures(level, int(d.size), int(np.count_nonzero(flip)),
                        float(d.mean()) if d.size else float("nan"), metrics.accuracy(d), metrics.ece(d, ece_bins))


def margin_figures(d: np.ndarray, level: np.ndarray, flip: np.ndarray,
                   ece_bins: int = metrics.DEFAULT_ECE_BINS) -> MarginFigures:
    """The figures of labelled pairs: d = r_chosen − r_rejected as stored, the label's level and direction."""
    level, flip = np.asarray(level, dtype=np.int64), np.asarray(flip, dtype=bool)
    directed = np.where(flip, -1.0, 1.0) * np.asarray(d, dtype=np.float64)
    per_level = [_level_figures(v, directed[level == v], flip[level == v], ece_bins)
                 for v in LEVELS if np.any(level == v)]
    return MarginFigures(per_level, _level_figures(None, directed, flip, ece_bins), spearman(level, directed))


def by_source(rewards: Rewards, labels: MarginLabels,
              ece_bins: int = metrics.DEFAULT_ECE_BINS) -> dict[str, MarginFigures]:
    """Per source with labelled pairs (in name order), then metrics.ALL; empty where no pair is labelled.

    `labels` is aligned with rewards.pair_id (load_labels on the same ids)."""
    keep = labels.labelled
    if not keep.any():
        return {}
    d, level, flip, codes = rewards.d[keep], labels.level[keep], labels.flip[keep], rewards.source_code[keep]
    result = {}
    for code, name in sorted(enumerate(rewards.source_names), key=lambda item: item[1]):
        members = codes == code
        if members.any():
            result[name] = margin_figures(d[members], level[members], flip[members], ece_bins)
    result[metrics.ALL] = margin_figures(d, level, flip, ece_bins)
    return result


@dataclass(frozen=True)
class ComparedMargins:
    """Every compared model's margin figures, on the same common pairs and the same labels."""

    labels: MarginLabels
    n_pairs: int  # the common pairs, labelled or not
    figures: list[dict[str, MarginFigures]]  # per comparison.results, as by_source gives them

    @property
    def any(self) -> bool:
        return self.labels.n > 0 and bool(self.figures)


def for_comparison(con, comparison: Comparison, ece_bins: int | None = None) -> ComparedMargins:
    """The labels of the comparison's common pairs, read once, and each model's figures on them."""
    first = comparison.results[0].rewards if comparison.results else None
    pair_ids = first.pair_id if first is not None else np.array([], dtype=np.int64)
    labels = load_labels(con, pair_ids)
    bins = comparison.ece_bins if ece_bins is None else ece_bins
    return ComparedMargins(labels, int(pair_ids.size), [by_source(r.rewards, labels, bins) for r in comparison.results])


# -- as text ---------------------------------------------------------------------------------------------------

def signed(value: float, digits: int = 3) -> str:
    return "—" if value != value else f"{value:+.{digits}f}"


def percent(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f}"


def level_rows(figures: MarginFigures) -> list[LevelFigures]:
    """The rows of a margin table: each level, then every level together (the row that carries ρ)."""
    return [*figures.levels, figures.overall]


def header(ece_bins: int) -> list[str]:
    return ["level", "pairs", "flipped", "mean d", "accuracy %", f"ECE@{ece_bins}"]


def cells(row: LevelFigures) -> list[str]:
    return [row.name, f"{row.n:,}", f"{row.flipped:,}", signed(row.mean_d), percent(row.accuracy),
            "—" if row.ece != row.ece else f"{row.ece:.4f}"]


def rho_line(figures: dict[str, MarginFigures]) -> str:
    """"Spearman ρ(level, d) +0.632 over all 40; per source: alpha +0.500 (30), beta — (10)"."""
    overall = figures[metrics.ALL]
    line = f"Spearman ρ(level, d) {signed(overall.spearman)} over all {overall.n:,}"
    sources = [(s, f) for s, f in figures.items() if s != metrics.ALL]
    if len(sources) > 1:
        line += "; per source: " + ", ".join(f"{s} {signed(f.spearman)} ({f.n:,})" for s, f in sources)
    return line


def mean_bar(value: float, scale: float, half: int) -> str:
    """A bar of `value` on a scale shared by the rows, from a centre line: left below 0, right above.

    2·half + 1 characters; a value of ±scale fills its half; NaN (no pairs) is blank."""
    if value != value:
        return ""
    filled = min(half, round(abs(value) / scale * half)) if scale > 0 else 0
    if value < 0:
        return " " * (half - filled) + "█" * filled + "│" + " " * half
    return " " * half + "│" + "█" * filled + " " * (half - filled)
