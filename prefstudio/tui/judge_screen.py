"""The LLM judge from the app: estimate what a run costs, then run it with a live count.

Nothing is spent without a look at the price first: Start is enabled only by an
estimate of exactly the values in the form, and a run uses the plan that
estimate made. The run lives in a thread worker with its own event loop and
cursor; it reports through on_progress into a snapshot that the screen draws
five times a second, so a fast run neither floods the UI with messages nor
waits on it; while calls wait on a retry the state line counts down ("rate
limited; retrying in 37 s"). Leaving the app cancels a running run: answered calls are kept
and the next run goes on from them; asked for the same limit again, it judges only what that
limit has left (prefstudio/judge/continuation.py).

The form opens on the model and base URL of the workspace's newest judge run (judge_runs keeps
them, never a key: the key comes only from the environment), so a person who set up a local
server once does not type its address at every start of the app; within a session the screen
itself lives on (a mode) and keeps whatever was typed.

Several judges in the model field, separated by commas (`gpt-4o, qwen@http://host:8000/v1`), make a jury
(judge/jury.py): the estimate plans each judge over the same pairs, Start runs them one after the other and
then writes the jury's median labels, as `prefstudio annotate --model a --model b` does.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass

import duckdb
import openai
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Input, ProgressBar, Select, Static

from prefstudio.config import JudgeConfig
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.judge.history import PastRun, past_runs
from prefstudio.judge.jury import compute_jury, parse_judges, plan_jury
from prefstudio.judge.prompts import JudgePrompt, available_prompts
from prefstudio.judge.runner import Advice, JudgeRun, RunPlan, RunStats, prepare_run
from prefstudio.settings import judge_settings
from prefstudio.tui.widgets import Column, PlainTextTable, SourceSplitPicker, WorkspaceHeader, literal_text
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

REDRAW_S = 0.2  # live numbers are drawn at most this often
STOP_WAIT_S = 10.0  # how long leaving the app waits for a cancelled run to write its last rows
HISTORY_COLUMNS = [Column("started", 11), Column("state", 9), Column("model"), Column("prompt", 9),
                   Column("pairs", 6, right=True), Column("calls", 6, right=True), Column("cached", 6, right=True),
                   Column("incons.", 7, right=True), Column("errors", 6, right=True), Column("cost", 8, right=True)]
"""Fits 100 columns; "errors" are answers that did not parse, "incons." the pairs whose two orders disagreed."""
FORM_ADVICE = Advice(set_key="export it and start prefstudio again", set_base_url="set the base URL field",
                     other_model="pick another in the model field",
                     check_endpoint="check the model and base URL fields")
"""The judge's errors in this screen's words: its fields, not the command line's flags."""


class FormError(ValueError):
    """A form value the run cannot use; the message says which and why."""


@dataclass(frozen=True)
class JudgeForm:
    """The values in the form; an estimate is valid for exactly one of these."""

    model: str
    base_url: str | None
    prompt: str
    source: str | None
    split: str | None
    limit: int | None
    concurrency: int

    def settings(self, defaults: JudgeConfig) -> JudgeConfig:
        # A blank base URL field means none (the OpenAI API), not the workspace's default.
        return judge_settings(defaults, model=self.model, base_url=self.base_url or "", prompt=self.prompt,
                              concurrency=self.concurrency)


@dataclass(frozen=True)
class Estimate:
    form: JudgeForm
    runs: tuple[tuple[JudgeConfig, JudgePrompt, RunPlan], ...]  # one per judge; several make a jury

    @property
    def jury(self) -> bool:
        return len(self.runs) > 1

    @property
    def pairs(self) -> int:
        return sum(len(plan.tasks) for _, _, plan in self.runs)

    def describe(self) -> str:
        identity = self.runs[0][1].identity
        if not self.jury:
            settings, _, plan = self.runs[0]
            return f"{plan.describe(settings.model)} · prompt {identity}"
        plans = " · ".join(plan.describe(settings.model) for settings, _, plan in self.runs)
        return f"a jury of {len(self.runs)}, one after the other: {plans} · prompt {identity}"


def whole_number(text: str, what: str, *, blank_ok: bool) -> int | None:
    text = text.strip()
    if not text and blank_ok:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise FormError(f"{what} must be a whole number of at least 1{' (or empty for all)' if blank_ok else ''}")
    return value


class Estimated(Message):
    def __init__(self, estimate: Estimate) -> None:
        super().__init__()
        self.estimate = estimate


class EstimateFailed(Message):
    def __init__(self, form: JudgeForm, why: str) -> None:
        super().__init__()
        self.form, self.why = form, why


class RunEnded(Message):
    def __init__(self, stats: RunStats | None, why: str, jury: str = "") -> None:
        super().__init__()
        self.stats, self.why = stats, why  # stats None: the run could not start or broke off, and why says so
        self.jury = jury  # what a jury's labels came to (JuryResult.summary); stats None: every call was cached


class JudgeScreen(ReportsFailedWorkers, Screen):
    CSS_PATH = "judge_screen.tcss"
    PURPOSE = ("Label margins with an LLM judge asked in both orders: estimate the cost, then start a run that goes "
               "on while you work elsewhere.")  # what `?` says first

    BINDINGS = [Binding("e", "estimate", "Estimate run"), Binding("s", "start", "Start run"),
                Binding("c", "cancel_run", "Cancel run")]
    AUTO_FOCUS = "#estimate"  # not a text box: the screen's keys (and q) work on arrival

    def __init__(self) -> None:
        super().__init__()
        self._estimate: Estimate | None = None
        self._estimating = False
        self._run_active = False
        self._run: JudgeRun | None = None  # set by the run's thread once it has made one
        self._judge_label = ""  # "judge 1/2 gpt-4o: " while a jury's judge runs
        self._cancel_asked = threading.Event()
        self._run_stopped = threading.Event()
        self._latest: RunStats | None = None  # the run's newest numbers, copied in its own thread
        self._redraw: Timer | None = None  # draws _latest while a run is on
        self._endpoint_restored = False  # the newest run's model and base URL were offered to the form once

    def compose(self) -> ComposeResult:
        defaults = self.app.ws.config.judge
        prompts = available_prompts(self.app.ws.path) or [defaults.prompt]
        yield WorkspaceHeader()
        with Vertical(id="form"):
            with Horizontal(classes="row"):
                yield Static("model", classes="name")
                yield Input(defaults.model, compact=True, id="model")
                yield Static("base URL", classes="name second")
                yield Input(defaults.base_url or "", placeholder="the OpenAI API", compact=True, id="base-url")
            with Horizontal(classes="row"):
                yield Static("prompt", classes="name")
                yield Select([(literal_text(name), name) for name in prompts], allow_blank=False, compact=True,
                             value=defaults.prompt if defaults.prompt in prompts else prompts[0], id="prompt")
                yield Static("concurrency", classes="name second")
                yield Input(str(defaults.concurrency), type="integer", compact=True, id="concurrency")
            with Horizontal(classes="row"):
                yield Static("pairs", classes="name")
                yield SourceSplitPicker(id="judge-pairs")
                yield Static("limit", classes="name second")
                yield Input(placeholder="all", type="integer", compact=True, id="limit")
        with Horizontal(id="buttons"):
            yield Button("Estimate", compact=True, variant="primary", id="estimate")
            yield Button("Start", compact=True, variant="success", disabled=True, id="start")
            yield Button("Cancel", compact=True, variant="error", disabled=True, id="cancel")
        with Vertical(id="run"):
            yield Static("Estimate first: it shows what a run would cost; Start runs exactly that plan.", id="plan")
            yield ProgressBar(show_eta=False, id="progress")
            yield Static(id="rate")
            yield Static(id="tokens")
            yield Static(id="issues")
            yield Static(id="state")
            yield Static(id="message")
        yield Static("past runs, newest first", id="history-title")
        yield PlainTextTable(HISTORY_COLUMNS, id="history")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._load_history()

    @query_work(group="judge-history", exclusive=True)
    def _load_history(self) -> None:
        with self.app.cursor("judge-history") as con:
            found = past_runs(con)
        self.app.call_from_thread(self._show_history, found)

    def _show_history(self, found: list[PastRun]) -> None:
        rows = [(r.started_at.strftime("%m-%d %H:%M"), r.state, r.model, r.prompt_version.split("#")[0],
                 f"{r.n_pairs:,}", f"{r.n_calls:,}", f"{r.n_cached:,}",
                 "—" if r.n_pairs == 0 else f"{r.inconsistent_share:.1%}", f"{r.n_parse_errors:,}",
                 f"${r.cost_usd:,.2f}") for r in found]
        self.query_one("#history", PlainTextTable).show_rows(rows, list(range(len(rows))))
        if not self._endpoint_restored:
            self._endpoint_restored = True
            if found:
                self._restore_endpoint(found[0])

    def _restore_endpoint(self, newest: PastRun) -> None:
        """The newest run's model and base URL, unless the person has already typed over the defaults."""
        defaults = self.app.ws.config.judge
        model, base_url = self.query_one("#model", Input), self.query_one("#base-url", Input)
        if self._run_active or self._estimate is not None or (model.value, base_url.value) != (
                defaults.model, defaults.base_url or ""):
            return
        model.value, base_url.value = newest.model, newest.base_url or ""

    def on_unmount(self) -> None:
        # The app is closing: stop the run and let it write its last rows before the workspace closes.
        if self._run_active:
            self._stop_run()
            self._run_stopped.wait(STOP_WAIT_S)

    # -- the form ------------------------------------------------------------------
    def read_form(self) -> JudgeForm:
        model = self.query_one("#model", Input).value.strip()
        if not model:
            raise FormError("model must not be empty")
        picker = self.query_one(SourceSplitPicker)
        return JudgeForm(
            model=model,
            base_url=self.query_one("#base-url", Input).value.strip() or None,
            prompt=self.query_one("#prompt", Select).value,
            source=picker.source,
            split=picker.split,
            limit=whole_number(self.query_one("#limit", Input).value, "limit", blank_ok=True),
            concurrency=whole_number(self.query_one("#concurrency", Input).value, "concurrency", blank_ok=False),
        )

    def _estimate_is_current(self) -> bool:
        if self._estimate is None:
            return False
        try:
            return self.read_form() == self._estimate.form
        except FormError:
            return False

    def _sync_controls(self) -> None:
        self.query_one("#estimate", Button).disabled = self._run_active  # (while estimating, presses are ignored)
        self.query_one("#start", Button).disabled = self._why_not_start() is not None
        self.query_one("#cancel", Button).disabled = not self._run_active
        self.refresh_bindings()
        for field in self.query("#form Input, #form Select"):
            field.disabled = self._run_active

    def _form_changed(self) -> None:
        if self._estimate is not None and not self._run_active and not self._estimate_is_current():
            self.query_one("#plan", Static).update("the form changed since the estimate: Estimate again")
        self._sync_controls()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._form_changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._form_changed()

    def on_source_split_picker_changed(self, message: SourceSplitPicker.Changed) -> None:
        self._form_changed()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"estimate": self.action_estimate, "start": self.action_start, "cancel": self.action_cancel_run}[
            event.button.id
        ]()

    def _say(self, why: str) -> None:
        self.query_one("#message", Static).update(literal_text(why))

    def _clear_run_lines(self) -> None:
        """The last run's bar and numbers go once a new estimate or run begins: they would read as the new one's."""
        self.query_one("#progress", ProgressBar).remove_class("-shown")
        for line_id in ("rate", "tokens", "issues", "state"):
            self.query_one(f"#{line_id}", Static).update("")

    # -- estimate ------------------------------------------------------------------
    def action_estimate(self) -> None:
        if self._estimating:
            return  # one is on its way
        if self._run_active:
            self._say("a run is going on: estimate the next one once it ends (or cancel it)")
            return
        try:
            form = self.read_form()
        except FormError as exc:
            self._say(str(exc))
            return
        self._say("")
        self._clear_run_lines()
        self._estimating = True
        self.query_one("#plan", Static).update("estimating…")
        self._sync_controls()
        self._make_estimate(form, form.settings(self.app.ws.config.judge))

    @work(thread=True, exclusive=True, group="judge-estimate")
    def _make_estimate(self, form: JudgeForm, settings: JudgeConfig) -> None:
        try:
            judges = parse_judges([text.strip() for text in form.model.split(",") if text.strip()], "model")
            each = [settings.model_copy(update={"model": j.model, "base_url": j.base_url or settings.base_url})
                    for j in judges]
            with self.app.cursor("judge-estimate") as con:
                if len(each) == 1:  # a single judge's run continues its earlier limit (judge/continuation.py)
                    runs = [(each[0], *prepare_run(self.app.ws, each[0], con=con, source=form.source,
                                                   split=form.split, limit=form.limit))]
                else:
                    runs = plan_jury(self.app.ws, each, con=con, source=form.source, split=form.split,
                                     limit=form.limit)
        except (PrefstudioError, duckdb.Error) as exc:
            self.post_message(EstimateFailed(form, first_line(exc)))
            return
        self.post_message(Estimated(Estimate(form, tuple(runs))))

    def on_estimated(self, message: Estimated) -> None:
        self._estimating = False
        self._estimate = message.estimate
        estimate = message.estimate
        self.query_one("#plan", Static).update(literal_text(estimate.describe()))
        self._form_changed()
        start = self.query_one("#start", Button)
        if not start.disabled:
            start.focus()  # Enter now confirms the price

    def on_estimate_failed(self, message: EstimateFailed) -> None:
        self._estimating = False
        self._estimate = None
        self.query_one("#plan", Static).update("no estimate")
        self._say(message.why)
        self._sync_controls()

    # -- run -----------------------------------------------------------------------
    def _why_not_start(self) -> str | None:
        """Why Start cannot run now (what its key and the palette say), or None when it can."""
        if self._run_active:
            return "a run is going on"
        if self._estimating:
            return "the estimate is not ready yet"
        if self._estimate is None:
            return "Estimate first: Start runs exactly the plan an estimate shows"
        if not self._estimate_is_current():
            return "the form changed since the estimate: Estimate again"
        if not self._estimate.pairs and not self._estimate.jury:  # a jury's labels are written even when all is cached
            return "nothing to judge: the estimate found no pair left for this judge"
        return None

    def action_start(self) -> None:
        why = self._why_not_start()
        if why is not None:
            self._say(why)
            return
        estimate = self._estimate
        self._run_active = True
        self._cancel_asked.clear()
        self._run_stopped.clear()
        self._latest = None
        self._say("")
        self._clear_run_lines()
        progress = self.query_one("#progress", ProgressBar)
        progress.update(total=max(1, estimate.pairs), progress=0)
        progress.add_class("-shown")
        self.query_one("#state", Static).update("running…")
        self._sync_controls()
        self.query_one("#cancel", Button).focus()
        self._redraw = self.set_interval(REDRAW_S, self._show_latest)
        self._judge(estimate)

    @work(thread=True, group="judge-run")
    def _judge(self, estimate: Estimate) -> None:
        """Each judge's run in turn (one, or a jury's), then a jury's labels; a cancel or a failure stops there."""
        def on_progress(stats: RunStats) -> None:
            self._latest = copy.copy(stats)  # drawn by the UI's timer; nothing here waits on it

        stats, said = None, ""
        try:
            with self.app.cursor("judge-run") as con:
                for index, (settings, prompt, plan) in enumerate(estimate.runs):
                    if not plan.tasks:
                        continue
                    self._judge_label = f"judge {index + 1}/{len(estimate.runs)} {settings.model}: " \
                        if estimate.jury else ""
                    run = JudgeRun.for_workspace(self.app.ws, settings, prompt, plan, con=con,
                                                 on_progress=on_progress, advice=FORM_ADVICE)
                    self._run = run
                    if self._cancel_asked.is_set():  # Cancel came before there was a run to tell
                        run.cancel()
                    stats = asyncio.run(run.run())
                    if stats.state != "done":
                        break
                if estimate.jury and (stats is None or stats.state == "done"):
                    form = estimate.form
                    said = compute_jury(con, [settings.model for settings, _, _ in estimate.runs],
                                        estimate.runs[0][1].identity, self.app.ws.config.margins,
                                        source=form.source, split=form.split).summary()
            self.post_message(RunEnded(stats, "", said))
        except (PrefstudioError, duckdb.Error, openai.OpenAIError) as exc:
            self.post_message(RunEnded(None, first_line(exc)))
        finally:
            self._run = None
            self._judge_label = ""
            self._run_stopped.set()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            return True if self._run_active else None  # shown, dimmed, while there is nothing to cancel
        return True

    def action_cancel_run(self) -> None:
        if self._run_active:
            self._stop_run()
            self.query_one("#state", Static).update("cancelling…")

    def _stop_run(self) -> None:
        self._cancel_asked.set()
        run = self._run
        if run is not None:
            run.cancel()

    def _show_latest(self) -> None:
        stats = self._latest
        if stats is None:
            return
        self.query_one("#progress", ProgressBar).update(total=stats.pairs_total, progress=stats.pairs_done)
        self.query_one("#rate", Static).update(
            f"rate {stats.calls_per_s:.1f} calls/s · {stats.calls_made:,} of {stats.calls_total:,} calls made"
        )
        self.query_one("#tokens", Static).update(
            f"tokens {stats.tokens_in:,} in · {stats.tokens_out:,} out · cost ${stats.cost_usd:,.4f}"
        )
        self.query_one("#issues", Static).update(
            f"inconsistent {stats.inconsistent:,} · parse errors {stats.parse_errors:,} · retries {stats.retries:,}"
            + (f" · {stats.failed_pairs:,} pairs got no answer" if stats.failed_pairs else "")
        )
        if self._run_active and not self._cancel_asked.is_set():
            # a countdown while calls wait on a retry (computed at each draw: it moves between progress reports)
            self.query_one("#state", Static).update(literal_text(self._judge_label + (stats.waiting() or "running…")))

    def on_run_ended(self, message: RunEnded) -> None:
        self._run_active = False
        if self._redraw is not None:
            self._redraw.stop()
            self._redraw = None
        if message.stats is not None:
            self._latest = message.stats
            self._show_latest()
            self.query_one("#state", Static).update(literal_text(message.stats.summary()))
        else:
            self.query_one("#state", Static).update("no call needed" if message.jury else "failed")
        self._say(message.jury or message.why)
        # What was judged has changed: the next run needs its own estimate.
        self._estimate = None
        self.query_one("#plan", Static).update("Estimate again for the next run.")
        self._sync_controls()
        self.query_one("#estimate", Button).focus()
        self._load_history()
