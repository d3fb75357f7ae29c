"""A comparison written down for a paper or a PR: Markdown, CSV and PNG files in one folder.

Everything comes from compare.compare(), as the app's Evaluate screen does, so
the files and the screen never disagree. The CSVs hold plain numbers (fractions,
not percent strings; an empty cell where a figure is undefined) so a script
can rebuild any table; report.md holds the same figures formatted for reading.

Where models share a setting (compare.Cell: seeds of one config), the table has a
row per cell with its 95 % t-interval, and a Comparisons section holds the paired
bootstrap of every pair of cells (compare.compare_cells, docs/methods.md,
"Comparing runs: intervals and tests"); every table ends with the length baseline.

The plots use matplotlib's object API on an Agg canvas, never pyplot: nothing
global is switched (a caller's own backend stays as it was) and the app may
draw from a worker thread. matplotlib is imported inside the functions that
draw, so the command line starts without paying for it.

Over 400 lines because one report is several files that must agree: splitting the
writers apart would spread one table's formatting over modules.
"""

from __future__ import annotations

import csv
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prefstudio import __version__
from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import compare as comparing
from prefstudio.evaluate import calibration, metrics, uncertainty
from prefstudio.evaluate.compare import Comparison, ModelResult, compare, marker, odd_bins_note, outlier_pairs
from prefstudio.evaluate.predictions import Scored, metric_values

FILES = ("report.md", "comparison.csv", "metrics.csv", "comparisons.csv", "reliability.csv", "margins.csv",
         "outliers.csv",
         "histogram.png", "reliability.png", "accuracy.png")
EXCERPT = 500  # characters of each text in outliers.csv: enough to recognise a pair, not a whole transcript
OUTLIERS_IN_MARKDOWN = 10  # per model; outliers.csv lists up to OUTLIER_LIMIT per model and group
OUTLIERS_PER_SOURCE_IN_MARKDOWN = 5
OUTLIER_LIMIT = 200


def write_report(con, models: list[Scored], out_dir: str | Path, *, sources: list[str] | None = None,
                 ece_bins: int = metrics.DEFAULT_ECE_BINS, reliability_bins: int = metrics.DEFAULT_RELIABILITY_BINS,
                 hist_bins: int = 40, bootstrap: int = uncertainty.DEFAULT_BOOTSTRAP,
                 seed: int = uncertainty.DEFAULT_SEED, baseline: str | None = None) -> list[Path]:
    """Compare `models` on their common pairs (of `sources`, if given) and write every file of FILES into out_dir."""
    if not models:
        raise PrefstudioError("no model to report on; name scored jobs (see `prefstudio report --help`)")
    for name, value in (("ECE bins", ece_bins), ("reliability bins", reliability_bins), ("histogram bins", hist_bins)):
        if value < 1:
            raise PrefstudioError(f"{name} {value}: expected at least 1")
    comparison = compare(con, models, sources=sources, ece_bins=ece_bins, reliability_bins=reliability_bins)
    check_common(comparison)
    tests = cell_tests(comparison, bootstrap=bootstrap, seed=seed, baseline=baseline)
    return write_comparison(con, comparison, out_dir, hist_bins=hist_bins, tests=tests)


def check_common(comparison: Comparison) -> None:
    if comparison.n_common == 0:
        labels = ", ".join(r.label for r in comparison.results)
        raise PrefstudioError(f"{labels}: no scored pair in common on this split (and these sources); "
                              "nothing to report")


def cell_tests(comparison: Comparison, *, bootstrap: int = uncertainty.DEFAULT_BOOTSTRAP,
               seed: int = uncertainty.DEFAULT_SEED, baseline: str | None = None) -> CellTests:
    """The report's comparisons: made when some setting has several seeds, or a baseline cell is named."""
    if bootstrap < 1:
        raise PrefstudioError(f"--bootstrap {bootstrap}: expected at least 1 draw (2,000 is the default)")
    if not comparison.grouped and baseline is None:
        return CellTests([], bootstrap, seed)
    return CellTests(comparing.compare_cells(comparison, bootstrap=bootstrap, seed=seed, baseline=baseline),
                 bootstrap, seed)


@dataclass(frozen=True)
class CellTests:
    comparisons: list[comparing.CellComparison]
    bootstrap: int
    seed: int


def write_comparison(con, comparison: Comparison, out_dir: str | Path, *, hist_bins: int = 40,
                     tests: CellTests | None = None, margins: calibration.ComparedMargins | None = None) -> list[Path]:
    """The files of a comparison already made (the command line prints its tables too, and computes them once)."""
    check_common(comparison)
    tests = tests if tests is not None else cell_tests(comparison)
    margins = margins if margins is not None else calibration.for_comparison(con, comparison)
    out = _prepare(Path(out_dir))
    # per model (in comparison.results' order): its outliers fenced over every pair, then within each source
    outliers = [{group: outlier_pairs(con, r, None if group == metrics.ALL else group, OUTLIER_LIMIT)
                 for group in (metrics.ALL, *comparison.sources)} for r in comparison.results]
    return [
        _write_markdown(out / "report.md", comparison, outliers, tests, margins),
        _write_comparison_csv(out / "comparison.csv", comparison),
        _write_metrics_csv(out / "metrics.csv", comparison),
        _write_comparisons_csv(out / "comparisons.csv", comparison, tests),
        _write_reliability_csv(out / "reliability.csv", comparison),
        _write_margins_csv(out / "margins.csv", comparison, margins),
        _write_outliers_csv(out / "outliers.csv", comparison, outliers),
        plot_histogram(out / "histogram.png", comparison, hist_bins),
        plot_reliability(out / "reliability.png", comparison),
        plot_accuracy(out / "accuracy.png", comparison),
    ]


def damaged_lines(jobs_dir: Path) -> list[str]:
    """One line per scoring job whose output is damaged (a Parquet part cut short): the report goes on without it."""
    from prefstudio.jobs import kinds, list_jobs
    from prefstudio.jobs.layout import INGESTED

    return [(f"note: scoring job {s.id} is {s.message} (its rewards came in before it was: they are used)"
             if (s.folder / INGESTED).exists() else f"left out: scoring job {s.id} is {s.message} ({s.folder})")
            for s in list_jobs(jobs_dir) if s.state == "damaged" and s.kind == kinds.EVAL]


def check_out(out: Path) -> None:
    """Say before any work is done that the files have nowhere to go."""
    if out.exists() and not out.is_dir():
        raise PrefstudioError(f"{out}: exists and is not a folder; --out needs a folder for the report's files")


def _prepare(out: Path) -> Path:
    check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrefstudioError(f"{out}: cannot make the report folder ({exc.strerror or exc})") from None
    return out


@contextmanager
def _replacing(path: Path, mode: str = "w"):
    """Write beside `path`, then rename over it: an interrupted report never leaves a truncated file."""
    part = path.with_name(path.name + ".part")
    try:
        with open(part, mode, **({"newline": "", "encoding": "utf-8"} if "b" not in mode else {})) as handle:
            yield handle
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise PrefstudioError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# -- tables as text ------------------------------------------------------------------------------------------

def text_table(rows: list[list[str]]) -> list[str]:
    """Cells aligned for a terminal: the first column to the left, numbers to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows]


def markdown_table(rows: list[list[str]], left: int = 1) -> list[str]:
    """A GitHub Markdown table: the header, then the rows; the first `left` columns aligned left, the rest right."""
    escape = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(escape(c) for c in rows[0]) + " |",
             "|" + "|".join(":---" if i < left else "---:" for i in range(len(rows[0]))) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows[1:]]
    return lines


def _fixed(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}"


def _number(value) -> str:
    """A CSV cell: the full value, or empty where it is undefined (NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


# -- Markdown ------------------------------------------------------------------------------------------------

def _write_markdown(path: Path, comparison: Comparison, outliers: list[dict], tests: CellTests,
                    margins: calibration.ComparedMargins) -> Path:
    results = comparison.results
    splits = sorted({r.model.split for r in results})
    ece_cols = sorted({b for r in results for b in r.summaries[metrics.ALL].ece})
    lines = ["# Reward model comparison", "",
             f"Split {', '.join(f'`{s}`' for s in splits)}: {comparison.n_common:,} pairs that every model has "
             f"scored ({', '.join(comparison.sources)}). Written by prefstudio {__version__}.", ""]
    if comparison.left_out:
        lines += ["Left out, scored by some models but not all: " + "; ".join(
            f"{label}: {n:,} pairs" for label, n in comparison.left_out.items()) + ".", ""]
    lines += ["## Accuracy", "",
              *markdown_table(comparison.table()), "",
              "Accuracy in % (share of pairs with d = r_chosen - r_rejected > 0; a tie, d = 0, counts half, as in "
              "MORE's code, which scores both orderings of a pair), per source; avg is the unweighted mean of the "
              "per-source accuracies, all is over every pair; ties is how many of all have d = 0 (per source "
              "below). "
              f"ECE@{comparison.ece_bins} is MORE's two-entry expected calibration error over every pair.", "",
              *([f"*{comparing.INTERVALS_NOTE[:1].upper()}{comparing.INTERVALS_NOTE[1:]}*", "",
                 *_cell_members(comparison)] if comparison.grouped else []),
              *([f"*{comparing.LENGTH_NOTE[:1].upper()}{comparing.LENGTH_NOTE[1:]}*", ""]
                if comparison.length is not None else []),
              *_footnote(odd_bins_note([comparison.ece_bins])),
              *_comparisons_markdown(comparison, tests),
              "![Accuracy per source](accuracy.png)", "",
              "## Reward differences", "",
              "![Histogram of reward differences](histogram.png)", "",
              "Per source: the distribution of d (population moments), ECE at several bin counts, and Tukey's "
              "outliers (beyond 1.5 IQR from the quartiles: how many, and their mean d).", "",
              *_footnote(odd_bins_note(ece_cols))]
    for r in results:
        header = ["source", "n", "accuracy %", "ties", "mean", "std", "skewness", "excess kurtosis", "d < 0 %",
                  *(f"ECE@{b}" for b in ece_cols), "outliers +", "mean +", "outliers -", "mean -"]
        rows = [header]
        for source, s in _groups(r):
            dist, out = s.distribution, s.outliers
            rows.append([source, f"{s.n:,}", _pct(s.accuracy), f"{s.ties:,}", _fixed(dist.mean), _fixed(dist.std),
                         _fixed(dist.skewness), _fixed(dist.excess_kurtosis), _pct(dist.share_negative),
                         *(_fixed(s.ece.get(b, math.nan), 4) for b in ece_cols),
                         str(out.n_positive), _fixed(out.mean_positive), str(out.n_negative),
                         _fixed(out.mean_negative)])
        lines += [f"### {r.label}", "", f"Job `{r.model.job_id}`, checkpoint `{r.model.checkpoint}`.", "",
                  *markdown_table(rows), ""]
    lines += ["## Calibration", "", "![Reliability diagram](reliability.png)", "",
              f"Reliability over every pair: confidence max(σ(d), 1 - σ(d)) in {comparison.reliability_bins} "
              "equal bins over [0.5, 1], a tie counting half in a bin's accuracy; per source in reliability.csv.",
              ""]
    for r in results:
        rows = [["confidence bin", "pairs", "mean confidence", "accuracy"]]
        rows += [[f"{b.lower:.3f}-{b.upper:.3f}", f"{b.count:,}", _fixed(b.confidence), _fixed(b.accuracy)]
                 for b in r.summaries[metrics.ALL].reliability]
        lines += [f"### {r.label}", "", *markdown_table(rows), ""]
    lines += _margins_markdown(comparison, margins)
    lines += ["## Outliers", "",
              f"Tukey's fences drawn over every pair, then within each source (a source's own spread can make "
              f"a pair stand out there and not overall); the most extreme first, up to {OUTLIERS_IN_MARKDOWN} "
              f"over every pair and {OUTLIERS_PER_SOURCE_IN_MARKDOWN} per source. outliers.csv lists them all "
              "with their texts.", ""]
    for r, of_model in zip(results, outliers):
        lines += [f"### {r.label}", ""]
        header = ["pair", "fenced within", "source", "side", "prompt", "d"]
        rows = [[str(o.pair_id), "every pair", o.source, o.side, _one_line(o.prompt, 80), f"{o.d:+.3f}"]
                for o in of_model[metrics.ALL][:OUTLIERS_IN_MARKDOWN]]
        for group, found in of_model.items():
            if group != metrics.ALL:
                rows += [[str(o.pair_id), group, o.source, o.side, _one_line(o.prompt, 80), f"{o.d:+.3f}"]
                         for o in found[:OUTLIERS_PER_SOURCE_IN_MARKDOWN]]
        lines += [*markdown_table([header, *rows], left=5), ""] if rows else ["None, over every pair or within a source.", ""]
    with _replacing(path) as handle:
        handle.write("\n".join(lines))
    return path


def _split_names(comparison: Comparison) -> str:
    return ", ".join(sorted({r.model.split for r in comparison.results}))


def _margins_markdown(comparison: Comparison, margins: calibration.ComparedMargins) -> list[str]:
    """Calibration by margin level: per model, a row per (source, level), each source closed by its ρ row."""
    lines = ["## Calibration by margin level", ""]
    if not margins.any:
        return [*lines, calibration.no_labels_line(_split_names(comparison)) + ".", ""]
    labels = margins.labels
    lines += [f"The {labels.n:,} of {margins.n_pairs:,} pairs with a margin label (the label that counts: "
              f"{calibration.kinds_text(labels.kinds)}), per level: mean d, accuracy (a tie counting half) and "
              f"ECE@{comparison.ece_bins}, with d running from the response the label calls better (a flipped "
              "label's pair enters with −d; flipped says how many). The all-levels row of each source holds "
              "Spearman's ρ(level, d), ties at average ranks. A model whose rewards know the margins has mean d "
              "rising with the level and ρ > 0 (docs/methods.md, \"Calibration by margin level\").", ""]
    for r, figures in zip(comparison.results, margins.figures):
        rows = [["source", *calibration.header(comparison.ece_bins), "ρ(level, d)"]]
        for source, of_source in figures.items():
            for row in calibration.level_rows(of_source):
                rho = calibration.signed(of_source.spearman) if row.level is None else ""
                rows.append([source, *calibration.cells(row), rho])
        lines += [f"### {r.label}", "", *markdown_table(rows, left=2), ""]
    return lines


def margin_lines(comparison: Comparison, margins: calibration.ComparedMargins) -> list[str]:
    """The terminal's short form: a row per model with ρ and the mean d at each level, over every source."""
    if not margins.any:
        return [calibration.no_labels_line(_split_names(comparison))]
    present = [level for level in calibration.LEVELS
               if any(row.level == level for f in margins.figures for row in f[metrics.ALL].levels)]
    rows = [["model", "ρ(level, d)", *(f"mean d @{level}" for level in present)]]
    for r, figures in zip(comparison.results, margins.figures):
        mean = {row.level: row.mean_d for row in figures[metrics.ALL].levels}
        rows.append([r.label, calibration.signed(figures[metrics.ALL].spearman),
                     *(calibration.signed(mean.get(level, math.nan)) for level in present)])
    labels = margins.labels
    return [f"margin labels on {labels.n:,} of {margins.n_pairs:,} pairs ({calibration.kinds_text(labels.kinds)}); "
            "d from the response the label calls better (report.md: per level and source)",
            *(f"  {line}" for line in text_table(rows))]


def margin_block(figures: dict[str, calibration.MarginFigures], labels: calibration.MarginLabels, n_pairs: int,
                 split: str, ece_bins: int) -> list[str]:
    """One model's short block (`eval --wait`): every source together, a row per level, then ρ."""
    if not figures:
        return [calibration.no_labels_line(split)]
    rows = [calibration.header(ece_bins), *(calibration.cells(row)
                                            for row in calibration.level_rows(figures[metrics.ALL]))]
    return [f"margin labels on {labels.n:,} of {n_pairs:,} {split} pairs ({calibration.kinds_text(labels.kinds)}); "
            "d from the response the label calls better:",
            *(f"  {line}" for line in text_table(rows)), f"  {calibration.rho_line(figures)}"]


def _cell_members(comparison: Comparison) -> list[str]:
    lines = ["Cells:", ""]
    for cell in comparison.cells:
        members = ", ".join(f"{comparison.results[m].label} (`{comparison.results[m].model.job_id}`)"
                            for m in cell.members)
        lines.append(f"- {cell.label}: {members}")
    return [*lines, ""]


def _comparisons_markdown(comparison: Comparison, tests: CellTests) -> list[str]:
    if not tests.comparisons:
        return []
    return ["## Comparisons", "",
            f"Paired bootstrap over the {comparison.n_common:,} common test pairs, seeds pooled: each of "
            f"{tests.bootstrap:,} draws (numpy default_rng, seed {tests.seed}) resamples the pairs with replacement, "
            "the same pairs for both cells and every seed of each; a cell's figure on a draw is the mean over its "
            "seeds. a − b is the observed difference of the cells' means (accuracies in points), the interval the "
            "2.5th and 97.5th percentiles of the draws, p = 2·min(share ≤ 0, share ≥ 0), at least 1/(B + 1); "
            "effect d is Cohen's d over seeds, a − b over the pooled seed-to-seed standard deviation (— with one "
            "seed per cell). The bootstrap holds the trained models fixed: the seed spread is in the intervals "
            "above and in the power note below.", "",
            *markdown_table(comparing.comparisons_table(tests.comparisons), left=3), "",
            "### Power", "", comparing.POWER_NOTE, "",
            *(f"- {line}" for line in comparing.power_lines(tests.comparisons, comparison)), ""]


def _footnote(note: str) -> list[str]:
    """A note under a table, as its own paragraph in italics; nothing when there is none."""
    return [f"*{note[:1].upper()}{note[1:]} (docs/methods.md, \"Odd bin counts\").*", ""] if note else []


def _groups(result: ModelResult):
    """(source, summary) per source, then over every pair: the order of the tables."""
    return sorted(result.summaries.items(), key=lambda item: (item[0] == metrics.ALL, item[0]))


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"


# -- CSV -----------------------------------------------------------------------------------------------------

def _identity(r: ModelResult) -> list[str]:
    return [r.label, r.model.job_id, r.model.checkpoint, r.model.split]


def _write_comparison_csv(path: Path, comparison: Comparison) -> Path:
    """The papers' table with numbers: accuracies as fractions, one column per source, then the ties of each."""
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["model", "job_id", "checkpoint", "split", "cell", *(f"accuracy_{s}" for s in comparison.sources),
                      "accuracy_avg", "accuracy_all", *(f"ties_{s}" for s in comparison.sources), "ties_all",
                      f"ece_{comparison.ece_bins}", "n"])
        cell_of = {m: cell.label for cell in comparison.cells for m in cell.members}
        rows = [(r, comparing.table_row(r, comparison.sources, comparison.ece_bins), cell_of.get(i, ""))
                for i, r in enumerate(comparison.results)]
        if comparison.length is not None:  # no probability, so no ECE: an empty cell
            row = comparing.table_row(comparison.length, comparison.sources, comparison.ece_bins)
            rows.append((comparison.length, comparing.TableRow(**{**row.__dict__, "ece": math.nan}), ""))
        for r, row, cell in rows:
            out.writerow([*_identity(r), cell, *(_number(row.accuracy.get(s, math.nan)) for s in comparison.sources),
                          _number(row.average), _number(row.overall),
                          *(row.ties.get(s, "") for s in comparison.sources), row.overall_ties, _number(row.ece),
                          row.n])
    return path


def _write_metrics_csv(path: Path, comparison: Comparison) -> Path:
    """Every figure in long form, with the same names as the workspace's metrics table."""
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["model", "job_id", "checkpoint", "split", "source", "metric", "value"])
        for r in comparison.results:
            for source, summary in _groups(r):
                for name, value in metric_values(summary).items():
                    out.writerow([*_identity(r), source, name, _number(value)])
        if comparison.length is not None:  # accuracy only: its d is a length, not a reward
            for source, summary in _groups(comparison.length):
                for name, value in (("n", summary.n), ("accuracy", summary.accuracy), ("ties", summary.ties)):
                    out.writerow([*_identity(comparison.length), source, name, _number(value)])
        if comparison.grouped:  # each cell's means and 95 % half-widths over its seeds; job_id "cell"
            split = ", ".join(sorted({r.model.split for r in comparison.results}))
            for cell in comparison.cells:
                figures = comparison.cell_intervals(cell)
                named = [(s, "accuracy", figures[s]) for s in comparison.sources]
                named += [("avg", "accuracy", figures["avg"]), (metrics.ALL, "accuracy", figures[metrics.ALL]),
                          (metrics.ALL, "ties", figures["ties"]),
                          (metrics.ALL, f"ece_{comparison.ece_bins}", figures["ece"])]
                for source, name, interval in named:
                    for suffix, value in (("mean", interval.mean), ("half_width", interval.half_width),
                                          ("seeds", interval.n)):
                        out.writerow([cell.label, "cell", "", split, source, f"{name}_{suffix}", _number(value)])
    return path


def _write_comparisons_csv(path: Path, comparison: Comparison, tests: CellTests) -> Path:
    """Each comparison of two cells, a figure a row: the bootstrap's difference, interval, p, effect, power."""
    seeds = {cell.label: cell.seeds for cell in comparison.cells} | {comparing.LENGTH: 1}
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["a", "b", "figure", "a_value", "b_value", "difference", "low", "high", "p", "effect_size",
                      "bootstrap_sd", "bootstrap", "seed", "pairs", "seeds_a", "seeds_b", "power_now",
                      "seeds_needed", "pairs_needed", "seeds_needed_1pt", "pairs_needed_1pt"])
        for test in tests.comparisons:
            for figure, d in test.differences.items():
                if d.difference != d.difference:
                    continue
                seen, point = d.observed_power, d.one_point_power
                out.writerow([test.a, test.b, figure, _number(d.a), _number(d.b), _number(d.difference),
                              _number(d.low), _number(d.high), _number(d.p), _number(d.effect_size),
                              _number(d.bootstrap_sd), tests.bootstrap, tests.seed, comparison.n_common,
                              seeds[test.a], seeds[test.b], _number(seen.power_now), seen.seeds or "",
                              seen.pairs or "", point.seeds or "", point.pairs or ""])
    return path


def _write_reliability_csv(path: Path, comparison: Comparison) -> Path:
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["model", "job_id", "checkpoint", "split", "source", "lower", "upper", "count", "confidence",
                      "accuracy"])
        for r in comparison.results:
            for source, summary in _groups(r):
                for b in summary.reliability:
                    out.writerow([*_identity(r), source, _number(b.lower), _number(b.upper), b.count,
                                  _number(b.confidence), _number(b.accuracy)])
    return path


def _write_margins_csv(path: Path, comparison: Comparison, margins: calibration.ComparedMargins) -> Path:
    """A row per (model, source, level), then the source's all-levels row with ρ; the header alone without labels."""
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["model", "job_id", "checkpoint", "split", "source", "level", "level_name", "pairs", "flipped",
                      "mean_d", "accuracy", f"ece_{comparison.ece_bins}", "spearman"])
        for r, figures in zip(comparison.results, margins.figures):
            for source, of_source in figures.items():
                for row in calibration.level_rows(of_source):
                    out.writerow([*_identity(r), source, "all" if row.level is None else row.level, row.name, row.n,
                                  row.flipped, _number(row.mean_d), _number(row.accuracy), _number(row.ece),
                                  _number(of_source.spearman) if row.level is None else ""])
    return path


def _write_outliers_csv(path: Path, comparison: Comparison, outliers: list[dict]) -> Path:
    """Each model's outliers, fenced over every pair ("among" = all) and within each source, with their texts."""
    with _replacing(path) as handle:
        out = csv.writer(handle)
        out.writerow(["model", "job_id", "checkpoint", "split", "among", "pair_id", "source", "d", "side", "prompt",
                      "chosen", "rejected"])
        for r, of_model in zip(comparison.results, outliers):
            for group, listed in of_model.items():
                for o in listed:
                    out.writerow([*_identity(r), group, o.pair_id, o.source, _number(o.d), o.side,
                                  _excerpt(o.prompt), _excerpt(o.chosen), _excerpt(o.rejected)])
    return path


# -- PNG -----------------------------------------------------------------------------------------------------

def figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (see the module's docstring for why not pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    with _replacing(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path


def colours(slots: list[int]) -> list:
    """The colour of each model's slot (compare.colour_slots): a model keeps its colour from plot to plot.

    Always tab10, whatever the other slots drawn: tab20 would recolour every model once one slot passed 9,
    and its neighbouring slots are two shades of one hue. Slots ten apart share a colour, never a marker."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return [palette(slot % palette.N) for slot in slots]


def markers(slots: list[int]) -> list[str]:
    """The marker of each model's slot (compare.marker): models told apart in greyscale too."""
    return [marker(slot) for slot in slots]


HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--", "||", "**", "OO")
"""A bar's stand-in for a marker, by the same slot index (compare.MARKS has as many)."""


def hatches(slots: list[int]) -> list[str]:
    return [HATCHES[slot % len(HATCHES)] for slot in slots]


def _legend(fig, entries: int, columns: int = 3) -> None:
    """Below the plot, where it can hide no bar, point or line however the data fall."""
    fig.legend(loc="outside lower center", ncols=min(columns, entries), fontsize="small", frameon=False)


def _title(comparison: Comparison, what: str) -> str:
    splits = ", ".join(sorted({r.model.split for r in comparison.results}))
    return f"{what} (split {splits}, {comparison.n_common:,} pairs)"


def plot_histogram(path: Path, comparison: Comparison, bins: int) -> Path:
    return save_png(histogram_figure(comparison, bins), path)


def histogram_figure(comparison: Comparison, bins: int):
    """Every model's histogram of d, overlaid on shared bins, as the share of its pairs; d = 0 marked.

    Each outline carries its model's marker on up to MARKS_PER_LINE of its bins, staggered between models so
    that two outlines that coincide still show both markers."""
    edges, counts = comparison.histograms(bins)
    centres = (edges[:-1] + edges[1:]) / 2
    every = max(1, -(-bins // MARKS_PER_LINE))
    fig = figure(8, 4.8)
    ax = fig.add_subplot()
    styles = zip(colours(comparison.slots), markers(comparison.slots))
    for i, (r, c, (colour, mark)) in enumerate(zip(comparison.results, counts, styles)):
        share = 100 * c / c.sum() if c.sum() else np.zeros(len(c))
        ax.stairs(share, edges, fill=True, alpha=0.3, color=colour)
        ax.stairs(share, edges, color=colour, linewidth=1.4)
        shown = np.arange(i % every, len(share), every)
        shown = shown[share[shown] > 0]
        ax.plot(centres[shown], share[shown], linestyle="none", marker=mark, markersize=5, color=colour)
        ax.plot([], [], color=colour, linewidth=1.4, marker=mark, markersize=5, label=r.label)  # its legend entry
    if edges[0] < 0 < edges[-1]:
        ax.axvline(0.0, color="black", linestyle="--", linewidth=1, label="d = 0")
    ax.set_xlim(edges[0], edges[-1])
    label = "reward difference d = r(chosen) - r(rejected)"
    if any(((r.rewards.d < edges[0]) | (r.rewards.d > edges[-1])).any() for r in comparison.results):
        label += "\n(the end bins also hold the pairs beyond Q1 - 3·IQR and Q3 + 3·IQR)"
    ax.set_xlabel(label)
    ax.set_ylabel("pairs per bin (%)")
    ax.set_title(_title(comparison, "Reward differences"))
    _legend(fig, len(comparison.results) + 1)
    return fig


MARKS_PER_LINE = 12  # markers on one histogram outline: enough to follow it, few enough to read the bars


def plot_reliability(path: Path, comparison: Comparison) -> Path:
    return save_png(reliability_figure(comparison), path)


def reliability_figure(comparison: Comparison):
    """Accuracy against mean confidence per bin, over every pair, for each model; the diagonal is calibrated."""
    fig = figure(6, 5.5)
    ax = fig.add_subplot()
    ax.plot([0.5, 1.0], [0.5, 1.0], color="0.5", linestyle="--", linewidth=1, label="calibrated")
    for r, colour, mark in zip(comparison.results, colours(comparison.slots), markers(comparison.slots)):
        summary = r.summaries[metrics.ALL]
        filled = [b for b in summary.reliability if b.count]
        x, y = [b.confidence for b in filled], [b.accuracy for b in filled]
        ax.plot(x, y, marker=mark, markersize=5, color=colour,
                label=f"{r.label}, ECE@{comparison.ece_bins} {summary.ece[comparison.ece_bins]:.3f}")
        # a bin's dot grows with its pairs, so a wild point made of two pairs does not look like a finding
        ax.scatter(x, y, s=[12 + 240 * b.count / summary.n for b in filled], color=colour, marker=mark, alpha=0.45)
    ax.text(0.02, 0.98, "dot area: the bin's share of pairs", transform=ax.transAxes, ha="left", va="top",
            fontsize="x-small", color="0.4")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("mean confidence max(σ(d), 1 - σ(d)) in the bin")
    ax.set_ylabel("accuracy in the bin (share with d > 0, a tie half)")
    ax.set_title(_title(comparison, "Reliability"))
    ax.grid(alpha=0.3)
    _legend(fig, len(comparison.results) + 1, columns=1)
    return fig


def plot_accuracy(path: Path, comparison: Comparison) -> Path:
    return save_png(accuracy_figure(comparison), path)


def accuracy_figure(comparison: Comparison):
    """Grouped bars: per source (then avg and all), one bar per model, in %; a model's ties in its legend entry.
    Where some setting has several seeds, one bar per cell at its mean, with its 95 % interval as an error bar.
    The length baseline is a black tick in each group.

    A bar has its model's (a cell's: its first model's) colour and, in place of a marker, its hatch."""
    groups = [*comparison.sources, "avg", "all"]
    keys = [*comparison.sources, "avg", metrics.ALL]
    if comparison.grouped:
        intervals = [comparison.cell_intervals(cell) for cell in comparison.cells]
        values = [[100 * figures[k].mean for k in keys] for figures in intervals]
        errors = [[100 * np.nan_to_num(figures[k].half_width) for k in keys] for figures in intervals]
        labels = [f"{cell.label} ({cell.seeds} {'seed' if cell.seeds == 1 else 'seeds'})" for cell in comparison.cells]
        slots = [comparison.slots[cell.members[0]] for cell in comparison.cells]
    else:
        rows = comparison.rows()
        values = [[100 * row.accuracy.get(s, math.nan) for s in comparison.sources] + [100 * row.average,
                                                                                        100 * row.overall]
                  for row in rows]
        errors = [None] * len(rows)
        labels = [f"{r.label}, {row.overall_ties:,} {'tie' if row.overall_ties == 1 else 'ties'}"
                  if row.overall_ties else r.label for r, row in zip(comparison.results, rows)]
        slots = comparison.slots
    n = len(values)
    fig = figure(max(6.0, 1.1 + len(groups) * (0.35 * n + 0.45)), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    styles = zip(colours(slots), hatches(slots))
    for i, (label, v, err, (colour, hatch)) in enumerate(zip(labels, values, errors, styles)):
        bars = ax.bar(x - 0.4 + width * (i + 0.5), v, width, color=colour, hatch=hatch, edgecolor="white",
                      linewidth=0, label=label, yerr=err, capsize=3 if err is not None else 0,
                      error_kw={"elinewidth": 1, "ecolor": "black"})
        if len(groups) * n <= 40 and err is None:
            ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=1)
    if comparison.length is not None:
        row = comparing.table_row(comparison.length, comparison.sources, comparison.ece_bins)
        length = [100 * row.accuracy.get(s, math.nan) for s in comparison.sources] + [100 * row.average,
                                                                                       100 * row.overall]
        ax.scatter(x, length, marker="_", s=900, linewidths=2, color="black", zorder=3,
                   label="length (the longer response wins)")
    ax.axhline(50.0, color="0.5", linestyle="--", linewidth=1, label="chance", zorder=0)
    ax.axvline(len(comparison.sources) - 0.5, color="0.75", linewidth=1)  # sources | their avg and all pairs
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%, a tie counting half)" + (";\nmean and 95 % interval over seeds"
                                                         if comparison.grouped else ""))
    ax.set_title(_title(comparison, "Accuracy per source"))
    _legend(fig, n + 2)
    return fig
