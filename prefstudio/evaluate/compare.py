"""Several scored models side by side, on the same pairs: the papers' table, shared plot ranges, outliers.

SPEC §4 asks for comparisons "on the same test pairs". Models scored at
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


def colour_slots(con) -> dict[str, int]:
    """A fixed place per model of the workspace (raw baselines by name, then jobs by creation), so a model has
    the same colour in every plot — the app's, the report's, best-of-N's — whichever others are drawn beside it."""
    # from `metrics`, a few rows per model: `predictions` holds a row per pair and would be scanned whole
    raw = [r[0] for r in con.execute(
        "SELECT DISTINCT job_id FROM metrics WHERE job_id LIKE 'raw:%' ORDER BY 1").fetchall()]
    trained = [r[0] for r in con.execute("SELECT id FROM jobs WHERE kind = 'train' ORDER BY created_at, id").fetchall()]
    return {job_id: slot for slot, job_id in enumerate(raw + trained)}


def slots_for(job_ids: list[str], slots: dict[str, int]) -> list[int]:
    """Each model's slot; a model the workspace does not list takes the next free ones, in order."""
    spare = iter(range(len(slots), len(slots) + len(job_ids)))
    return [slots[j] if j in slots else next(spare) for j in job_ids]


@dataclass(frozen=True)
class Comparison:
    results: list[ModelResult]
    sources: list[str]  # the sources the common pairs hold, in name order
    n_common: int  # pairs every model has scored
    left_out: dict[str, int]  # model label -> its scored pairs not in the common set (only those with some)
    ece_bins: int
    reliability_bins: int
    slots: list[int]  # each result's colour slot (colour_slots)

    def labels(self) -> list[str]:
        """Each model's label, made unique (two jobs may share a name): keys for plots and legends."""
        seen: dict[str, int] = {}
        labels = []
        for result in self.results:
            seen[result.label] = seen.get(result.label, 0) + 1
            labels.append(result.label if seen[result.label] == 1 else f"{result.label} #{seen[result.label]}")
        return labels

    def table(self) -> list[list[str]]:
        """The papers' table as text cells: header, then one row per model."""
        header = ["model", *self.sources, "avg", "all", f"ECE@{self.ece_bins}", "n"]
        rows = [header]
        for label, row in zip(self.labels(), self.rows()):
            rows.append([label, *(_percent(row.accuracy.get(s, math.nan)) for s in self.sources),
                         _percent(row.average), _percent(row.overall), f"{row.ece:.4f}", f"{row.n:,}"])
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
    accuracy: dict[str, float]  # per source
    average: float  # the unweighted mean of the per-source accuracies, as the papers' "Avg." column
    overall: float  # accuracy over every pair
    ece: float  # two-entry ECE over every pair, ece_bins bins
    n: int


def table_row(result: ModelResult, sources: list[str], ece_bins: int) -> TableRow:
    per_source = {s: result.summaries[s].accuracy for s in sources if s in result.summaries}
    overall = result.summaries[metrics.ALL]
    average = float(np.mean(list(per_source.values()))) if per_source else math.nan
    return TableRow(result.label, per_source, average, overall.accuracy, overall.ece[ece_bins], overall.n)


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
    slots = slots_for([m.job_id for m in models], colour_slots(con))
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
    texts = {row[0]: row[1:] for row in con.execute(
        "SELECT id, prompt, chosen, rejected FROM pairs WHERE list_contains(?, id)",
        [[int(ids[i]) for i, _ in picked]]).fetchall()}
    return [OutlierPair(int(ids[i]), names[result.rewards.source_code[i]], float(d[i]), side, *texts.get(int(ids[i]), ("", "", "")))
            for i, side in picked]


def _percent(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}"
