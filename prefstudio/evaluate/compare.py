"""Several scored models side by side, on the same pairs: the papers' table, shared plot ranges, outliers.

docs/methods.md ("Evaluation") compares models on the same pairs. Models scored at
different times may cover different pairs (pairs imported in between, a split
re-drawn), so a comparison keeps only the pairs every chosen model has scored
and says how many it left out. The app and `prefstudio report` both build
their tables and plots from `compare()`, so the two never disagree.

Models of one setting trained with several seeds form a cell (cells_of); the
table then shows each cell's mean ± its 95 % interval, and compare_cells tests
cells against each other on the same pairs (uncertainty.py). The length
baseline ("the longer response wins") is computed on the same common pairs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import metrics, uncertainty
from prefstudio.evaluate.predictions import Rewards, Scored, load_rewards
from prefstudio.train.sweep import cell_of

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
    """A fixed place per model of the workspace: raw baselines by name, then reward models scored as they are
    (model:NAME), then jobs by creation, each job's checkpoints by step. A model keeps its colour and marker in
    every plot (the app's, the report's, best-of-N's) whichever others are drawn beside it, and two checkpoints
    of one job never share them."""
    # from `metrics` (a few rows per scored model) and best-of-N's scores: `predictions` holds a row per pair
    rows = con.execute(
        """WITH models AS (SELECT DISTINCT job_id, checkpoint FROM metrics
                           UNION SELECT DISTINCT scorer, checkpoint FROM bon_scores)
           SELECT m.job_id, m.checkpoint FROM models m LEFT JOIN jobs j ON j.id = m.job_id
           ORDER BY m.job_id NOT LIKE 'raw:%', m.job_id NOT LIKE 'model:%', j.created_at NULLS LAST, m.job_id,
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


LENGTH = "length"
LENGTH_NOTE = ("length: the longer response (in characters) gets the higher reward, d = len(chosen) − len(rejected), "
               "a tie (equal length) counting half; it has no probability, so no ECE. A reward model that does not "
               "beat it has learned length.")


@dataclass(frozen=True)
class Cell:
    """One setting trained with one or more seeds: the runs a mean and an interval are taken over."""

    label: str
    members: list[int]  # indices into Comparison.results

    @property
    def seeds(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class Comparison:
    results: list[ModelResult]
    sources: list[str]  # the sources the common pairs hold, in name order
    n_common: int  # pairs every model has scored
    left_out: dict[str, int]  # model label -> its scored pairs not in the common set (only those with some)
    ece_bins: int
    reliability_bins: int
    slots: list[int]  # each result's colour and marker slot (colour_slots), one per (job, checkpoint)
    cells: list[Cell] = field(default_factory=list)  # the results grouped by setting (cells_of), first seen first
    length: ModelResult | None = None  # the length baseline on the common pairs (length_baseline); None with none

    @property
    def grouped(self) -> bool:
        """Whether some setting has several seeds here: then the tables show means and intervals per cell."""
        return any(cell.seeds > 1 for cell in self.cells)

    def labels(self) -> list[str]:
        """Each model's label, made unique (two jobs may share a name): keys for plots and legends."""
        seen: dict[str, int] = {}
        labels = []
        for result in self.results:
            seen[result.label] = seen.get(result.label, 0) + 1
            labels.append(result.label if seen[result.label] == 1 else f"{result.label} #{seen[result.label]}")
        return labels

    def header(self) -> list[str]:
        return ["model", *self.sources, "avg", "all", "ties", f"ECE@{self.ece_bins}", "n"]

    def table(self) -> list[list[str]]:
        """The papers' table as text cells: header, a row per cell (mean ± 95 % half-width over its seeds) when some
        setting has several seeds, else a row per model; then the length baseline. Ties are over every pair."""
        body = self.cell_table()[1:] if self.grouped else self.model_table()[1:]
        return [self.header(), *body, *([self.length_row()] if self.length is not None else [])]

    def model_table(self) -> list[list[str]]:
        """Header, then one row per model, whatever its cell."""
        rows = [self.header()]
        for label, row in zip(self.labels(), self.rows()):
            rows.append([label, *(_percent(row.accuracy.get(s, math.nan)) for s in self.sources),
                         _percent(row.average), _percent(row.overall), f"{row.overall_ties:,}", f"{row.ece:.4f}",
                         f"{row.n:,}"])
        return rows

    def cell_table(self) -> list[list[str]]:
        """Header, then one row per cell: each figure as mean ± half-width of its 95 % t-interval over the seeds."""
        rows = [self.header()]
        for cell in self.cells:
            figures = self.cell_intervals(cell)
            rows.append([f"{cell.label} ({cell.seeds} {'seed' if cell.seeds == 1 else 'seeds'})",
                         *(_interval(figures[s], 100, 1) for s in self.sources), _interval(figures["avg"], 100, 1),
                         _interval(figures[metrics.ALL], 100, 1), _interval(figures["ties"], 1, 1),
                         _interval(figures["ece"], 1, 4), f"{self.n_common:,}"])
        return rows

    def length_row(self) -> list[str]:
        row = table_row(self.length, self.sources, self.ece_bins)
        return [LENGTH, *(_percent(row.accuracy.get(s, math.nan)) for s in self.sources), _percent(row.average),
                _percent(row.overall), f"{row.overall_ties:,}", "—", f"{row.n:,}"]

    def rows(self) -> list[TableRow]:
        return [table_row(result, self.sources, self.ece_bins) for result in self.results]

    def cell_intervals(self, cell: Cell) -> dict[str, uncertainty.Interval]:
        """Each figure of the table over the cell's seeds: per source, avg, all (accuracies), ties and ece."""
        rows = [self.rows()[m] for m in cell.members]
        figures = {s: [row.accuracy.get(s, math.nan) for row in rows] for s in self.sources}
        figures.update({"avg": [row.average for row in rows], metrics.ALL: [row.overall for row in rows],
                        "ties": [row.overall_ties for row in rows], "ece": [row.ece for row in rows]})
        return {name: uncertainty.mean_interval(values) for name, values in figures.items()}

    def source_codes(self) -> np.ndarray:
        """Each common pair's source as an index into self.sources (the pairs in pair_id order, as every result's)."""
        first = self.results[0].rewards if self.results else (self.length.rewards if self.length else None)
        if first is None:
            return np.array([], dtype=np.int64)
        lookup = np.array([self.sources.index(name) for name in first.source_names], dtype=np.int64)
        return lookup[first.source_code] if first.source_code.size else np.array([], dtype=np.int64)

    def cell_rewards(self, cell: Cell) -> np.ndarray:
        """The cell's d as seeds × common pairs."""
        return np.stack([self.results[m].rewards.d for m in cell.members])

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
    length = None
    if common is not None and common.size:
        length = length_baseline(con, common, models[0].split, ece_bins=tuple(sorted({*metrics.ECE_BINS, ece_bins})),
                                 reliability_bins=reliability_bins)
    return Comparison(results, names, int(common.size) if common is not None else 0, left_out, ece_bins,
                      reliability_bins, slots, cells_of(models, training_configs(con, [m.job_id for m in models])),
                      length)


def training_configs(con, job_ids: list[str]) -> dict[str, dict]:
    """Each job's frozen training config (the jobs table's `config`), for the jobs that have one."""
    rows = con.execute("SELECT id, config FROM jobs WHERE list_contains(?, id) AND config IS NOT NULL",
                       [list(job_ids)]).fetchall()
    configs = {}
    for job_id, config in rows:
        try:
            value = json.loads(config) if isinstance(config, str) else config
        except ValueError:
            continue
        if isinstance(value, dict) and "backbone" in value:  # a training job's config, not a scoring job's
            configs[job_id] = value
    return configs


def cells_of(models: list[Scored], configs: dict[str, dict]) -> list[Cell]:
    """Models grouped by setting: the same training config but for seed, sweep and name, at the same checkpoint.

    A model without a training config (a raw baseline) is a cell of its own, named as the model. The others are
    named by the settings that tell them apart (`objective=more, lr=1e-05`), else by their objective, and by their
    checkpoint where a setting is compared at several."""
    keys, settings = [], []
    for model in models:
        config = configs.get(model.job_id)
        if config is None:
            keys.append(("model", model.job_id, model.checkpoint))
            settings.append(None)
            continue
        kept = cell_of(config)
        keys.append(("config", json.dumps(kept, sort_keys=True, default=str), model.checkpoint))
        settings.append(kept)
    members: dict[tuple, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    configured = [settings[m[0]] for m in members.values() if settings[m[0]] is not None]
    differing = sorted({k for c in configured for k in c if any(o.get(k) != c.get(k) for o in configured)})
    checkpoints = {}
    for key in members:
        if key[0] == "config":
            checkpoints.setdefault(key[1], set()).add(key[2])
    cells, used = [], {}
    for key, indices in members.items():
        setting = settings[indices[0]]
        if setting is None:
            label = models[indices[0]].label
        else:
            shown = [f"{k}={_setting(setting.get(k))}" for k in differing]
            label = ", ".join(shown) if shown else f"objective={setting.get('objective')}"
            if len(checkpoints[key[1]]) > 1:
                label += f" @ {key[2]}"
        used[label] = used.get(label, 0) + 1
        cells.append(Cell(label if used[label] == 1 else f"{label} #{used[label]}", indices))
    return cells


def _setting(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 32 else "…" + text[-31:]


def length_baseline(con, pair_ids: np.ndarray, split: str, **options) -> ModelResult:
    """"The longer response wins" on these pairs: r = each response's length in characters (DuckDB's length(),
    Unicode code points, as Python's len), so d = len(chosen) − len(rejected) and accuracy counts a tie half."""
    con.complete()
    table = con.sql(
        """SELECT id AS pair_id, source, length(chosen)::DOUBLE AS r_chosen, length(rejected)::DOUBLE AS r_rejected
           FROM pairs WHERE id IN (SELECT unnest(?::BIGINT[])) ORDER BY id""",
        params=[[int(i) for i in pair_ids]]).to_arrow_table()
    sources = table.column("source").combine_chunks().dictionary_encode()
    column = lambda name: np.asarray(table.column(name).to_numpy(), dtype=np.float64)  # noqa: E731
    rewards = Rewards(np.asarray(table.column("pair_id").to_numpy(), dtype=np.int64),
                      np.asarray(sources.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                      sources.dictionary.to_pylist(), column("r_chosen"), column("r_rejected"))
    model = Scored(LENGTH, "characters", split, int(rewards.pair_id.size), LENGTH)
    return ModelResult(model, rewards, rewards.summaries(**options))


@dataclass(frozen=True)
class CellComparison:
    """Cell a against cell b on the same pairs: each figure's difference a − b (uncertainty.Difference)."""

    a: str
    b: str
    differences: dict[str, uncertainty.Difference]  # uncertainty.FIGURES -> the difference


def find_cell(comparison: Comparison, name: str) -> str:
    """The cell a user named by its label, a member's job id, or `length`."""
    if name == LENGTH and comparison.length is not None:
        return LENGTH
    for cell in comparison.cells:
        if name in (cell.label, f"{cell.label} ({cell.seeds} seeds)") or any(
                comparison.results[m].model.job_id == name for m in cell.members):
            return cell.label
    names = ", ".join([repr(c.label) for c in comparison.cells] + [repr(LENGTH)])
    raise PrefstudioError(f"--baseline {name!r}: no such cell among the compared models; name one of {names} "
                          "or a job id of one")


def compare_cells(comparison: Comparison, *, bootstrap: int = uncertainty.DEFAULT_BOOTSTRAP,
                  seed: int = uncertainty.DEFAULT_SEED, baseline: str | None = None) -> list[CellComparison]:
    """Each pair of cells (or each cell against `baseline`) by the paired bootstrap over the common pairs, seeds
    pooled; every comparison uses the same draws. None when there is nothing to compare."""
    if bootstrap < 1:
        raise PrefstudioError(f"--bootstrap {bootstrap}: expected at least 1 draw (2,000 is the default)")
    baseline = find_cell(comparison, baseline) if baseline is not None else None
    named = [(cell.label, comparison.cell_rewards(cell), True) for cell in comparison.cells]
    if baseline == LENGTH:
        named.append((LENGTH, comparison.length.rewards.d[None, :], False))
    if len(named) < 2 or not comparison.n_common:
        return []
    if baseline is None:
        pairs = [(i, j) for i in range(len(named)) for j in range(i + 1, len(named))]
    else:
        base = next(i for i, (label, _, _) in enumerate(named) if label == baseline)
        pairs = [(i, base) for i in range(len(named)) if i != base]
    codes = comparison.source_codes()
    n_sources = len(comparison.sources)
    draws = uncertainty.bootstrap_figures([d for _, d, _ in named], codes, n_sources, ece_bins=comparison.ece_bins,
                                          bootstrap=bootstrap, seed=seed, with_ece=[e for _, _, e in named])
    per_seed = [uncertainty.cell_figures(d, codes, n_sources, comparison.ece_bins) for _, d, _ in named]
    for (_, _, ece_too), figures in zip(named, per_seed):
        if not ece_too:
            figures[uncertainty.ECE] = np.full_like(figures[uncertainty.ECE], np.nan)
    return [CellComparison(named[i][0], named[j][0], {
        figure: uncertainty.difference(figure, per_seed[i][figure], per_seed[j][figure], draws[i][figure],
                                       draws[j][figure], comparison.n_common)
        for figure in uncertainty.FIGURES}) for i, j in pairs]


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


def _interval(interval: uncertainty.Interval, scale: float, digits: int) -> str:
    """mean ± half-width, scaled (100 for percent); the mean alone with one seed."""
    if interval.mean != interval.mean:
        return "-"
    mean = f"{scale * interval.mean:,.{digits}f}"
    return mean if interval.half_width != interval.half_width else f"{mean} ± {scale * interval.half_width:,.{digits}f}"


FIGURE_NAMES = {uncertainty.ACCURACY_ALL: "accuracy (all)", uncertainty.ACCURACY_AVG: "accuracy (avg)",
                uncertainty.ECE: "ECE"}
INTERVALS_NOTE = ("one row per cell (the jobs whose training config differs only in seed, sweep and name): each "
                  "figure as mean ± half-width of its 95 % Student-t interval over the seeds (n − 1 degrees of "
                  "freedom); each model's own row is in the per-model tables.")


def _scale(figure: str) -> tuple[float, int]:
    """Accuracies in points (percent), ECE as it is."""
    return (1.0, 4) if figure == uncertainty.ECE else (100.0, 1)


def comparisons_table(tests: list[CellComparison]) -> list[list[str]]:
    """Header, then a row per comparison and figure: a − b, its 95 % bootstrap interval, p and Cohen's d."""
    rows = [["a", "b", "figure", "a", "b", "a − b", "95 % interval", "p", "effect d"]]
    for test in tests:
        for figure, diff in test.differences.items():
            if diff.difference != diff.difference:
                continue  # the length baseline has no ECE
            scale, digits = _scale(figure)
            rows.append([test.a, test.b, FIGURE_NAMES[figure], f"{scale * diff.a:.{digits}f}",
                         f"{scale * diff.b:.{digits}f}", f"{scale * diff.difference:+.{digits}f}",
                         f"[{scale * diff.low:+.{digits}f}, {scale * diff.high:+.{digits}f}]", _p(diff.p),
                         "—" if diff.effect_size != diff.effect_size else f"{diff.effect_size:+.2f}"])
    return rows


def _p(p: float) -> str:
    if p != p:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def power_lines(tests: list[CellComparison], comparison: Comparison) -> list[str]:
    """The power note, a line per comparison, for accuracy over every pair and for ECE."""
    seeds = {cell.label: cell.seeds for cell in comparison.cells} | {LENGTH: 1}
    lines = []
    for test in tests:
        for figure in (uncertainty.ACCURACY_ALL, uncertainty.ECE):
            diff = test.differences[figure]
            if diff.difference != diff.difference:
                continue
            scale, digits = _scale(figure)
            unit = " points" if scale == 100 else ""
            now = f"{seeds[test.a]} and {seeds[test.b]} seeds" if seeds[test.a] != seeds[test.b] \
                else f"{seeds[test.a]} seeds"
            parts = [_needs(diff.observed_power, f"the observed {scale * abs(diff.difference):.{digits}f}{unit}",
                            comparison.n_common, now),
                     _needs(diff.one_point_power, f"{'1 point' if scale == 100 else '0.01'}", comparison.n_common,
                            now)]
            lines.append(f"{test.a} − {test.b}, {FIGURE_NAMES[figure]}: " + "; ".join(parts) + ".")
    return lines


def _needs(power: uncertainty.Power, size: str, n_pairs: int, seeds_now: str) -> str:
    if power.target != power.target or not power.target:
        return f"{size}: no difference to power"
    if not power.seed_spread_known:
        pairs = f"{power.pairs:,} pairs" if power.pairs else "more pairs"
        return f"{size}: seed spread unknown (one seed per cell); 80 % needs {pairs} if seeds did not vary"
    seeds = (f"{power.seeds} seeds per cell with these {n_pairs:,} pairs" if power.seeds
             else f"seeds alone cannot with these {n_pairs:,} pairs")
    pairs = f"{power.pairs:,} pairs with {seeds_now}" if power.pairs else f"pairs alone cannot with {seeds_now}"
    plan = f"; or {power.plan[0]} seeds and {power.plan[1]:,} pairs" if power.plan else ""
    return f"{size}: power now {power.power_now:.0%}; 80 % needs {seeds}; {pairs}{plan}"


POWER_NOTE = ("Power at α = 0.05 (two-sided) by the normal approximation Var(a − b) = s²·(1/n_a + 1/n_b) + V/N: "
              "s² the seed-to-seed variance of the figure pooled over the two cells, V/N the bootstrap variance of "
              "the difference on these N pairs (scaled as 1/N for other pair counts); 80 % power needs "
              "|a − b| ≥ 2.80·√Var. The last pair of numbers splits the allowed variance half and half.")
