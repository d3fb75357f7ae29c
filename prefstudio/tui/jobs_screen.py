"""Training jobs from the app: the queue, one job's live curves and log; `n` and `w` open the launch forms
(tui/launch_form.py).

Everything shown is read from the job folders, never from a job process: a job
runs detached and outlives the app (prefstudio/jobs/). Once a second a thread
worker reads each job's small status file and, for the selected job, only the
bytes its metrics file gained since the last look (jobs/metrics_log.py); when a
job's state changes it brings the jobs in (jobs/sync.py). Launching takes a
snapshot of the pairs, so it runs in a thread worker too. A sweep's jobs are listed
together, with their sweep in the last column; a MORE job's side panel draws its
sources' gradient cosines and warns of a source its λ ignores.

Every key answers at once: a cancel shows "cancelling…" in the row before the job
has stopped and each action's own status updates its row without waiting for the next
read; `c` and `r` on a job they do not apply to say why; `e` on a model scored
already asks first.

Over 400 lines: the queue table, the curves, the log, MORE's diagnostics and the questions (a re-score, a
retrain); the job mechanics live in prefstudio/jobs/, the sweep's in prefstudio/train/sweep.py.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widgets import Footer, Static

from prefstudio import jobs, textplot
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.jobs import kinds, retrain
from prefstudio.jobs.layout import read_config
from prefstudio.jobs.metrics_log import CONFLICT_STEPS, IGNORED_STEPS, MetricsLog, ignored_now, mean_cosines
from prefstudio.jobs.names import check_new_name
from prefstudio.train import launch_defaults, sweep, truncation
from prefstudio.train.jobs import create_training_job
from prefstudio.tui.launch_form import LaunchRequest, NewJobForm, SweepForm, SweepRequest
from prefstudio.tui.widgets import Column, DrawnChart, PlainTextTable, WorkspaceHeader, literal_text, visible

POLL_S = 1.0
LOG_LINES = 15
MAX_POINTS = 2000  # per series handed to a chart; a chart is narrower than this in dots
BAR_WIDTH = 12
SWEEP_WIDTH = 9  # 'sw-3f2a', or a short name: the job ids keep their width
CANCELLABLE = ("queued", "held", "running")
RESUMABLE = ("failed", "cancelled", "held")
CANCELLING = "cancelling…"  # a running job's state from the cancel on, until its process has saved and stopped
GENERIC_FOLDERS = {"model", "models", "hf", "checkpoint", "final", "merged", "snapshot", "weights"}


# -- reading the job folders (worker thread) ----------------------------------------------------------

def curves(metrics: MetricsLog) -> tuple[dict[str, list[textplot.Point]], dict[str, list[textplot.Point]]]:
    """(loss and loss per source, λ per source), each name -> (step, value) in step order."""
    loss: dict[str, list[textplot.Point]] = {"loss": []}
    weights: dict[str, list[textplot.Point]] = {}
    for step in sorted(metrics.by_step):
        record = metrics.by_step[step]
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
    backbone: str  # the model's path: a next launch's likeliest backbone
    model: str = ""  # what the backbone column shows (model_label)
    parent: str = ""  # a retrain's parent, as job_label names it (jobs/retrain.py)


CONFLICT_NAME = 8  # a source's name in the cosine table's rows (its first 4 letters head the columns)


def conflict_table(found: tuple[list[str], list[list[float]], int] | None) -> Text:
    """MORE's per-source gradient cosines (jobs/metrics_log.py, mean_cosines) as a small heat table: red where two
    sources pull apart (cos < 0), green where they agree; blank for a job without them. Six sources fit 40 columns."""
    if found is None:
        return Text()
    sources, matrix, steps = found
    text = Text(f"cos(g_i, g_j), mean of {'last ' if steps == CONFLICT_STEPS else ''}{steps} "
                f"step{'s' if steps != 1 else ''}\n", style="bold")
    text.append(" " * (CONFLICT_NAME + 1) + " ".join(f"{name[:4]:<4}" for name in sources))
    for name, row in zip(sources, matrix):
        shown = name if len(name) <= CONFLICT_NAME else name[: CONFLICT_NAME - 1] + "…"
        text.append(f"\n{shown:<{CONFLICT_NAME}} ")
        for j, value in enumerate(row):
            text.append(_cosine_cell(value), style=_heat(value))
            if j < len(row) - 1:
                text.append(" ")
    return text


def _cosine_cell(value: float) -> str:
    """Four characters: +.30, -.12, +1.0; ' ·  ' where undefined (a source with no gradient)."""
    if math.isnan(value):
        return " ·  "
    if abs(value) >= 0.995:
        return f"{value:+.1f}"
    return f"{value:+.2f}".replace("0.", ".", 1)


def _heat(value: float) -> Style:
    if math.isnan(value):
        return Style()
    strength = min(1.0, abs(value))
    low = 40
    shade = low + int(150 * strength)
    return Style(color="white", bgcolor=Color.from_rgb(shade, low, low) if value < 0 else Color.from_rgb(low, shade, low))


@dataclass(frozen=True)
class JobDetail:
    id: str
    loss: dict[str, list[textplot.Point]]
    weights: dict[str, list[textplot.Point]]
    log: str
    truncation: str = ""  # what max_length cost the job's pairs
    conflict: Text = field(default_factory=Text)  # MORE: the sources' gradient cosines (conflict_table)
    warnings: tuple[str, ...] = ()  # MORE: the sources its λ has ignored over the latest steps


class JobsScanned(Message):
    """A read of the job folders: the rows (a sweep's together), the selected job's detail, each sweep's
    summary line; or `why` it failed (rows None)."""

    def __init__(self, rows: list[JobRow] | None, detail: JobDetail | None, why: str = "",
                 sweeps: dict[str, str] | None = None) -> None:
        super().__init__()
        self.rows, self.detail, self.why, self.sweeps = rows, detail, why, sweeps or {}


class JobActionDone(Message):
    """A launch, cancel or resume finished; `why` is its error, if any; `select` the job to show; `note` news;
    `status` the job's status right after it, shown in its row without waiting for the next read."""

    def __init__(self, why: str, select: str | None = None, note: str = "",
                 status: jobs.JobStatus | None = None) -> None:
        super().__init__()
        self.why, self.select, self.note, self.status = why, select, note, status


class ScoreAsked(Message):
    """`e` on a job, checked: `already` says how the job's checkpoint is scored on test already ("" when not)."""

    def __init__(self, job_id: str, already: str) -> None:
        super().__init__()
        self.job_id, self.already = job_id, already


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


def sweep_label(sweep_id: str | None) -> str:
    """The sweep column: 'lr-3f2a' for sw-lr-3f2a; the dated id of an unnamed sweep is too wide, its tail says it."""
    if not sweep_id:
        return ""
    short = sweep_id.removeprefix("sw-")
    return short if len(short) <= SWEEP_WIDTH else f"sw-{short[-4:]}"


def job_label(status: jobs.JobStatus) -> str:
    """How a job is named to a person: its name where it has one of its own, else its id."""
    return status.name or status.id


def model_label(backbone: str) -> str:
    """The backbone column: the model folder's name, or where that says only "model" (a packaged model,
    .../all-MiniLM-L6-v2/model), the name its model card gives it, else its parent folder's."""
    path = Path(backbone)
    if path.name.lower() not in GENERIC_FOLDERS:
        return path.name
    return _card_title(path) or path.parent.name or path.name


def _card_title(folder: Path) -> str | None:
    """The one-word title of a Hugging Face model card (README.md, '# all-MiniLM-L6-v2'), if it has one."""
    try:
        with open(folder / "README.md", encoding="utf-8", errors="replace") as card:
            for _, line in zip(range(80), card):
                if line.startswith("# "):
                    title = line[2:].strip()
                    return title if title and " " not in title else None
    except OSError:
        pass
    return None


def job_cells(row: JobRow, cancelling: bool = False) -> tuple[str, ...]:
    s = row.status
    state = CANCELLING if cancelling and s.state in CANCELLABLE else s.state
    return (state, f"{s.step}/{s.total_steps or '?'}", _bar(s.step, s.total_steps), _eta(s.eta_seconds),
            "—" if s.loss is None else f"{s.loss:.4f}", row.objective, job_label(s), row.model or row.backbone,
            sweep_label(s.sweep))


class JobTable(PlainTextTable):
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


# -- the screen ---------------------------------------------------------------------------------------

class JobsScreen(Screen):
    CSS_PATH = "jobs_screen.tcss"
    PURPOSE = ("Training jobs: launch one or a sweep, watch loss and MORE's λ live, cancel or resume, score a "
               "finished job on the test pairs.")  # what `?` says first
    BINDINGS = [
        Binding("n", "new_job", "New job"),
        Binding("w", "new_sweep", "New sweep"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("r", "resume_job", "Resume job"),
        Binding("e", "evaluate_job", "Score on test"),
    ]
    COLUMNS = [Column("state", len(CANCELLING)), Column("step", 11, right=True), Column("progress", BAR_WIDTH),
               Column("ETA", 7, right=True), Column("loss", 6, right=True), Column("objective", 9),
               Column("job"), Column("backbone", 16), Column("sweep", SWEEP_WIDTH)]

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[JobRow] = []
        self._selected: str | None = None  # the id of the job shown below the list
        self._sweeps: dict[str, str] = {}  # sweep id -> its summary line, as last read
        self._scanning = False
        self._scan_again = False
        self._scan_failure = ""  # the last read's error, said once
        self._cancelling: set[str] = set()  # jobs asked to stop that have not stopped yet
        # Read and written by the scan worker only; scan() runs one at a time:
        self._metrics: dict[str, MetricsLog] = {}
        self._configs: dict[str, tuple[str, str, str]] = {}  # job id -> (objective, backbone, its label)
        self._parents: dict[str, str] = {}  # job id -> the id of the job it retrains, "" for none
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
                yield Static(id="job-sweep")
                yield Static(id="job-message")
                yield Static(id="job-truncation")
                yield Static(id="job-warnings")
                yield Static(id="conflict")
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

    @work(thread=True, group="jobs-scan", exit_on_error=False)
    def _read_jobs(self, selected: str | None) -> None:
        """One read of the folders; an error (a folder no read expected) is said, and the next read tries again."""
        try:
            self._read_jobs_now(selected)
        except (PrefstudioError, OSError, ValueError, duckdb.Error) as exc:
            self.post_message(JobsScanned(None, None, why=f"reading the jobs failed: {first_line(exc)}"))

    def _read_jobs_now(self, selected: str | None) -> None:
        statuses = jobs.list_jobs(self.app.ws.jobs_dir)
        states = {s.id: s.state for s in statuses}
        if states != self._synced_states:  # a job finished (or started): the database follows the folders
            with self.app.write_cursor() as con:
                statuses = jobs.bring_in(self.app.ws, con=con)
            self._synced_states = states
        groups = sweep.group_by_sweep(statuses)  # a sweep's jobs together, where its first one is
        by_id = {s.id: s for s in statuses}
        rows = [JobRow(s, *self._config_of(s), parent=self._parent_of(s, by_id)) for _, members in groups
                for s in members]
        summaries = {sweep_id: sweep.summary(self.app.ws.jobs_dir, sweep_id, members)
                     for sweep_id, members in groups if sweep_id is not None}
        if selected not in {s.id for s in statuses}:
            selected = statuses[-1].id if statuses else None  # the newest job
        detail = None
        if selected is not None:
            status = next(s for s in statuses if s.id == selected)
            metrics = self._metrics.setdefault(selected, MetricsLog())
            metrics.read_more(status.folder)
            latest = metrics.last(max(CONFLICT_STEPS, IGNORED_STEPS))
            detail = JobDetail(selected, *curves(metrics), status.log_tail(LOG_LINES), truncation.read_line(status.folder),
                               conflict_table(mean_cosines(latest[-CONFLICT_STEPS:])),
                               tuple(ignored_now(latest[-IGNORED_STEPS:])))
        self.post_message(JobsScanned(rows, detail, sweeps=summaries))

    def _parent_of(self, status: jobs.JobStatus, by_id: dict[str, jobs.JobStatus]) -> str:
        """The label of the job `status` retrains, "" for none; read once per job (a retrain is linked while it is
        held, before it is queued: a held job's is read again)."""
        if status.id not in self._parents:
            parent = retrain.parent_of(status.folder)
            if parent is None and status.state == "held":
                return ""
            self._parents[status.id] = parent or ""
        parent = self._parents[status.id]
        return job_label(by_id[parent]) if parent in by_id else parent

    def _config_of(self, status: jobs.JobStatus) -> tuple[str, str, str]:
        """(objective or kind, the model's path, what the backbone column shows), read once per job."""
        if status.id not in self._configs:
            try:
                config = read_config(status.folder)
                what = config.get("objective", "bt") if status.kind == kinds.TRAIN else status.kind
                model = config.get("backbone") or config.get("checkpoint") or config.get("policy")
                if not model and status.kind == kinds.EVAL:  # a sweep's, before it chose its checkpoint
                    return str(what), "latest", "latest"
                model = str(model or "?")
                shown = model_label(model) if status.kind == kinds.TRAIN else Path(model).name
                self._configs[status.id] = (str(what), model, shown)
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError):
                return "?", "?", "?"
        return self._configs[status.id]

    def on_jobs_scanned(self, message: JobsScanned) -> None:
        self._scanning = False
        if message.rows is None:
            if message.why != self._scan_failure:  # once, not every second
                self.notify(visible(message.why), severity="error", markup=False)
            self._scan_failure = message.why
            return
        self._scan_failure = ""
        self._rows = message.rows
        self._sweeps = message.sweeps
        if message.detail is not None and self._selected not in {row.status.id for row in self._rows}:
            self._selected = message.detail.id
        self._cancelling &= {row.status.id for row in self._rows if row.status.state in CANCELLABLE}
        self._show_rows()
        self._show_selected(message.detail)
        self.refresh_bindings()
        if self._scan_again:
            self._scan_again = False
            self.scan()

    def _show_rows(self) -> None:
        table = self.query_one(JobTable)
        index = next((i for i, row in enumerate(self._rows) if row.status.id == self._selected), 0)
        table.show_rows([job_cells(row, row.status.id in self._cancelling) for row in self._rows],
                        list(range(len(self._rows))), cursor_row=index)

    def _show_status(self, status: jobs.JobStatus) -> None:
        """One job's row (and title, if selected) from a status just read: an action answers at once."""
        if status.state not in CANCELLABLE:
            self._cancelling.discard(status.id)
        self._rows = [replace(row, status=status) if row.status.id == status.id else row for row in self._rows]
        self._show_rows()
        if self._selected == status.id:
            self._show_selected(None)
        self.refresh_bindings()

    def _show_selected(self, detail: JobDetail | None) -> None:
        row = self.selected
        if row is None:
            self.query_one("#job-title", Static).update("no jobs yet: n starts one")
            for static_id in ("#job-sweep", "#job-message", "#job-truncation", "#log"):
                self.query_one(static_id, Static).update("")
            self._show_more_diagnostics(None)
            self.query_one("#loss", ChartView).show({})
            return
        s = row.status
        state = CANCELLING if s.id in self._cancelling and s.state in CANCELLABLE else s.state
        self.query_one("#job-title", Static).update(literal_text(
            f"{job_label(s)}{'' if job_label(s) == s.id else f' ({s.id})'} · {row.objective} · {state} · "
            f"step {s.step}/{s.total_steps or '?'}"
        ))
        self.query_one("#job-sweep", Static).update(literal_text(
            f"sweep {self._sweeps.get(s.sweep, s.sweep)}" if s.sweep else
            f"retrain of {row.parent}: p on F6 Evaluate compares the two" if row.parent else ""))
        message = self.query_one("#job-message", Static)
        message.update(literal_text(s.message))
        message.set_class(s.state in ("failed", "damaged"), "-failed")
        if detail is None or detail.id != s.id:
            return  # the selection moved since this read; the next read brings its curves
        self.query_one("#job-truncation", Static).update(literal_text(detail.truncation))
        self._show_more_diagnostics(detail)
        self.query_one("#log", Static).update(literal_text(detail.log))
        self.query_one("#loss", ChartView).show(detail.loss)
        weights = self.query_one("#lambda", ChartView)
        weights.set_class(not detail.weights, "-hidden")
        weights.show(detail.weights)

    def _show_more_diagnostics(self, detail: JobDetail | None) -> None:
        """A MORE job's gradient cosines and its ignored sources; nothing (no room taken) for another job."""
        conflict = self.query_one("#conflict", Static)
        conflict.update(detail.conflict if detail else "")
        conflict.display = bool(detail and detail.conflict.plain)
        conflict.styles.margin = (0, 0, 1, 0)
        warnings = self.query_one("#job-warnings", Static)
        warnings.update(Text("\n".join(f"⚠ {w}" for w in detail.warnings), style="bold yellow") if detail else "")
        warnings.display = bool(detail and detail.warnings)

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
        # cancel and resume stay live on any job: on one they do not apply to, they say why
        state = self.selected.status.state if self.selected else None
        if action == "evaluate_job":  # a training job with a checkpoint: done, or stopped after saving one
            return True if self.selected and self.selected.status.kind == kinds.TRAIN and state not in (
                "queued", "held") else None
        return True

    def action_new_job(self) -> None:
        # the newest training job's backbone is the likeliest next one; before any, the demo's small model
        from prefstudio.demo import small_backbone

        start = self._form_start()
        trained = [row for row in self._rows if row.status.kind == kinds.TRAIN and row.backbone != "?"]
        backbone = start.pop("backbone", "") or (trained[-1].backbone if trained else (small_backbone() or ""))
        self.app.push_screen(NewJobForm(backbone, start), self._launch_requested)

    def _form_start(self) -> dict[str, str]:
        """A form's first values: what was launched last in this workspace, over what fits this machine."""
        fits = {key: str(value) for key, value in launch_defaults.machine_defaults().items()}
        return {**fits, **launch_defaults.read_remembered(self.app.ws.path)}

    def _launch_requested(self, request: LaunchRequest | None) -> None:
        if request is not None:
            for note in request.notes:
                self.notify(visible(note), title="new job", markup=False)
            self.notify("taking a snapshot of the pairs…", title="new job")
            self._launch(request)

    def action_new_sweep(self) -> None:
        from prefstudio.demo import small_backbone

        start = self._form_start()
        trained = [row for row in self._rows if row.status.kind == kinds.TRAIN and row.backbone != "?"]
        backbone = start.pop("backbone", "") or (trained[-1].backbone if trained else (small_backbone() or ""))
        self.app.push_screen(SweepForm(backbone, start), self._sweep_requested)

    def _sweep_requested(self, request: SweepRequest | None) -> None:
        if request is not None:
            for note in request.notes:
                self.notify(visible(note), title="new sweep", markup=False)
            self.notify(f"making {request.plan.n_runs} training jobs, each with a scoring job…", title="new sweep")
            self._launch_sweep(request)

    @work(thread=True, group="jobs-launch")
    def _launch_sweep(self, request: SweepRequest) -> None:
        try:
            with self.app.write_cursor() as con:
                made = sweep.make_sweep(self.app.ws, request.plan, list(request.configs), gpus=request.gpus,
                                        num_processes=len(request.gpus) if request.gpus else 1, con=con)
            jobs.start_next(self.app.ws.jobs_dir)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(f"sweep not made: {first_line(exc)}"))
            return
        kept = launch_defaults.read_remembered(self.app.ws.path)  # a sweep has no one objective to keep
        launch_defaults.remember(self.app.ws.path, {**kept, **{k: v for k, v in request.typed.items()
                                                                if k not in ("objective", "sampling")}})
        self.post_message(JobActionDone("", select=made[0].training.id,
                                        note=f"sweep {request.plan.id}: {request.plan.describe()}"))

    @work(thread=True, group="jobs-launch")
    def _launch(self, request: LaunchRequest) -> None:
        try:
            check_new_name(self.app.ws.jobs_dir, request.name, "name")  # taken since the form's check?
            with self.app.write_cursor() as con:
                made = create_training_job(self.app.ws, request.config, gpus=request.gpus,
                                           num_processes=len(request.gpus) if request.gpus else 1, name=request.name,
                                           con=con)
            jobs.start_next(self.app.ws.jobs_dir)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(f"launch failed: {first_line(exc)}"))
            return
        launch_defaults.remember(self.app.ws.path, request.typed)
        self.post_message(JobActionDone("", select=made.id))

    def action_evaluate_job(self) -> None:
        if self.selected is not None:
            self._ask_score(self.selected.status.id)

    @work(thread=True, group="jobs-launch")
    def _ask_score(self, job_id: str) -> None:
        """Whether the job's latest checkpoint is scored on test already (or being scored): asked before again."""
        from prefstudio.evaluate import scoring_job

        try:
            config = scoring_job.eval_config(self.app.ws, job_id)
            with self.app.cursor("jobs-scored") as con:
                already = scored_already(con, jobs.list_jobs(self.app.ws.jobs_dir), job_id,
                                         config.checkpoint_name, config.split)
        except (PrefstudioError, OSError, duckdb.Error) as exc:
            self.post_message(JobActionDone(f"scoring not started: {first_line(exc)}"))
            return
        self.post_message(ScoreAsked(job_id, already))

    def on_score_asked(self, message: ScoreAsked) -> None:
        if not message.already:
            self._evaluate(message.job_id)
            return
        self.app.push_screen(ConfirmScore(f"{message.already}. Score it again?"),
                             lambda yes: self._evaluate(message.job_id) if yes else self.notify("not scored again"))

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
        row = self.selected
        if row is None:
            self.notify("no job to cancel: n starts one", severity="warning")
            return
        s = row.status
        if s.id in self._cancelling:
            self.notify(f"{job_label(s)}: cancel asked for already; it saves a checkpoint, then stops",
                        markup=False)
            return
        if s.state not in CANCELLABLE:
            self.notify(visible(f"job {job_label(s)} is {s.state}: nothing to cancel"
                                + ("; r resumes it" if s.state in RESUMABLE else "")),
                        severity="warning", markup=False)
            return
        self._cancelling.add(s.id)
        self._show_rows()
        self._show_selected(None)
        self.notify(visible(f"cancelling {job_label(s)}…"), markup=False)
        self._act(jobs.cancel, s.folder)

    def action_resume_job(self) -> None:
        row = self.selected
        if row is None:
            self.notify("no job to resume: n starts one", severity="warning")
            return
        s = row.status
        if s.state not in RESUMABLE:
            self.notify(visible(f"job {job_label(s)} is {s.state}: {_why_not_resumed(s)}"),
                        severity="warning", markup=False)
            return
        self._act(jobs.resume, s.folder)

    @work(thread=True, group="jobs-act")
    def _act(self, act, folder: Path) -> None:
        try:
            status = act(folder)
        except (PrefstudioError, OSError) as exc:
            self.post_message(JobActionDone(first_line(exc), status=jobs.read_status(folder)))
            return
        self.post_message(JobActionDone("", status=status))

    def on_job_action_done(self, message: JobActionDone) -> None:
        if message.status is not None:
            self._show_status(message.status)
        if message.why:
            self.notify(visible(message.why), severity="error", markup=False)
        if message.note:
            self.notify(visible(message.note), markup=False)
        if message.select is not None:
            self._selected = message.select
        self.scan()


def _why_not_resumed(status: jobs.JobStatus) -> str:
    """What `r` says on a job it cannot resume, after 'job X is STATE:'."""
    if status.state == "running":
        return "nothing to resume (c cancels it)"
    if status.state == "queued":
        return status.message or "nothing to resume: it starts when the running job ends"
    if status.state == "damaged":
        return "it ended, but a file it wrote is cut short: resuming cannot mend it (see its message)"
    return "nothing to resume" + ("; e scores it on test" if status.kind == kinds.TRAIN else "")


def scored_already(con, statuses: list[jobs.JobStatus], job_id: str, checkpoint: str, split: str) -> str:
    """How `checkpoint` of `job_id` is scored on `split` already, said for a question; "" when it is not: its
    rewards are in the workspace, or a scoring job of it is queued, held or running."""
    for status in statuses:
        if status.kind != kinds.EVAL or status.state not in CANCELLABLE:
            continue
        try:
            config = read_config(status.folder)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if config.get("subject") == job_id and config.get("checkpoint_name") in (checkpoint, "", None) \
                and config.get("split") == split:
            return f"{checkpoint} of {job_id} is being scored on {split} by job {status.id} ({status.state})"
    scored = con.execute("SELECT count(*) FROM predictions p JOIN pairs s ON s.id = p.pair_id "
                         "WHERE p.job_id = ? AND p.checkpoint = ? AND s.split = ?",
                         [job_id, checkpoint, split]).fetchone()[0]
    return f"{checkpoint} of {job_id} is scored on {split} already ({scored:,} pairs)" if scored else ""


class ConfirmScore(ModalScreen[bool]):
    """A yes/no question before work that repeats done work, or starts a long one (a retrain): y or enter goes on,
    n or escape does not."""

    CSS_PATH = "jobs_screen.tcss"
    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(literal_text(self.question), id="question")
            yield Static("y / enter: yes · n / esc: no", classes="name")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# -- retraining, from the label screen ----------------------------------------------------------------

def ask_retrain(screen: Screen) -> None:
    """`t` on the label screen: the newest training job's settings, trained again on the labels as they are now
    (jobs/retrain.py), after a question that says what will run; the new job then shows in F5 Jobs."""
    app = screen.app

    def plan() -> None:
        try:
            with app.cursor("retrain-plan") as con:
                found = retrain.plan_retrain(app.ws, con=con)
        except (PrefstudioError, OSError, duckdb.Error) as exc:
            app.call_from_thread(app.notify, visible(f"no retrain: {first_line(exc)}"), title="retrain",
                                 severity="error", markup=False)
            return
        app.call_from_thread(app.push_screen, ConfirmScore(f"{found.describe()}\n\nRetrain?"),
                             lambda yes: make(found) if yes else app.notify("not retrained", title="retrain"))

    def make(found: retrain.RetrainPlan) -> None:
        def run() -> None:
            try:
                with app.write_cursor() as con:
                    child = retrain.start_retrain(app.ws, found, con=con)
                jobs.start_next(app.ws.jobs_dir)
            except (PrefstudioError, OSError, duckdb.Error) as exc:
                app.call_from_thread(app.notify, visible(f"retrain failed: {first_line(exc)}"), title="retrain",
                                     severity="error", markup=False)
                return
            app.call_from_thread(app.notify, visible(f"{found.name} ({child}): retrain of "
                                                     f"{job_label(found.parent)}; F5 Jobs shows it"),
                                 title="retrain", markup=False)

        screen.run_worker(run, thread=True, group="retrain-make")

    screen.run_worker(plan, thread=True, group="retrain-plan", exclusive=True)
