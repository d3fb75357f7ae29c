"""Training jobs from the app: the queue, one job's live curves and log, and a form to launch another.

Everything shown is read from the job folders, never from a job process: a job
runs detached and outlives the app (train/jobs.py). Once a second a thread
worker reads each job's small status.json and, for the selected job, only the
bytes metrics.jsonl gained since the last look (a long run's file is never read
twice). A resumed job writes again the steps after its last checkpoint; the
newest line of a step wins. Launching takes a snapshot of the pairs, so it runs
in a thread worker too; the form checks the settings first, on the spot, then
against the workspace's pairs in a worker (train/checks.py, as `prefstudio train`).
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Select, Static

from prefstudio import textplot
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.train import jobs, truncation
from prefstudio.train.config import TrainConfig, make_config
from prefstudio.tui.widgets import Column, DrawnChart, PageTable, WorkspaceHeader, literal_text, visible

POLL_S = 1.0
LOG_LINES = 15
MAX_POINTS = 2000  # per series handed to a chart; a chart is narrower than this in dots
BAR_WIDTH = 12


# -- reading the job folders (worker thread) ----------------------------------------------------------

@dataclass
class _Metrics:
    """What one job's metrics.jsonl said so far, and where to go on reading it."""

    offset: int = 0
    by_step: dict[int, dict] = field(default_factory=dict)

    def read_more(self, path: Path) -> bool:
        """Read the complete lines added since the last call; True if there were any."""
        try:
            with open(path, "rb") as file:
                if file.seek(0, 2) < self.offset:  # a new file: start over
                    self.offset, self.by_step = 0, {}
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return False
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
                self.by_step[int(record["step"])] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line a crash cut short
        return bool(complete)

    def series(self) -> tuple[dict[str, list[textplot.Point]], dict[str, list[textplot.Point]]]:
        """(loss and loss per source, λ per source), each name -> (step, value) in step order."""
        loss: dict[str, list[textplot.Point]] = {"loss": []}
        weights: dict[str, list[textplot.Point]] = {}
        for step in sorted(self.by_step):
            record = self.by_step[step]
            loss["loss"].append((step, _number(record.get("loss"))))
            for source, value in (record.get("loss_by_source") or {}).items():
                loss.setdefault(source, []).append((step, _number(value)))
            for source, value in (record.get("lambda") or {}).items():
                weights.setdefault(source, []).append((step, _number(value)))
        thin = {name: textplot.thin(points, MAX_POINTS) for name, points in loss.items()}
        return thin, {name: textplot.thin(points, MAX_POINTS) for name, points in weights.items()}


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


@dataclass(frozen=True)
class JobRow:
    status: jobs.JobStatus
    objective: str
    backbone: str


@dataclass(frozen=True)
class JobDetail:
    id: str
    loss: dict[str, list[textplot.Point]]
    weights: dict[str, list[textplot.Point]]
    log: str
    truncation: str = ""  # what max_length cost the job's pairs


class JobsScanned(Message):
    def __init__(self, rows: list[JobRow], detail: JobDetail | None) -> None:
        super().__init__()
        self.rows, self.detail = rows, detail


class JobActionDone(Message):
    """A launch, cancel or resume finished; `why` is its error, if any; `select` the job to show; `note` news."""

    def __init__(self, why: str, select: str | None = None, note: str = "") -> None:
        super().__init__()
        self.why, self.select, self.note = why, select, note


# -- widgets ------------------------------------------------------------------------------------------

def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _bar(step: int, total: int) -> str:
    filled = round(BAR_WIDTH * step / total) if total else 0
    return "█" * min(filled, BAR_WIDTH) + "░" * (BAR_WIDTH - min(filled, BAR_WIDTH))


def job_cells(row: JobRow) -> tuple[str, ...]:
    s = row.status
    return (s.state, f"{s.step}/{s.total_steps or '?'}", _bar(s.step, s.total_steps), _eta(s.eta_seconds),
            "—" if s.loss is None else f"{s.loss:.4f}", row.objective, s.id, Path(row.backbone).name)


class JobTable(PageTable):
    """The jobs, oldest first; says when the cursor lands on another row."""

    BINDINGS = [Binding("enter", "select", show=False)]

    class Highlighted(Message):
        def __init__(self, row: int, table: JobTable | None = None) -> None:
            super().__init__()
            self.row = row
            self.table = table

        @property
        def control(self) -> JobTable | None:
            return self.table

    def move_cursor(self, row: int) -> None:
        super().move_cursor(row)
        self.post_message(self.Highlighted(self.cursor_row, self))


class ChartView(DrawnChart):
    """A titled braille chart of some series that fills its widget, each series in its own colour."""

    DEFAULT_CSS = """
    ChartView {
        padding: 0;
    }
    """

    def __init__(self, title: str, *, id: str, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.show({})

    def show(self, series: dict[str, list[textplot.Point]]) -> None:
        self.series = series
        # the plot's rows, then the x range and one legend line; DrawnChart redraws shorter if the legend wraps
        super().show(self.chart_title, lambda width, lines: textplot.plot(
            series, max(1, width - textplot.MAX_GUTTER), max(1, lines - 2)), "no steps yet")


# -- the form -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LaunchRequest:
    config: TrainConfig
    gpus: list[int] | None
    name: str | None
    given: frozenset[str] = frozenset()  # the settings the form set: an explicit unlabelled is not a default
    notes: tuple[str, ...] = ()  # what the launch check says to know (train/checks.py)


class LaunchChecked(Message):
    """The workspace check of a form's request: `why` refuses it, else it goes with `notes`."""

    def __init__(self, request: LaunchRequest, why: str = "", notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.request, self.why, self.notes = request, why, notes


def form_spelling(key: str, value) -> str:
    """How the form names a setting in a message (its field, not a command-line flag)."""
    return f"{key.replace('_', ' ')} {value}"


def parse_gpus(text: str) -> list[int] | None:
    text = text.strip()
    if not text:
        return None
    try:
        gpus = [int(part) for part in text.split(",")]
    except ValueError:
        gpus = [-1]
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise PrefstudioError("GPUs: device numbers separated by commas, e.g. 0,1 (or empty for none)")
    return gpus


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class NewJobForm(ModalScreen[LaunchRequest | None]):
    """The settings of a new training job; Launch checks them and gives them back, Escape gives nothing."""

    DEFAULT_CSS = """
    NewJobForm {
        align: center middle;
    }
    NewJobForm > Vertical {
        width: 84;
        height: auto;
        padding: 1 2;
        border: round $primary;
        background: $surface;
    }
    NewJobForm Grid {
        grid-size: 4;
        grid-columns: 13 1fr 13 1fr;
        grid-rows: 1;
        grid-gutter: 1 1;
        height: auto;
    }
    NewJobForm .name {
        color: $text-muted;
    }
    NewJobForm #backbone-row {
        height: 1;
        margin-bottom: 1;
    }
    NewJobForm #backbone-row .name {
        width: 14;
    }
    NewJobForm #form-error {
        color: $error;
        text-style: bold;
        height: auto;
        margin-top: 1;
    }
    NewJobForm #form-buttons {
        height: 1;
        margin-top: 1;
    }
    NewJobForm #form-buttons Button {
        margin-right: 2;
    }
    """
    BINDINGS = [Binding("escape", "dismiss_form", "Close")]
    FIELDS = {"batch-size": "batch_size", "lr": "lr", "epochs": "epochs", "max-length": "max_length"}

    def __init__(self, backbone: str = "") -> None:
        super().__init__()
        self._backbone = backbone
        self._checking: LaunchRequest | None = None  # the request whose workspace check runs

    def compose(self) -> ComposeResult:
        defaults = TrainConfig.model_fields
        with Vertical():
            yield Static("New training job", classes="name")
            with Horizontal(id="backbone-row"):
                yield Static("backbone", classes="name")
                yield Input(self._backbone, placeholder="path to a Hugging Face model folder", compact=True,
                            id="backbone")
            with Grid():
                yield Static("objective", classes="name")
                yield Select(_choices(("bt", "margin", "adaptive", "more")), value="bt", allow_blank=False,
                             compact=True, id="objective")
                yield Static("sampling", classes="name")
                yield Select(_choices(("single", "multitask", "balanced")), value="multitask", allow_blank=False,
                             compact=True, id="sampling")
                yield Static("batch size", classes="name")
                yield Input(str(defaults["batch_size"].default), compact=True, id="batch-size")
                yield Static("lr", classes="name")
                yield Input(str(defaults["lr"].default), compact=True, id="lr")
                yield Static("epochs", classes="name")
                yield Input(str(defaults["epochs"].default), compact=True, id="epochs")
                yield Static("max length", classes="name")
                yield Input(str(defaults["max_length"].default), compact=True, id="max-length")
                yield Static("precision", classes="name")
                yield Select(_choices(("no", "bf16", "fp16")), value="no", allow_blank=False, compact=True,
                             id="mixed-precision")
                yield Static("GPUs", classes="name")
                yield Input(placeholder="none, or e.g. 0,1", compact=True, id="gpus")
                yield Static("sources", classes="name")
                yield Input(placeholder="all, or a,b", compact=True, id="sources")
                yield Static("name", classes="name")
                yield Input(placeholder="the job id", compact=True, id="name")
                yield Static("unlabelled", classes="name")
                yield Select(_choices(("zero", "drop")), prompt="zero (default)", compact=True, id="unlabelled")
            yield Static(id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Launch", compact=True, variant="success", id="launch")
                yield Button("Cancel", compact=True, id="close")

    def on_mount(self) -> None:
        self.query_one("#backbone", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "objective" and event.value == "more":
            self.query_one("#sampling", Select).value = "balanced"  # MORE weighs one sub-batch per source

    def read_form(self) -> LaunchRequest:
        """The request in the form; PrefstudioError, one line, on a value a job cannot use."""
        values: dict = {
            "backbone": self.query_one("#backbone", Input).value.strip(),
            "objective": self.query_one("#objective", Select).value,
            "sampling": self.query_one("#sampling", Select).value,
            "mixed_precision": self.query_one("#mixed-precision", Select).value,
        }
        if not values["backbone"]:
            raise PrefstudioError("backbone: give the path of a model folder")
        for input_id, key in self.FIELDS.items():
            text = self.query_one(f"#{input_id}", Input).value.strip()
            if text:
                values[key] = text
        sources = [s.strip() for s in self.query_one("#sources", Input).value.split(",") if s.strip()]
        if sources:
            values["sources"] = sources
        unlabelled = self.query_one("#unlabelled", Select).value
        if isinstance(unlabelled, str):  # chosen, not left at the default
            values["unlabelled"] = unlabelled
        config = make_config(values)
        gpus = parse_gpus(self.query_one("#gpus", Input).value)
        return LaunchRequest(config, gpus, self.query_one("#name", Input).value.strip() or None, frozenset(values))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        else:
            self.action_dismiss_form()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        try:
            request = self.read_form()
        except PrefstudioError as exc:
            self.query_one("#form-error", Static).update(literal_text(first_line(exc)))
            return
        self._checking = request
        self._check(request)

    @work(thread=True, group="launch-check", exclusive=True)
    def _check(self, request: LaunchRequest) -> None:
        """The settings against the workspace's pairs (train/checks.py), as `prefstudio train` checks them."""
        from prefstudio.train.checks import check_launch

        try:
            with self.app.cursor("launch-check") as con:
                notes = check_launch(self.app.ws, request.config, given=request.given, con=con,
                                     spell=form_spelling)
        except (PrefstudioError, duckdb.Error) as exc:
            self.post_message(LaunchChecked(request, first_line(exc)))
            return
        self.post_message(LaunchChecked(request, notes=tuple(notes)))

    def on_launch_checked(self, message: LaunchChecked) -> None:
        if message.request is not self._checking:
            return  # Launch was pressed again meanwhile (or the form is done): the newer check answers
        self._checking = None
        if message.why:
            self.query_one("#form-error", Static).update(literal_text(message.why))
            return
        self.dismiss(replace(message.request, notes=message.notes))

    def action_dismiss_form(self) -> None:
        self._checking = None  # a check still running answers no one
        self.dismiss(None)


# -- the screen ---------------------------------------------------------------------------------------

class JobsScreen(Screen):
    DEFAULT_CSS = """
    JobsScreen #jobs {
        height: auto;
        max-height: 9;
    }
    JobsScreen #detail {
        height: 1fr;
    }
    JobsScreen #charts {
        width: 3fr;
        padding: 0 1;
    }
    JobsScreen #side {
        width: 2fr;
        padding: 0 1;
    }
    JobsScreen #lambda.-hidden {
        display: none;
    }
    JobsScreen #job-title {
        text-style: bold;
        height: auto;
    }
    JobsScreen #job-message {
        height: auto;
    }
    JobsScreen #job-truncation {
        height: auto;
        color: $text-muted;
        margin-bottom: 1;
    }
    JobsScreen #job-message.-failed {
        color: $error;
        text-style: bold;
    }
    JobsScreen #log {
        height: 1fr;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """
    BINDINGS = [
        Binding("n", "new_job", "New job"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("r", "resume_job", "Resume job"),
        Binding("e", "evaluate_job", "Score on test"),
    ]
    COLUMNS = [Column("state", 9), Column("step", 11, right=True), Column("progress", BAR_WIDTH),
               Column("ETA", 7, right=True), Column("loss", 8, right=True), Column("objective", 9),
               Column("job"), Column("backbone")]

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[JobRow] = []
        self._selected: str | None = None  # the id of the job shown below the list
        self._scanning = False
        self._scan_again = False
        # Read and written by the scan worker only; scan() runs one at a time:
        self._metrics: dict[str, _Metrics] = {}
        self._configs: dict[str, tuple[str, str]] = {}  # job id -> (objective, backbone)
        self._synced_states: dict[str, str] = {}  # job id -> state, as last copied into the jobs table

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        yield JobTable(self.COLUMNS, id="jobs")
        with Horizontal(id="detail"):
            with Vertical(id="charts"):
                yield ChartView("loss per step", id="loss")
                yield ChartView("λ per source (MORE)", id="lambda", classes="-hidden")
            with Vertical(id="side"):
                yield Static("no jobs yet: n starts one", id="job-title")
                yield Static(id="job-message")
                yield Static(id="job-truncation")
                yield Static(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(JobTable).focus()
        self.set_interval(POLL_S, self.scan)
        self.scan()

    @property
    def selected(self) -> JobRow | None:
        return next((row for row in self._rows if row.status.id == self._selected), None)

    # -- reading -------------------------------------------------------------------------------------
    def scan(self) -> None:
        """Read the job folders again, now or as soon as the running read is done."""
        if self._scanning:
            self._scan_again = True
            return
        self._scanning = True
        self._read_jobs(self._selected)

    @work(thread=True, group="jobs-scan")
    def _read_jobs(self, selected: str | None) -> None:
        statuses = jobs.list_jobs(self.app.ws.jobs_dir)
        states = {s.id: s.state for s in statuses}
        if states != self._synced_states:  # the workspace's jobs table follows the folders, for SQL users
            with self.app.write_cursor() as con:
                jobs.sync_jobs(self.app.ws, con=con)
            self._synced_states = states
        rows = [JobRow(s, *self._config_of(s)) for s in statuses]
        if selected not in {s.id for s in statuses}:
            selected = statuses[-1].id if statuses else None  # the newest job
        detail = None
        if selected is not None:
            status = next(s for s in statuses if s.id == selected)
            metrics = self._metrics.setdefault(selected, _Metrics())
            metrics.read_more(status.folder / "metrics.jsonl")
            detail = JobDetail(selected, *metrics.series(), status.log_tail(LOG_LINES), truncation.read_line(status.folder))
        self.post_message(JobsScanned(rows, detail))

    def _config_of(self, status: jobs.JobStatus) -> tuple[str, str]:
        if status.id not in self._configs:
            try:
                config = tomllib.loads((status.folder / jobs.CONFIG).read_text(encoding="utf-8"))
                what = config.get("objective", "bt") if status.kind == "train" else status.kind
                model = config.get("backbone") or config.get("checkpoint") or config.get("policy")
                self._configs[status.id] = (str(what), str(model or "?"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError):
                return "?", "?"
        return self._configs[status.id]

    def on_jobs_scanned(self, message: JobsScanned) -> None:
        self._scanning = False
        self._rows = message.rows
        if message.detail is not None and self._selected not in {row.status.id for row in self._rows}:
            self._selected = message.detail.id
        table = self.query_one(JobTable)
        index = next((i for i, row in enumerate(self._rows) if row.status.id == self._selected), 0)
        table.show_rows([job_cells(row) for row in self._rows], list(range(len(self._rows))), cursor_row=index)
        self._show_selected(message.detail)
        self.refresh_bindings()
        if self._scan_again:
            self._scan_again = False
            self.scan()

    def _show_selected(self, detail: JobDetail | None) -> None:
        row = self.selected
        if row is None:
            self.query_one("#job-title", Static).update("no jobs yet: n starts one")
            for static_id in ("#job-message", "#job-truncation", "#log"):
                self.query_one(static_id, Static).update("")
            self.query_one("#loss", ChartView).show({})
            return
        s = row.status
        self.query_one("#job-title", Static).update(literal_text(
            f"{s.name or s.id} · {row.objective} · {s.state} · step {s.step}/{s.total_steps or '?'}"
        ))
        message = self.query_one("#job-message", Static)
        message.update(literal_text(s.message))
        message.set_class(s.state == "failed", "-failed")
        if detail is None or detail.id != s.id:
            return  # the selection moved since this read; the next read brings its curves
        self.query_one("#job-truncation", Static).update(literal_text(detail.truncation))
        self.query_one("#log", Static).update(literal_text(detail.log))
        self.query_one("#loss", ChartView).show(detail.loss)
        weights = self.query_one("#lambda", ChartView)
        weights.set_class(not detail.weights, "-hidden")
        weights.show(detail.weights)

    def on_job_table_highlighted(self, message: JobTable.Highlighted) -> None:
        if not self._rows:
            return
        job_id = self._rows[message.row].status.id
        if job_id != self._selected:
            self._selected = job_id
            self._show_selected(None)
            self.refresh_bindings()
            self.scan()

    # -- actions -------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.selected.status.state if self.selected else None
        if action == "cancel_job":
            return True if state in ("queued", "running") else None
        if action == "resume_job":
            return True if state in ("failed", "cancelled") else None
        if action == "evaluate_job":  # a training job with a checkpoint: done, or stopped after saving one
            return True if self.selected and self.selected.status.kind == "train" and state != "queued" else None
        return True

    def action_new_job(self) -> None:
        # the newest training job's backbone is the likeliest next one; before any, the demo's small model
        from prefstudio.demo import small_backbone

        trained = [row for row in self._rows if row.status.kind == "train" and row.backbone != "?"]
        backbone = trained[-1].backbone if trained else (small_backbone() or "")
        self.app.push_screen(NewJobForm(backbone), self._launch_requested)

    def _launch_requested(self, request: LaunchRequest | None) -> None:
        if request is not None:
            for note in request.notes:
                self.notify(visible(note), title="new job", markup=False)
            self.notify("taking a snapshot of the pairs…", title="new job")
            self._launch(request)

    @work(thread=True, group="jobs-launch")
    def _launch(self, request: LaunchRequest) -> None:
        try:
            with self.app.write_cursor() as con:
                made = jobs.create_job(self.app.ws, request.config, gpus=request.gpus,
                                       num_processes=len(request.gpus) if request.gpus else 1, name=request.name,
                                       con=con)
            jobs.start_next(self.app.ws.jobs_dir)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(f"launch failed: {first_line(exc)}"))
            return
        self.post_message(JobActionDone("", select=made.id))

    def action_evaluate_job(self) -> None:
        if self.selected is not None:
            self._evaluate(self.selected.status.id)

    @work(thread=True, group="jobs-launch")
    def _evaluate(self, job_id: str) -> None:
        """Score the job's latest checkpoint on the test split, as `prefstudio eval` does; F6 shows it."""
        from prefstudio.evaluate import scoring_job

        try:
            with self.app.write_cursor() as con:
                config = scoring_job.eval_config(self.app.ws, job_id)
                made = scoring_job.create_eval_job(self.app.ws, config, con=con)
            jobs.start_next(self.app.ws.jobs_dir)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(f"scoring not started: {first_line(exc)}"))
            return
        self.post_message(JobActionDone("", select=made.id,
                                        note=f"scoring {config.checkpoint_name} of {job_id} on the test split: "
                                             "F6 Evaluate shows it when done"))

    def action_cancel_job(self) -> None:
        if self.selected is not None:
            self._act(jobs.cancel, self.selected.status.folder)

    def action_resume_job(self) -> None:
        if self.selected is not None:
            self._act(jobs.resume, self.selected.status.folder)

    @work(thread=True, group="jobs-act")
    def _act(self, act, folder: Path) -> None:
        try:
            act(folder)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(first_line(exc)))
            return
        self.post_message(JobActionDone(""))

    def on_job_action_done(self, message: JobActionDone) -> None:
        if message.why:
            self.notify(visible(message.why), severity="error", markup=False)
        if message.note:
            self.notify(visible(message.note), markup=False)
        if message.select is not None:
            self._selected = message.select
        self.scan()
