"""Evaluate (F6): scored models side by side, as the papers' tables and figures show them.

The table lists every model scored on the split, one row each; space picks or
drops the model under the cursor (each job's latest checkpoint is picked at
first). A picked row shows accuracy per source (a tie, d = 0, counting half),
their average, accuracy over all pairs, the ties among them, ECE and the pair
count, all on the pairs every picked model has scored. Below, the
reward-difference histograms (overlaid, or one under another: `o`) and the
reliability diagram, for all pairs or the source picked at the top; then the
Tukey outliers of the model under the table's cursor, most extreme first.
Under the models, the table has a row per setting trained with several seeds
(a cell: mean ± the 95 % t-interval's half-width over its seeds), and a row for
the length baseline (the longer response wins; no ECE); where cells have several
seeds, an accuracy chart draws each cell's mean with its interval as a whisker.
Enter opens an outlier in the pair view, `l` labels it (esc there comes back). `t` swaps the plots for
the figures behind them (the distribution's moments, ECE at 5/10/20 bins,
outlier counts); `m` for the calibration by margin level (the pairs with a margin label: per level, pairs,
mean d with a bar, accuracy and ECE, and Spearman's ρ(level, d), per model). `b` cycles the bin count
(5, 10, 20) of the ECE column and the reliability diagram; an ECE at an odd bin count gets a footnote (its middle
bin pools p and 1 − p). Each (job, checkpoint) has its own colour and legend
mark, as in the report's PNGs. Every query runs in a thread worker; the plots
are drawn from the loaded rewards, so resizing or switching sources never
touches the database.
"""

from __future__ import annotations

import duckdb
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from prefstudio import jobs, textplot
from prefstudio.browse import PairFilter
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.evaluate import calibration, charts, compare, metrics, predictions
from prefstudio.tui.jobs_screen import JobTable
from prefstudio.tui.pair_view import PairScreen
from prefstudio.tui.widgets import Column, DrawnChart, PlainTextTable, WorkspaceHeader, literal_text, slot_styles
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

BIN_CHOICES = (5, 10, 20)
DEFAULT_SPLIT = "test"
OUTLIERS_SHOWN = 200
ALL_SOURCES = "all sources"


class ModelsLoaded(Message):
    def __init__(self, models: list[predictions.Scored], why: str = "") -> None:
        super().__init__()
        self.models, self.why = models, why


class ComparisonLoaded(Message):
    def __init__(self, comparison: compare.Comparison | None, why: str = "",
                 margins: calibration.ComparedMargins | None = None) -> None:
        super().__init__()
        self.comparison, self.why, self.margins = comparison, why, margins


class OutliersLoaded(Message):
    def __init__(self, label: str, source: str | None, found: list[compare.OutlierPair]) -> None:
        super().__init__()
        self.label, self.source, self.found = label, source, found


def _cell(value: float, digits: int = 4) -> str:
    return "—" if value != value else f"{value:+.{digits}f}"


def _percent(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f}"


FIGURE_COLUMNS = [Column("model"), Column("mean d", 7, right=True), Column("std", 6, right=True),
                  Column("skew", 6, right=True), Column("kurt.", 6, right=True), Column("d<0 %", 5, right=True),
                  *(Column(f"ECE@{b}", 6, right=True) for b in metrics.ECE_BINS),
                  Column("out +", 5, right=True), Column("out −", 5, right=True)]
"""`t`: the figures behind the plots (n, accuracy and ties are in the table above); kurt. is the excess
kurtosis, out ± the Tukey outliers above and below; fits 100 columns."""


MARGIN_BAR_HALF = 7  # the bar column of `m`: 7 cells each side of d = 0


def margin_columns(ece_bins: int) -> list[Column]:
    """`m`'s table; with the level's full name (30 characters at most), fits 100 columns."""
    return [Column("model"), Column("level", 30), Column("pairs", 5, right=True), Column("mean d", 7, right=True),
            Column("bar of mean d", 2 * MARGIN_BAR_HALF + 1), Column("acc %", 5, right=True),
            Column(f"ECE@{ece_bins}", 6, right=True)]


def _short_labels(labels: list[str]) -> list[str]:
    """Cell labels for a narrow chart: `objective=bt`, `objective=more` become `bt`, `more` when one setting
    tells every cell apart."""
    keys = {label.partition("=")[0] for label in labels}
    if len(keys) == 1 and all("=" in label and ", " not in label for label in labels):
        return [label.partition("=")[2] for label in labels]
    return labels


class EvalScreen(ReportsFailedWorkers, Screen):
    CSS_PATH = "eval_screen.tcss"
    PURPOSE = ("Scored jobs on the test pairs: accuracy, reward-difference histograms, calibration (ECE; by margin "
               "level with m), accuracy per source, and the outliers.")  # what `?` says first
    BINDINGS = [
        Binding("space", "pick", "Pick model"),
        Binding("o", "toggle_overlay", "Overlay/stack"),
        Binding("t", "toggle_figures", "Plots/figures"),
        Binding("m", "toggle_margins", "Margin calibration", show=False),  # in ? and the palette: q Quit needs the room
        Binding("b", "cycle_bins", "Bins"),
        Binding("l", "label_outlier", "Label outlier"),
        Binding("r", "reload", "Reload", show=False),  # in the ? panel: the footer must fit 100 columns
        Binding("p", "parent_and_child", "Parent vs child", show=False),  # a retrain and its parent, alone
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[predictions.Scored] = []  # every scored model, all splits
        self.shown: list[predictions.Scored] = []  # the table's rows: the models on the split
        self.picked: set[tuple[str, str]] = set()  # (job_id, checkpoint) of the picked ones
        self.comparison: compare.Comparison | None = None
        self.margins: calibration.ComparedMargins | None = None  # `m`: the comparison's calibration by margin level
        self.split = DEFAULT_SPLIT
        self.source: str | None = None
        self.bins = metrics.DEFAULT_RELIABILITY_BINS
        self.overlay = True
        self.focused_model = 0  # the table row whose outliers are listed (when picked)

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        with Horizontal(id="eval-top"):
            yield Select([], prompt="split", compact=True, allow_blank=True, id="eval-split")
            yield Select([], prompt=ALL_SOURCES, compact=True, id="eval-source")
            yield Static(id="eval-status")
        yield JobTable([Column("model")], id="eval-table")
        with Horizontal(id="eval-plots"):
            yield DrawnChart(id="eval-histogram")
            yield DrawnChart(id="eval-reliability")
            yield DrawnChart(id="eval-accuracy")
        yield PlainTextTable(FIGURE_COLUMNS, id="eval-figures")
        with Vertical(id="eval-margins-box"):
            yield Static(id="eval-margins-title")
            yield PlainTextTable(margin_columns(self.bins), id="eval-margins")
        yield Static(id="eval-ece-note")
        with Vertical(id="eval-outliers-box"):
            yield Static(id="eval-outliers-title")
            yield JobTable([Column("side", 5), Column("d", 9, right=True), Column("pair", 8, right=True),
                            Column("source", 14), Column("prompt"), Column("chosen"), Column("rejected")],
                           id="eval-outliers")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#eval-table", JobTable).focus()

    def on_screen_resume(self) -> None:
        """Shown (again): a scoring job may have finished meanwhile; the figures reload only if it did."""
        self.load_models()

    # -- workers -------------------------------------------------------------------------------------
    @work(thread=True, group="eval-models", exclusive=True)
    def load_models(self) -> None:
        try:
            with self.app.write_cursor() as con:
                jobs.bring_in(self.app.ws, con=con)  # a scoring job that finished comes in now
                found = predictions.scored_models(con)
        except (duckdb.Error, PrefstudioError) as exc:
            self.post_message(ModelsLoaded([], first_line(exc)))
            return
        self.post_message(ModelsLoaded(found))

    @work(thread=True, group="eval-compare", exclusive=True)
    def load_comparison(self, models: list[predictions.Scored], bins: int) -> None:
        try:
            with self.app.cursor("eval-compare") as con:
                comparison = compare.compare(con, models, ece_bins=bins, reliability_bins=bins)
                margins = calibration.for_comparison(con, comparison)
        except duckdb.Error as exc:
            self.post_message(ComparisonLoaded(None, first_line(exc)))
            return
        except ValueError as exc:
            self.post_message(ComparisonLoaded(None, str(exc)))
            return
        self.post_message(ComparisonLoaded(comparison, margins=margins))

    @query_work(group="eval-outliers", exclusive=True)
    def load_outliers(self, result: compare.ModelResult, source: str | None) -> None:
        with self.app.cursor("eval-outliers") as con:
            found = compare.outlier_pairs(con, result, source, limit=OUTLIERS_SHOWN)
        self.post_message(OutliersLoaded(result.label, source, found))

    # -- messages ------------------------------------------------------------------------------------
    def on_models_loaded(self, message: ModelsLoaded) -> None:
        if message.why:
            self.notify(message.why, title="evaluation", severity="error", markup=False)
        if message.models == self.models and self.comparison is not None:
            return  # nothing new was scored: keep what is drawn
        self.models = message.models
        splits = sorted({m.split for m in self.models})
        if self.split not in splits and splits:
            self.split = DEFAULT_SPLIT if DEFAULT_SPLIT in splits else splits[0]
        with self.prevent(Select.Changed):
            split_select = self.query_one("#eval-split", Select)
            split_select.set_options([(literal_text(s), s) for s in splits])
            if splits:
                split_select.value = self.split
        self._fill_models()

    def _fill_models(self) -> None:
        before = {(m.job_id, m.checkpoint) for m in self.shown}
        self.shown = [m for m in self.models if m.split == self.split]
        keys = {(m.job_id, m.checkpoint) for m in self.shown}
        latest = {(m.job_id, m.checkpoint) for m in predictions.latest_per_job(self.shown)}
        self.picked &= keys
        # a job's latest checkpoint is picked when it first appears (at first, or scored since the last look)
        self.picked |= latest - before if self.picked else latest
        if not self.shown:
            self.comparison = self.margins = None
            self.query_one("#eval-status", Static).update(literal_text(
                "nothing scored yet: e on a job in F5 Jobs scores it, or `prefstudio eval WORKSPACE JOB --wait` "
                "(--raw BACKBONE for the untrained baseline)"))
            self._show_comparison()
            return
        self._compare()

    def _compare(self) -> None:
        picked = [m for m in self.shown if (m.job_id, m.checkpoint) in self.picked]
        self.query_one("#eval-status", Static).update(literal_text(f"loading {len(picked)} models …"))
        self.load_comparison(picked, self.bins)

    def on_comparison_loaded(self, message: ComparisonLoaded) -> None:
        if message.why:
            self.notify(message.why, title="evaluation", severity="error", markup=False)
            return
        self.comparison, self.margins = message.comparison, message.margins
        with self.prevent(Select.Changed):
            source_select = self.query_one("#eval-source", Select)
            source_select.set_options([(literal_text(s), s) for s in self.comparison.sources])
            if self.source in self.comparison.sources:
                source_select.value = self.source
            else:
                self.source = None
        self._show_comparison()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value if isinstance(event.value, str) else None
        if event.select.id == "eval-split" and value and value != self.split:
            self.split = value
            self._fill_models()
        elif event.select.id == "eval-source":
            self.source = value
            self._show_plots()
            self._show_outliers()

    def on_job_table_highlighted(self, message: JobTable.Highlighted) -> None:
        if message.control.id == "eval-table" and message.row != self.focused_model:
            self.focused_model = message.row
            if self._focused_result() is not None:
                self._show_outliers()

    def on_plain_text_table_selected(self, message: JobTable.Selected) -> None:
        message.stop()
        if message.control.id == "eval-outliers":
            self.app.push_screen(PairScreen(PairFilter(split=self.split), message.key))

    def on_outliers_loaded(self, message: OutliersLoaded) -> None:
        rows = [(o.side, f"{o.d:+.4f}", str(o.pair_id), o.source, o.prompt, o.chosen, o.rejected)
                for o in message.found]
        self.query_one("#eval-outliers", JobTable).show_rows(rows, [o.pair_id for o in message.found])
        result = self._focused_result()
        summary = result.summaries.get(message.source or metrics.ALL) if result else None
        if summary is None:
            title = f"outliers · {message.label}: none"
        else:
            out = summary.outliers
            title = (f"outliers · {message.label} · {message.source or 'all sources'}: "
                     f"{out.n_positive} over (mean d {_cell(out.mean_positive, 3)}) · "
                     f"{out.n_negative} under (mean {_cell(out.mean_negative, 3)}) · Tukey fences "
                     f"{_cell(out.low_fence, 2)} … {_cell(out.high_fence, 2)}")
        self.query_one("#eval-outliers-title", Static).update(literal_text(title))

    # -- drawing -------------------------------------------------------------------------------------
    def _focused_result(self) -> compare.ModelResult | None:
        """The picked model under the table's cursor; None on a row that is not picked."""
        if self.comparison is None or not 0 <= self.focused_model < len(self.shown):
            return None
        model = self.shown[self.focused_model]
        return next((r for r in self.comparison.results if r.model == model), None)

    def _show_comparison(self) -> None:
        comparison = self.comparison
        table = self.query_one("#eval-table", JobTable)
        header, *rows = comparison.model_table() if comparison else [["model"]]
        figures = {r.model: cells[1:] for r, cells in zip(comparison.results, rows)} if comparison else {}
        cells = [("✓" if m in figures else " ", m.label, *figures.get(m, [""] * (len(header) - 1)))
                 for m in self.shown]
        cells += [(" ", *row) for row in self._summary_rows()]  # below the models: not picked, not a model
        widest = [max((len(row[i + 2]) for row in cells), default=0) for i in range(len(header) - 1)]
        table.columns = [Column("", 1), Column(header[0])] + [  # "58.3 ± 4.1" fits; a long interval is cut
            Column(name, max(6, min(len(name), 10), min(width, 14)), right=True)
            for name, width in zip(header[1:], widest)]
        self.set_class(bool(comparison and comparison.grouped), "-cells")
        self.focused_model = max(0, min(self.focused_model, len(cells) - 1))
        table.styles.height = max(2, min(len(cells) + 1, 10))  # the plots get what the table does not need
        table.show_rows(cells, list(range(len(cells))), cursor_row=self.focused_model)
        if comparison is not None:
            if not comparison.results:
                note = "no model picked: space picks the one under the cursor"
            else:
                note = f"{comparison.n_common:,} pairs scored by every picked model"
                if comparison.left_out:
                    note += " (left out: " + ", ".join(f"{k} {n:,}" for k, n in comparison.left_out.items()) + ")"
                note += f" · {self.bins} bins"
            self.query_one("#eval-status", Static).update(literal_text(note))
        self._show_ece_note()
        self._show_plots()
        self._show_outliers()

    def _summary_rows(self) -> list[list[str]]:
        """A row per cell of several seeds (mean ± half-width), then the length baseline's."""
        comparison = self.comparison
        if comparison is None or not comparison.results:
            return []
        rows = [row for cell, row in zip(comparison.cells, comparison.cell_table()[1:]) if cell.seeds > 1]
        return rows + ([comparison.length_row()] if comparison.length is not None else [])

    def _show_ece_note(self) -> None:
        """The odd-bin footnote under whichever table shows an ECE at an odd bin count: the table's column at
        `b`'s bins, or `t`'s figures at 5/10/20."""
        note = ""
        if self.comparison is not None and self.comparison.results:
            note = compare.odd_bins_note(metrics.ECE_BINS if self.has_class("-figures") else [self.comparison.ece_bins])
        widget = self.query_one("#eval-ece-note", Static)
        widget.update(literal_text(note))
        widget.display = bool(note)

    def _show_figures(self) -> None:
        """Per model, for all pairs or the picked source: the numbers behind the plots (docs/methods.md)."""
        key = self.source or metrics.ALL
        rows = []
        results = self.comparison.results if self.comparison else []
        for label, r in zip(self.comparison.labels() if self.comparison else [], results):
            s = r.summaries.get(key)
            if s is None:
                continue
            dist, out = s.distribution, s.outliers
            rows.append((label, _cell(dist.mean, 3), "—" if dist.std != dist.std else f"{dist.std:.3f}",
                         _cell(dist.skewness, 2), _cell(dist.excess_kurtosis, 2), _percent(dist.share_negative),
                         *(f"{s.ece[b]:.4f}" for b in metrics.ECE_BINS), f"{out.n_positive:,}", f"{out.n_negative:,}"))
        self.query_one("#eval-figures", PlainTextTable).show_rows(rows, list(range(len(rows))))

    def _show_margins(self) -> None:
        """`m`: per picked model, a row per level of the pairs with a margin label (the source picked at the top,
        or every pair), mean d drawn as a bar on one scale for every row; ρ per model in the title."""
        key, where = self.source or metrics.ALL, self.source or ALL_SOURCES
        table = self.query_one("#eval-margins", PlainTextTable)
        title = self.query_one("#eval-margins-title", Static)
        table.columns = margin_columns(self.bins)
        margins, comparison = self.margins, self.comparison
        if comparison is None or not comparison.results or margins is None:
            table.show_rows([], [])
            title.update(literal_text("calibration by margin level: no model picked"))
            return
        if not margins.any:
            table.show_rows([], [])
            title.update(literal_text(calibration.no_labels_line(self.split)))
            return
        shown = [(label, figures[key]) for label, figures in zip(comparison.labels(), margins.figures)
                 if key in figures]
        scale = max((abs(row.mean_d) for _, f in shown for row in f.levels if row.mean_d == row.mean_d), default=0.0)
        rows = []
        for label, figures in shown:
            for i, row in enumerate(calibration.level_rows(figures)):
                bar = calibration.mean_bar(row.mean_d, scale, MARGIN_BAR_HALF) if row.level is not None else ""
                rows.append((label if i == 0 else "", row.name, f"{row.n:,}", calibration.signed(row.mean_d), bar,
                             calibration.percent(row.accuracy), f"{row.ece:.4f}"))
        rho = " · ".join(f"{label} {calibration.signed(figures.spearman)}" for label, figures in shown)
        labels = margins.labels
        title.update(literal_text(
            f"margins · {where} · {labels.n:,} of {margins.n_pairs:,} pairs labelled "
            f"({calibration.kinds_text(labels.kinds)}) · d from the better response · ρ(level, d): "
            f"{rho or 'no labelled pair here'}"))
        table.show_rows(rows, list(range(len(rows))))

    def _show_plots(self) -> None:
        self._show_figures()
        self._show_margins()
        comparison = self.comparison
        where = self.source or "all sources"
        histogram = self.query_one("#eval-histogram", DrawnChart)
        reliability = self.query_one("#eval-reliability", DrawnChart)
        if comparison is None or not comparison.results:
            histogram.show("reward differences d = r(chosen) - r(rejected)", None, "no model picked")
            reliability.show("reliability", None, "no model picked")
            return
        labels = comparison.labels()
        marks = [compare.text_mark(slot) for slot in comparison.slots]
        cache: dict[int, tuple] = {}

        def draw_histogram(width: int, height: int) -> textplot.Chart:
            bins = max(4, width - (textplot.MAX_GUTTER if self.overlay else 0))
            if bins not in cache:
                cache[bins] = comparison.histograms(bins, self.source)
            edges, counts = cache[bins]
            by_model = dict(zip(labels, counts))
            if self.overlay:
                return charts.histogram_overlay(edges, by_model, bins, max(2, height - 2), marks)
            return charts.histogram_stack(edges, by_model, bins, height, marks)

        def draw_reliability(width: int, height: int) -> textplot.Chart:
            key = self.source or metrics.ALL
            tables = {label: r.summaries[key].reliability if key in r.summaries else []
                      for label, r in zip(labels, comparison.results)}
            return charts.reliability_chart(tables, max(8, width - textplot.MAX_GUTTER), max(2, height - 2), marks)

        styles = slot_styles(comparison.slots, extra=1)  # a model's colour and mark are its own on every plot
        histogram.show(f"d = r(chosen) − r(rejected) · {where} · share of pairs per bin", draw_histogram,
                       "no pairs", styles)
        reliability.show(f"reliability · {where} · accuracy (y) vs confidence (x)", draw_reliability, "no pairs",
                         styles)
        self._show_accuracy()

    def _show_accuracy(self) -> None:
        """Each cell's mean accuracy with its 95 % interval as a whisker, and the length baseline, for the source
        picked at the top (or every pair); drawn where some cell has several seeds."""
        comparison = self.comparison
        accuracy = self.query_one("#eval-accuracy", DrawnChart)
        if comparison is None or not comparison.grouped:
            accuracy.show("accuracy", None, "no setting with several seeds")
            return
        key = self.source or metrics.ALL
        whiskers = []
        for cell, label in zip(comparison.cells, _short_labels([cell.label for cell in comparison.cells])):
            interval = comparison.cell_intervals(cell).get(key)
            if interval is not None:
                whiskers.append(charts.Whisker(f"{label} ({cell.seeds})", interval.mean, interval.half_width))
        if comparison.length is not None and key in comparison.length.summaries:
            whiskers.append(charts.Whisker(compare.LENGTH, comparison.length.summaries[key].accuracy, float("nan")))
        styles = slot_styles([comparison.slots[cell.members[0]] for cell in comparison.cells], extra=1)
        accuracy.show(f"accuracy % · {self.source or 'all sources'} · mean ± 95 % over seeds",
                      lambda width, height: charts.accuracy_whiskers(whiskers, width, height), "no pairs", styles)

    def _show_outliers(self) -> None:
        result = self._focused_result()
        if result is None:
            self.query_one("#eval-outliers", JobTable).show_rows([], [])
            self.query_one("#eval-outliers-title", Static).update(literal_text("outliers"))
            return
        self.load_outliers(result, self.source)

    # -- actions -------------------------------------------------------------------------------------
    def action_pick(self) -> None:
        row = self.query_one("#eval-table", JobTable).cursor_row
        if not 0 <= row < len(self.shown):
            return
        key = (self.shown[row].job_id, self.shown[row].checkpoint)
        self.picked ^= {key}
        self._compare()

    def action_parent_and_child(self) -> None:
        """Pick only the model under the cursor and its parent (or its newest retrain: jobs/retrain.py), each at
        its latest checkpoint: the two compared on the pairs both scored."""
        from prefstudio.jobs.retrain import parent_and_child

        row = self.query_one("#eval-table", JobTable).cursor_row
        if not 0 <= row < len(self.shown):
            return
        found = parent_and_child(self.app.ws.jobs_dir, [m.job_id for m in self.shown], self.shown[row].job_id)
        if found is None:
            self.notify("no retrain of this model, nor its parent, is scored on this split (t on the label screen "
                        "retrains the newest job)", severity="warning", markup=False)
            return
        self.picked = {(m.job_id, m.checkpoint) for m in predictions.latest_per_job(self.shown) if m.job_id in found}
        self._compare()

    def action_toggle_figures(self) -> None:
        self.remove_class("-margins")
        self.toggle_class("-figures")
        self._show_ece_note()

    def action_toggle_margins(self) -> None:
        self.remove_class("-figures")
        self.toggle_class("-margins")
        self._show_ece_note()

    def action_toggle_overlay(self) -> None:
        self.overlay = not self.overlay
        self._show_plots()

    def action_cycle_bins(self) -> None:
        self.bins = BIN_CHOICES[(BIN_CHOICES.index(self.bins) + 1) % len(BIN_CHOICES)] \
            if self.bins in BIN_CHOICES else BIN_CHOICES[0]
        if self.models:
            self._compare()

    async def action_label_outlier(self) -> None:
        key = self.query_one("#eval-outliers", JobTable).cursor_key
        if key is not None:
            await self.app.label_pair(key, back_to="eval")  # esc on the label screen comes back to these outliers

    def action_reload(self) -> None:
        self.comparison = None  # even the same models: their rewards may have been scored again
        self.load_models()
