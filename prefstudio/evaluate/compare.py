"""Several scored models side by side, on the same pairs: the papers' table, shared plot ranges, outliers.

docs/methods.md ("Evaluation") compares models on the same pairs. Models scored at
different times may cover different pairs (pairs imported in between, a split
re-drawn), so a comparison keeps only the pairs every chosen model has scored
and says how many it left out. The app and `prefstudio report` both build
their tables and plots from `compare()`, so the two never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefstudio.evaluate import metrics
from prefstudio.evaluate.predictions import Rewards, Scored, load_rewards

FAR_OUT = 3.0  # the plot range stops at Tukey's far-out fences, Q1 - 3·IQR and Q3 + 3·IQR, so a few huge
# outliers cannot squeeze every other pair into one bar; what lies beyond is counted in the end bins


@dataclass(frozen=True)
class ModelResult:
    model: Scored
    rewards: Rewards  # on the common pairs only, in pair_id order
    summaries: dict[str, metrics.Summary]  # per source, then metrics.ALL

    @property
    def label(self) -> str:
        return self.model.label


Model = tuple[str, str]  # (job id or raw:NAME, checkpoint): what a colour slot belongs to

MARKS = (("o", "●"), ("s", "■"), ("^", "▲"), ("D", "◆"), ("v", "▼"), ("P", "✚"), ("X", "✖"), ("*", "★"),
         ("<", "◀"), (">", "▶"), ("h", "⬢"))
"""A slot's marker: matplotlib's for the PNGs, the character a text chart's legend shows. Eleven, a count prime
to the ten PNG colours and the nine terminal colours, so (colour, marker) repeats only after 90 or 99 slots;
the marker tells models apart where colour cannot (greyscale print, colour blindness)."""


def colour_slots(con) -> dict[Model, int]:
    """A fixed place per model of the workspace: raw baselines by name, then jobs by creation, each job's
    checkpoints by step. A model keeps its colour and marker in every plot (the app's, the report's,
    best-of-N's) whichever others are drawn beside it, and two checkpoints of one job never share them."""
    # from `metrics` (a few rows per scored model) and best-of-N's scores: `predictions` holds a row per pair
    rows = con.execute(
        """WITH models AS (SELECT DISTINCT job_id, checkpoint FROM metrics
                           UNION SELECT DISTINCT scorer, checkpoint FROM bon_scores)
           SELECT m.job_id, m.checkpoint FROM models m LEFT JOIN jobs j ON j.id = m.job_id
           ORDER BY m.job_id NOT LIKE 'raw:%', j.created_at NULLS LAST, m.job_id,
                    try_cast(regexp_extract(m.checkpoint, '(\\d+)$', 1) AS BIGINT) NULLS FIRST, m.checkpoint"""
    ).fetchall()
    return {(job_id, checkpoint): slot for slot, (job_id, checkpoint) in enumerate(rows)}


def slots_for(models: list[Model | str], slots: dict[Model, int]) -> list[int]:
    """Each model's slot. A bare job id stands for its last checkpoint's. A model the workspace does not list,
    or one whose slot an earlier entry took (two checkpoints named by one job id), takes the next free slot."""
    last = {job_id: slot for (job_id, _), slot in slots.items()}  # slots run in step order within a job
    spare = iter(range(len(slots), len(slots) + len(models)))
    chosen: list[int] = []
    for model in models:
        slot = slots.get(model) if isinstance(model, tuple) else last.get(model)
        chosen.append(next(spare) if slot is None or slot in chosen else slot)
    return chosen


def marker(slot: int) -> str:
    """The matplotlib marker of a colour slot."""
    return MARKS[slot % len(MARKS)][0]


def text_mark(slot: int) -> str:
    """The legend character of a colour slot in a text chart."""
    return MARKS[slot % len(MARKS)][1]


def odd_bins_note(bins) -> str:
    """A footnote wherever ECE is shown at an odd bin count (docs/methods.md, "Odd bin counts"); "" if none is.

    MORE's two-entry ECE puts p and 1 − p of a pair in one middle bin, where they cancel exactly."""
    odd = [f"ECE@{b}" for b in sorted(set(bins)) if b % 2]
    if not odd:
        return ""
    named = odd[0] if len(odd) == 1 else ", ".join(odd[:-1]) + " and " + odd[-1]
    return (f"odd bin count: the middle bin pools p and 1 − p, so {named} can read ≈ 0 for a model whose p stay "
            "near 0.5")


@dataclass(frozen=True)
class Comparison:
    results: list[ModelResult]
    sources: list[str]  # the sources the common pairs hold, in name order
    n_common: int  # pairs every model has scored
    left_out: dict[str, int]  # model label -> its scored pairs not in the common set (only those with some)
    ece_bins: int
    reliability_bins: int
    slots: list[int]  # each result's colour and marker slot (colour_slots), one per (job, checkpoint)

    def labels(self) -> list[str]:
        """Each model's label, made unique (two jobs may share a name): keys for plots and legends."""
        seen: dict[str, int] = {}
        labels = []
        for result in self.results:
            seen[result.label] = seen.get(result.label, 0) + 1
            labels.append(result.label if seen[result.label] == 1 else f"{result.label} #{seen[result.label]}")
        return labels

    def table(self) -> list[list[str]]:
        """The papers' table as text cells: header, then one row per model; ties (over every pair) beside all."""
        header = ["model", *self.sources, "avg", "all", "ties", f"ECE@{self.ece_bins}", "n"]
        rows = [header]
        for label, row in zip(self.labels(), self.rows()):
            rows.append([label, *(_percent(row.accuracy.get(s, math.nan)) for s in self.sources),
                         _percent(row.average), _percent(row.overall), f"{row.overall_ties:,}", f"{row.ece:.4f}",
                         f"{row.n:,}"])
        return rows

    def rows(self) -> list[TableRow]:
        return [table_row(result, self.sources, self.ece_bins) for result in self.results]

    def histogram_range(self) -> tuple[float, float]:
        """One range for every model's histogram, so they compare bin for bin: the data's, within the far-out fences."""
        every = [r.rewards.d for r in self.results if r.rewards.d.size]
        if not every:
            return (-1.0, 1.0)
        d = np.concatenate(every)
        q1, q3 = np.percentile(d, [25, 75])
        low, high = max(d.min(), q1 - FAR_OUT * (q3 - q1)), min(d.max(), q3 + FAR_OUT * (q3 - q1))
        if low == high:
            low, high = low - 0.5, high + 0.5
        return float(low), float(high)

    def histograms(self, bins: int, source: str | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """(edges, counts per model) over the shared range; values outside it fall in the end bins."""
        low, high = self.histogram_range()
        counts = []
        for result in self.results:
            d = _of_source(result.rewards, source)
            counts.append(metrics.histogram(np.clip(d, low, high), bins, (low, high))[0])
        return np.linspace(low, high, bins + 1), counts


@dataclass(frozen=True)
class TableRow:
    label: str
    accuracy: dict[str, float]  # per source, a tie counting half
    ties: dict[str, int]  # per source: pairs with d = 0
    average: float  # the unweighted mean of the per-source accuracies, as the papers' "Avg." column
    overall: float  # accuracy over every pair
    overall_ties: int
    ece: float  # two-entry ECE over every pair, ece_bins bins
    n: int


def table_row(result: ModelResult, sources: list[str], ece_bins: int) -> TableRow:
    present = [s for s in sources if s in result.summaries]
    per_source = {s: result.summaries[s].accuracy for s in present}
    overall = result.summaries[metrics.ALL]
    average = float(np.mean(list(per_source.values()))) if per_source else math.nan
    return TableRow(result.label, per_source, {s: result.summaries[s].ties for s in present}, average,
                    overall.accuracy, overall.ties, overall.ece[ece_bins], overall.n)


def compare(con, models: list[Scored], *, sources: list[str] | None = None,
            ece_bins: int = metrics.DEFAULT_ECE_BINS,
            reliability_bins: int = metrics.DEFAULT_RELIABILITY_BINS) -> Comparison:
    """Load each model's rewards (only `sources`, if given), keep the common pairs, summarise each model."""
    if ece_bins < 1 or reliability_bins < 1:
        raise ValueError("bin counts must be at least 1")
    loaded = [load_rewards(con, m.job_id, m.checkpoint, m.split, sources) for m in models]
    common = _common_ids(loaded)
    results, left_out = [], {}
    for model, rewards in zip(models, loaded):
        kept = _restrict(rewards, common)
        if rewards.pair_id.size != kept.pair_id.size:
            left_out[model.label] = int(rewards.pair_id.size - kept.pair_id.size)
        bins = tuple(sorted({*metrics.ECE_BINS, ece_bins}))
        results.append(ModelResult(model, kept, kept.summaries(ece_bins=bins, reliability_bins=reliability_bins)))
    names = sorted({name for r in results for name in r.summaries if name != metrics.ALL})
    slots = slots_for([(m.job_id, m.checkpoint) for m in models], colour_slots(con))
    return Comparison(results, names, int(common.size) if common is not None else 0, left_out, ece_bins,
                      reliability_bins, slots)


def _common_ids(loaded: list[Rewards]) -> np.ndarray | None:
    if not loaded:
        return None
    common = loaded[0].pair_id
    for rewards in loaded[1:]:
        if not np.array_equal(common, rewards.pair_id):  # the usual case, all on the same pairs, costs no sort
            common = np.intersect1d(common, rewards.pair_id, assume_unique=True)
    return common


def _restrict(rewards: Rewards, ids: np.ndarray | None) -> Rewards:
    if ids is None or ids.size == rewards.pair_id.size:
        return rewards
    keep = np.isin(rewards.pair_id, ids, assume_unique=True)
    return Rewards(rewards.pair_id[keep], rewards.source_code[keep], rewards.source_names, rewards.r_chosen[keep],
                   rewards.r_rejected[keep])


def _of_source(rewards: Rewards, source: str | None) -> np.ndarray:
    if source is None:
        return rewards.d
    if source not in rewards.source_names:
        return np.array([], dtype=np.float64)
    return rewards.d[rewards.source_code == rewards.source_names.index(source)]


@dataclass(frozen=True)
class OutlierPair:
    pair_id: int
    source: str
    d: float
    side: str  # "over" (above the high fence: rewarded far more than most) or "under"
    prompt: str
    chosen: str
    rejected: str


def outlier_pairs(con, result: ModelResult, source: str | None = None, limit: int = 200) -> list[OutlierPair]:
    """The Tukey outliers of one model (of `source`, or over all pairs), most extreme first, with their texts."""
    summary = result.summaries.get(source or metrics.ALL)
    if summary is None:
        return []
    d, ids = result.rewards.d, result.rewards.pair_id
    names = result.rewards.source_names
    members = d if source is None else _of_source(result.rewards, source)
    centre = float(np.median(members)) if members.size else 0.0
    # every summary's outlier indices index the model's whole reward array (summarize_by_source maps them)
    positive, negative = summary.outliers.positive, summary.outliers.negative
    picked = [(int(i), "over") for i in positive] + [(int(i), "under") for i in negative]
    picked.sort(key=lambda item: -abs(d[item[0]] - centre))
    picked = picked[:limit]
    if not picked:
        return []
    # the starts only (the table's cells, the report's excerpts): 200 outliers of 50 MB texts stay in the database
    texts = {row[0]: row[1:] for row in con.execute(
        "SELECT id, left(prompt, 2000), left(chosen, 2000), left(rejected, 2000) FROM pairs WHERE list_contains(?, id)",
        [[int(ids[i]) for i, _ in picked]]).fetchall()}
    return [OutlierPair(int(ids[i]), names[result.rewards.source_code[i]], float(d[i]), side, *texts.get(int(ids[i]), ("", "", "")))
            for i, side in picked]


def _percent(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}"
