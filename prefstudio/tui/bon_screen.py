"""Best-of-N (F7): a run's prompts one at a time, their candidates ranked by each reward model, the win rate.

For each prompt: the candidates in the order of one reward model (`s` picks
which), with every model's rank and reward; with two models, the rank
difference shows where they disagree and Kendall's τ how much. The reward
spread says whether a model tells the candidates apart at all. `m` marks a
candidate and `a` makes a preference pair of it and the highlighted one (or,
with no mark, of the highlighted one and the model's best) for the label
queue. Below, the win-rate curve over N, from the judgements stored by
`prefstudio bon winrate --judge` or with a reward model as the evaluator (`w`
cycles): drawing it never spends a call. Every read runs in a thread worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from prefstudio import jobs
from prefstudio.bon import report, runs, winrate
from prefstudio.evaluate.compare import colour_slots, slots_for
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.tui.jobs_screen import JobTable
from prefstudio.tui.widgets import Column, DrawnChart, WorkspaceHeader, literal_text, slot_styles

SIDE_BY_SIDE = 2  # reward models shown in columns; more are in the spread line
JUDGE = "judge"


@dataclass(frozen=True)
class PromptView:
    run: runs.Run
    position: int  # 0-based place of the prompt in the run
    prompt_id: int
    prompt: str
    candidates: list[runs.Candidate]
    ranks: dict[runs.Scorer, list[int | None]]  # per scorer, per candidate (in sample order)


class RunsLoaded(Message):
    def __init__(self, found: list[runs.Run], why: str = "") -> None:
        super().__init__()
        self.runs, self.why = found, why


class PromptLoaded(Message):
    def __init__(self, view: PromptView | None, why: str = "") -> None:
        super().__init__()
        self.view, self.why = view, why


class CurvesLoaded(Message):
    def __init__(self, title: str, curves: dict[str, list[winrate.Point]], slots: list[int] | None = None) -> None:
        super().__init__()
        self.title, self.curves, self.slots = title, curves, slots


class PairMade(Message):
    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__()
        self.text, self.error = text, error


class WinRateChart(DrawnChart):
    """The win-rate curves over N, one colour per reward model, filling the widget."""

    DEFAULT_CSS = """
    WinRateChart {
        height: 14;
        padding: 0;
    }
    """

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.show_curves("win rate", {})

    def show_curves(self, title: str, curves: dict[str, list[winrate.Point]], slots: list[int] | None = None) -> None:
        self.curves = curves
        # the plot's rows, then the N axis and the legend: lines - 2 rows when the legend fits on one line
        self.show(title, lambda width, lines: report.plot(curves, max(8, width - 12), max(2, lines - 2)),
                  "nothing to draw: no judgements stored for this run",
                  slot_styles(slots, extra=1) if slots is not None else None)


def _reward(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


class BonScreen(Screen):
    CSS_PATH = "bon_screen.tcss"
    PURPOSE = ("Best-of-N: each prompt's sampled candidates as the trained reward models rank them, and how often "
               "the pick beats the baseline as N grows.")  # what `?` says first
    BINDINGS = [
        Binding("n", "move_prompt(1)", "Next prompt"),
        Binding("p", "move_prompt(-1)", "Prev prompt"),
        Binding("s", "sort_by", "Rank by"),
        Binding("m", "mark", "Mark"),
        Binding("a", "make_pair", "To labels"),
        Binding("w", "win_rate_by", "Win rate"),
        Binding("r", "reload", "Reload", show=False),  # in the ? panel: the footer must fit 100 columns
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[runs.Run] = []
        self.run: runs.Run | None = None
        self.position = 0
        self.view: PromptView | None = None
        self.order: list[int] = []  # candidate idx per table row
        self.sort = 0  # index into the run's scorers; len(scorers) = sample order
        self.marked: int | None = None
        self.judged_by = JUDGE  # or the index of a scorer used as the evaluator

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        with Horizontal(id="bon-top"):
            yield Select([], prompt="no best-of-N run", compact=True, id="bon-run")
            yield Static(id="bon-status")
        with Horizontal():
            with Vertical(id="bon-left"):
                with VerticalScroll(id="bon-prompt-box"):
                    yield Static(id="bon-prompt")
                yield JobTable([Column("sample", 6, right=True), Column("response")], id="bon-candidates")
            with Vertical(id="bon-right"):
                yield Static(id="bon-spread")
                with VerticalScroll(id="bon-response-box"):
                    yield Static(id="bon-response")
                yield WinRateChart(id="bon-winrate")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(JobTable).focus()
        self.load_runs()

    # -- workers -------------------------------------------------------------------------------------
    @work(thread=True, group="bon-runs", exclusive=True)
    def load_runs(self) -> None:
        try:
            with self.app.write_cursor() as con:
                jobs.bring_in(self.app.ws, con=con)  # a finished sampling or scoring job comes in now
                found = runs.list_runs(con)
        except (duckdb.Error, PrefstudioError) as exc:
            self.post_message(RunsLoaded([], first_line(exc)))
            return
        self.post_message(RunsLoaded(found))

    @work(thread=True, group="bon-prompt", exclusive=True)
    def load_prompt(self, run: runs.Run, position: int) -> None:
        try:
            with self.app.cursor("bon-prompt") as con:
                prompts = runs.prompt_ids(con, run.id)
                if not prompts:
                    self.post_message(PromptLoaded(None, f"run {run.id} has no prompts"))
                    return
                position = max(0, min(position, len(prompts) - 1))
                pid, _, text = prompts[position]
                found = runs.candidates(con, pid, list(run.scorers))
        except duckdb.Error as exc:
            self.post_message(PromptLoaded(None, first_line(exc)))
            return
        ranks = {s: runs.ranks([c.rewards.get(s) for c in found]) for s in run.scorers}
        self.post_message(PromptLoaded(PromptView(run, position, pid, text, found, ranks)))

    @work(thread=True, group="bon-curves", exclusive=True)
    def load_curves(self, run: runs.Run, judged_by) -> None:
        try:
            with self.app.cursor("bon-curves") as con:
                if judged_by == JUDGE:
                    from prefstudio.judge.prompts import load_prompt

                    settings = self.app.ws.config.judge
                    identity = load_prompt(settings.prompt, self.app.ws.path).identity
                    outcome = winrate.judged_outcomes(con, run.id, settings.model, identity)
                    title, chosen = f"win rate vs sample 0 · judge {settings.model}", list(run.scorers)
                else:
                    evaluator = run.scorers[judged_by]
                    outcome = winrate.evaluator_outcomes(con, run.id, evaluator)
                    title = f"win rate vs sample 0 · evaluator {evaluator.short}"
                    chosen = [s for s in run.scorers if s != evaluator]
                curves = winrate.curves(con, run.id, chosen, outcome)
                slots = slots_for([s.job_id for s in curves], colour_slots(con))
        except (duckdb.Error, PrefstudioError) as exc:
            self.post_message(CurvesLoaded(f"win rate: {first_line(exc)}", {}))
            return
        self.post_message(CurvesLoaded(title, {s.short: points for s, points in curves.items()}, slots))

    @work(thread=True, group="bon-pair")
    def write_pair(self, run_id: str, prompt_id: int, idx_a: int, idx_b: int, scorer: runs.Scorer | None) -> None:
        from prefstudio.bon.pairs import make_pair

        try:
            with self.app.write_cursor() as con:
                pair_id, new = make_pair(self.app.ws, run_id, prompt_id, idx_a, idx_b, scorer, con=con)
        except (duckdb.Error, PrefstudioError) as exc:
            self.post_message(PairMade(first_line(exc), error=True))
            return
        self.post_message(PairMade(f"samples {idx_a} and {idx_b}: pair {pair_id} "
                                   + ("added to the label queue" if new else "was already in the workspace")))

    # -- messages ------------------------------------------------------------------------------------
    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if message.why:
            self.notify(message.why, title="best-of-N", severity="error", markup=False)
        self.runs = message.runs
        select = self.query_one("#bon-run", Select)
        keep = self.run.id if self.run else None
        with self.prevent(Select.Changed):
            select.set_options([(f"{r.id} ({r.n_prompts} prompts, N {r.max_n})", r.id) for r in self.runs])
        if not self.runs:
            self.query_one("#bon-status", Static).update(literal_text(
                "no runs yet: `prefstudio bon sample` or `prefstudio bon import` makes one"))
            return
        ids = [r.id for r in self.runs]
        chosen = keep if keep in ids else ids[-1]
        with self.prevent(Select.Changed):
            select.value = chosen
        self._open_run(chosen, self.position if chosen == keep else 0)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "bon-run" and isinstance(event.value, str):
            self._open_run(event.value, 0)

    def _open_run(self, run_id: str, position: int) -> None:
        self.run = next(r for r in self.runs if r.id == run_id)
        self.sort = min(self.sort, len(self.run.scorers))
        if self.judged_by != JUDGE and self.judged_by >= len(self.run.scorers):
            self.judged_by = JUDGE
        self.position, self.marked = position, None
        self.load_prompt(self.run, position)
        self.load_curves(self.run, self.judged_by)

    def on_prompt_loaded(self, message: PromptLoaded) -> None:
        if message.view is None:
            self.notify(message.why, title="best-of-N", severity="error", markup=False)
            return
        self.view = message.view
        self.position = message.view.position
        self._show()

    def on_curves_loaded(self, message: CurvesLoaded) -> None:
        self.query_one(WinRateChart).show_curves(message.title, message.curves, message.slots)

    def on_pair_made(self, message: PairMade) -> None:
        if not message.error:
            self.app.refresh_summary()
        self.notify(message.text, title="preference pair", severity="error" if message.error else "information",
                    markup=False)

    def on_job_table_highlighted(self, message: JobTable.Highlighted) -> None:
        self._show_response()

    # -- drawing -------------------------------------------------------------------------------------
    def _sort_scorer(self) -> runs.Scorer | None:
        scorers = self.view.run.scorers if self.view else ()
        return scorers[self.sort] if self.sort < len(scorers) else None

    def _show(self) -> None:
        view = self.view
        scorers = list(view.run.scorers)
        shown = scorers[:SIDE_BY_SIDE]
        letters = "ABCDEFGH"
        # narrow numeric columns, so the response keeps some room at 100 columns; the status line says
        # which model A and B are
        columns = [Column("#", 4, right=True)]
        for letter, _ in zip(letters, shown):
            columns += [Column(letter, 3, right=True), Column(f"r({letter})", 8, right=True)]
        if len(shown) == 2:
            columns.append(Column("Δ", 3, right=True))
        columns.append(Column("response"))
        by = self._sort_scorer()
        self.order = [c.idx for c in sorted(view.candidates, key=lambda c: (
            view.ranks[by][c.idx] or math.inf) if by else c.idx)]
        found = {c.idx: c for c in view.candidates}
        rows = []
        for idx in self.order:
            c = found[idx]
            cells = [f"{'*' if idx == self.marked else ''}{idx}"]
            for scorer in shown:
                rank = view.ranks[scorer][idx]
                cells += ["—" if rank is None else str(rank), _reward(c.rewards.get(scorer))]
            if len(shown) == 2:
                a, b = (view.ranks[s][idx] for s in shown)
                cells.append("—" if a is None or b is None else f"{b - a:+d}" if a != b else "0")
            cells.append(c.response)
            rows.append(tuple(cells))
        table = self.query_one(JobTable)
        table.columns = columns
        table.show_rows(rows, self.order, cursor_row=0)
        self.query_one("#bon-prompt", Static).update(literal_text(view.prompt))
        legend = " · ".join(f"{letter} = {s.short}" for letter, s in zip(letters, shown))
        self.query_one("#bon-status", Static).update(literal_text(
            f"prompt {view.position + 1}/{view.run.n_prompts} · {len(view.candidates)} samples · "
            f"sorted by {by.short if by else 'sample'}" + (f" · {legend}" if legend else "")))
        self.query_one("#bon-spread", Static).update(literal_text(self._spread(view)))
        self._show_response()

    def _spread(self, view: PromptView) -> str:
        lines = []
        for scorer in view.run.scorers:
            values = [c.rewards[scorer] for c in view.candidates if scorer in c.rewards]
            if values:
                lines.append(f"{scorer.short}: spread {max(values) - min(values):.4f} "
                             f"({min(values):+.4f} … {max(values):+.4f})")
        if len(view.run.scorers) >= 2:
            a, b = view.run.scorers[:2]
            both = [c for c in view.candidates if a in c.rewards and b in c.rewards]
            tau = runs.kendall_tau([c.rewards[a] for c in both], [c.rewards[b] for c in both])
            top_a, top_b = (next((c.idx for c in view.candidates if view.ranks[s][c.idx] == 1), None) for s in (a, b))
            lines.append(f"A and B: Kendall τ {tau:+.2f} · best {'the same' if top_a == top_b else 'differs'} "
                         f"(A: sample {top_a}, B: sample {top_b})")
        return "\n".join(lines) or "no rewards yet: `prefstudio bon score` scores the run"

    def _show_response(self) -> None:
        table = self.query_one(JobTable)
        if self.view is None or table.cursor_key is None:
            return
        c = next(c for c in self.view.candidates if c.idx == table.cursor_key)
        head = f"sample {c.idx}" + (f" · {c.n_tokens} tokens" if c.n_tokens is not None else "") + \
            (f" · {c.finish}" if c.finish else "") + (" · marked" if c.idx == self.marked else "")
        text = literal_text(head, style="bold")
        text.append("\n")
        text.append(literal_text(c.response))
        self.query_one("#bon-response", Static).update(text)

    # -- actions -------------------------------------------------------------------------------------
    def action_move_prompt(self, step: int) -> None:
        if self.run is None or self.view is None:
            return
        target = self.position + step
        if 0 <= target < self.run.n_prompts:
            self.marked = None
            self.load_prompt(self.run, target)

    def action_sort_by(self) -> None:
        if self.view is None:
            return
        self.sort = (self.sort + 1) % (len(self.view.run.scorers) + 1)
        self._show()

    def action_mark(self) -> None:
        key = self.query_one(JobTable).cursor_key
        if key is None:
            return
        self.marked = None if self.marked == key else key
        row = self.query_one(JobTable).cursor_row
        self._show()
        self.query_one(JobTable).move_cursor(row)

    def action_make_pair(self) -> None:
        table = self.query_one(JobTable)
        if self.view is None or table.cursor_key is None or len(self.order) < 2:
            return
        current = table.cursor_key
        other = self.marked
        if other is None or other == current:
            other = self.order[0] if self.order[0] != current else self.order[-1]  # the best, or the worst
        self.write_pair(self.view.run.id, self.view.prompt_id, other, current, self._sort_scorer())

    def action_win_rate_by(self) -> None:
        if self.run is None:
            return
        options = [JUDGE, *range(len(self.run.scorers))] if len(self.run.scorers) > 1 else [JUDGE]
        self.judged_by = options[(options.index(self.judged_by) + 1) % len(options)]
        self.load_curves(self.run, self.judged_by)

    def action_reload(self) -> None:
        self.load_runs()
