"""The forms that launch a training job or a sweep from F5 Jobs.

They start from the workspace's last launch, else from what fits the machine, and tell the time an epoch will
take before Launch (train/launch_defaults.py). The settings are checked on the spot as `prefstudio train`
checks them, then against the workspace's pairs in a worker (train/checks.py); the sweep form makes the grid
as `prefstudio sweep` does (train/sweep.py), every run checked before any job is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import duckdb
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from prefstudio import jobs
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.settings import OBJECTIVES, SAMPLINGS, parse_gpus, parse_sources, sampling_needed
from prefstudio.jobs.names import check_new_name
from prefstudio.train import launch_defaults, sweep
from prefstudio.train.config import TrainConfig, make_config
from prefstudio.tui.widgets import literal_text


# -- the form -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LaunchRequest:
    config: TrainConfig
    gpus: list[int] | None
    name: str | None
    given: frozenset[str] = frozenset()  # the settings the form set: an explicit unlabelled is not a default
    notes: tuple[str, ...] = ()  # what the launch check says to know (train/checks.py)
    typed: dict = field(default_factory=dict)  # the fields as typed: the next form starts from them


@dataclass(frozen=True)
class SweepRequest:
    plan: sweep.Sweep
    gpus: list[int] | None
    configs: tuple[TrainConfig, ...] = ()  # every run's, once checked against the workspace
    notes: tuple[str, ...] = ()
    typed: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FormFacts:
    """What the form's estimate rests on, read once from the workspace when the form opens."""

    counts: dict  # source -> SourcePairs of the training split (train/checks.py)
    text_chars: float
    runs: list  # launch_defaults.PastRun of the workspace's jobs
    gpu: bool  # whether this machine has a GPU (read once, not at every keystroke)


class FactsRead(Message):
    def __init__(self, facts: FormFacts | None) -> None:
        super().__init__()
        self.facts = facts


class LaunchChecked(Message):
    """The workspace check of a form's request: `why` refuses it, else `checked` (the request, with what the
    check found) is what the form gives back."""

    def __init__(self, request, why: str = "", checked=None) -> None:
        super().__init__()
        self.request, self.why, self.checked = request, why, checked


def form_spelling(key: str, value) -> str:
    """How the form names a setting in a message (its field, not a command-line flag)."""
    return f"{key.replace('_', ' ')} {value}"


PRECISIONS = ("no", "bf16", "fp16")
DROPOUT = ("on", "off")  # off: disable_dropout
UNLABELLED = ("zero", "drop")


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class NewJobForm(ModalScreen[LaunchRequest | None]):
    """The settings of a new training job; Launch checks them and gives them back, Escape gives nothing."""

    CSS_PATH = "launch_form.tcss"
    BINDINGS = [Binding("escape", "dismiss_form", "Close")]
    FIELDS = {"batch-size": "batch_size", "lr": "lr", "epochs": "epochs", "max-length": "max_length"}
    TITLE = "New training job"
    NAME_HINT = "the job id"

    def __init__(self, backbone: str = "", start: dict[str, str] | None = None) -> None:
        """`start`: the fields' first values (the last launch's, then what fits the machine), by setting name."""
        super().__init__()
        self._backbone = backbone
        self._start = start or {}
        self._checking = None  # the request whose workspace check runs
        self._facts: FormFacts | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.TITLE, classes="name")
            with Horizontal(id="backbone-row"):
                yield Static("backbone", classes="name")
                yield Input(self._backbone, placeholder="path to a Hugging Face model folder", compact=True,
                            id="backbone")
            with Grid():
                yield from self.run_fields()
                yield from self.setting_fields()
            yield Static("estimating the time per epoch…", id="estimate")
            yield Static(id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Launch", compact=True, variant="success", id="launch")
                yield Button("Cancel", compact=True, id="close")

    def _first(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        """A field's first value: the start value where it is one the field takes, else TrainConfig's default."""
        value = self._start.get(key)
        if value is not None and (choices is None or value in choices):
            return value
        default = TrainConfig.model_fields[key].default
        return "" if default is None else str(default)

    def run_fields(self) -> ComposeResult:
        """What one job is: its objective and sampling (a sweep's form asks for several)."""
        yield Static("objective", classes="name")
        yield Select(_choices(OBJECTIVES), value=self._first("objective", OBJECTIVES), allow_blank=False,
                     compact=True, id="objective")
        yield Static("sampling", classes="name")
        yield Select(_choices(SAMPLINGS), value=self._first("sampling", SAMPLINGS), allow_blank=False,
                     compact=True, id="sampling")

    def setting_fields(self) -> ComposeResult:
        """The settings a job and a sweep share."""
        yield Static("batch size", classes="name")
        yield Input(self._first("batch_size"), compact=True, id="batch-size")
        yield Static("lr", classes="name")
        yield Input(self._first("lr"), compact=True, id="lr")
        yield Static("epochs", classes="name")
        yield Input(self._first("epochs"), compact=True, id="epochs")
        yield Static("max length", classes="name")
        yield Input(self._first("max_length"), compact=True, id="max-length")
        yield Static("precision", classes="name")
        yield Select(_choices(PRECISIONS), value=self._first("mixed_precision", PRECISIONS), allow_blank=False,
                     compact=True, id="mixed-precision")
        yield Static("dropout", classes="name")
        yield Select(_choices(DROPOUT), value=self._start.get("dropout") if self._start.get("dropout") in DROPOUT
                     else "on", allow_blank=False, compact=True, id="dropout")
        yield Static("GPUs", classes="name")
        yield Input(self._start.get("gpus", ""), placeholder="none, or e.g. 0,1", compact=True, id="gpus")
        yield Static("sources", classes="name")
        yield Input(self._start.get("sources", ""), placeholder="all, or a,b", compact=True, id="sources")
        yield Static("name", classes="name")
        yield Input(placeholder=self.NAME_HINT, compact=True, id="name")
        yield Static("unlabelled", classes="name")
        unlabelled = self._start.get("unlabelled")
        chosen = {"value": unlabelled} if unlabelled in UNLABELLED else {}  # else blank: the default, not chosen
        yield Select(_choices(UNLABELLED), prompt="zero (default)", compact=True, id="unlabelled", **chosen)

    def on_mount(self) -> None:
        self.query_one("#backbone", Input).focus()
        self._read_facts()

    @work(thread=True, group="launch-facts", exit_on_error=False)
    def _read_facts(self) -> None:
        """The training split's pairs per source, a text's length and the past jobs' speeds, for the estimate
        and for refusing an unknown source on the spot."""
        from prefstudio.train.checks import training_pairs

        try:
            with self.app.cursor("launch-facts") as con:
                counts = training_pairs(self.app.ws, TrainConfig.model_fields["split"].default, con)
                chars = launch_defaults.mean_text_chars(con)
            runs = launch_defaults.past_runs(jobs.list_jobs(self.app.ws.jobs_dir))
        except (PrefstudioError, OSError, duckdb.Error):
            self.post_message(FactsRead(None))  # no estimate; Launch still checks against the workspace
            return
        self.post_message(FactsRead(FormFacts(counts, chars, runs, launch_defaults.has_gpu())))

    def on_facts_read(self, message: FactsRead) -> None:
        self._facts = message.facts
        self.show_estimate()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_estimate()

    def show_estimate(self) -> None:
        """The time an epoch will take with the fields as they are now; blank while a field is not a number."""
        estimate = self.query_one("#estimate", Static)
        facts = self._facts
        if facts is None:
            return
        text = lambda input_id: self.query_one(f"#{input_id}", Input).value.strip()  # noqa: E731
        try:
            batch_size, max_length = int(text("batch-size")), int(text("max-length"))
            epochs = float(text("epochs"))
            gpu = bool(parse_gpus(text("gpus")))
        except (ValueError, PrefstudioError):
            estimate.update("")
            return
        chosen = parse_sources(text("sources")) or list(facts.counts)
        pairs = sum(facts.counts[s].pairs for s in chosen if s in facts.counts)
        if batch_size < 1 or max_length < 1 or epochs <= 0 or not pairs:
            estimate.update("")
            return
        backbone = text("backbone")
        dropout = self.query_one("#dropout", Select).value != "off"
        throughput = (launch_defaults.recorded_throughput(facts.runs, backbone, max_length, gpu, dropout)
                      or launch_defaults.rough_throughput(backbone, max_length, facts.text_chars,
                                                          gpu or facts.gpu))
        estimate.update(literal_text(launch_defaults.epoch_line(pairs, batch_size, epochs, throughput)))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "objective" and (needed := sampling_needed(event.value)):
            self.query_one("#sampling", Select).value = needed  # MORE weighs one sub-batch per source
        if event.select.id == "dropout":
            self.show_estimate()

    def typed(self) -> dict[str, str]:
        """The fields as typed, by setting name: what the next form starts from (the job's name is not kept)."""
        values = {key: self.query_one(f"#{input_id}", Input).value.strip() for input_id, key in self.FIELDS.items()}
        values.update(backbone=self.query_one("#backbone", Input).value.strip(),
                      gpus=self.query_one("#gpus", Input).value.strip(),
                      sources=self.query_one("#sources", Input).value.strip())
        for select_id, key in (("objective", "objective"), ("sampling", "sampling"),
                               ("mixed-precision", "mixed_precision"), ("unlabelled", "unlabelled"),
                               ("dropout", "dropout")):
            select = next(iter(self.query(f"#{select_id}").results(Select)), None)  # a sweep has no objective
            value = select.value if select is not None else None
            if isinstance(value, str):
                values[key] = value
        return values

    def shared_values(self) -> dict:
        """The settings of the shared fields that are filled in; PrefstudioError on a missing backbone."""
        values: dict = {
            "backbone": self.query_one("#backbone", Input).value.strip(),
            "mixed_precision": self.query_one("#mixed-precision", Select).value,
        }
        if not values["backbone"]:
            raise PrefstudioError("backbone: give the path of a model folder")
        for input_id, key in self.FIELDS.items():
            text = self.query_one(f"#{input_id}", Input).value.strip()
            if text:
                values[key] = text
        sources = parse_sources(self.query_one("#sources", Input).value)
        if sources and self._facts is not None and (unknown := [s for s in sources if s not in self._facts.counts]):
            split = TrainConfig.model_fields["split"].default
            raise PrefstudioError(f"sources {', '.join(unknown)}: no such source in split {split!r} "
                                  f"(sources: {', '.join(self._facts.counts) or 'none'})")
        if sources:
            values["sources"] = sources
        unlabelled = self.query_one("#unlabelled", Select).value
        if isinstance(unlabelled, str):  # chosen, not left at the default
            values["unlabelled"] = unlabelled
        if self.query_one("#dropout", Select).value == "off":
            values["disable_dropout"] = True
        return values

    def read_form(self) -> LaunchRequest:
        """The request in the form; PrefstudioError, one line, on a value a job cannot use."""
        values = {"objective": self.query_one("#objective", Select).value,
                  "sampling": self.query_one("#sampling", Select).value, **self.shared_values()}
        config = make_config(values)
        gpus = parse_gpus(self.query_one("#gpus", Input).value)
        return LaunchRequest(config, gpus, self.query_one("#name", Input).value.strip() or None, frozenset(values),
                             typed=self.typed())

    def check(self, request, con):
        """The request against the workspace's pairs (train/checks.py), as `prefstudio train` checks it: the
        request to give back, with the notes."""
        from prefstudio.train.checks import check_launch

        check_new_name(self.app.ws.jobs_dir, request.name, "name")
        notes = check_launch(self.app.ws, request.config, given=request.given, con=con, spell=form_spelling)
        return replace(request, notes=tuple(notes))

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
    def _check(self, request) -> None:
        try:
            with self.app.cursor("launch-check") as con:
                checked = self.check(request, con)
        except (PrefstudioError, duckdb.Error) as exc:
            self.post_message(LaunchChecked(request, first_line(exc)))
            return
        self.post_message(LaunchChecked(request, checked=checked))

    def on_launch_checked(self, message: LaunchChecked) -> None:
        if message.request is not self._checking:
            return  # Launch was pressed again meanwhile (or the form is done): the newer check answers
        self._checking = None
        if message.why:
            self.query_one("#form-error", Static).update(literal_text(message.why))
            return
        self.dismiss(message.checked)

    def action_dismiss_form(self) -> None:
        self._checking = None  # a check still running answers no one
        self.dismiss(None)


class SweepForm(NewJobForm):
    """A sweep's settings: the launch form's, with several objectives, the seeds and the settings to vary
    (train/sweep.py); Launch checks every run and gives the sweep back, checked."""

    TITLE = "New sweep: a job per objective × seed × varied value, each scored on test"
    NAME_HINT = "one word, in the sweep id"

    def run_fields(self) -> ComposeResult:
        yield Static("objectives", classes="name")
        yield Input(",".join(OBJECTIVES), placeholder="e.g. bt,margin", compact=True, id="objectives")
        yield Static("seeds", classes="name")
        yield Input(str(sweep.DEFAULT_SEEDS), placeholder="3, or 0,1,7", compact=True, id="seeds")
        yield Static("sampling", classes="name")
        yield Select(_choices(SAMPLINGS), prompt="per objective", compact=True, id="sampling")
        yield Static("vary", classes="name")
        yield Input(placeholder="e.g. lr=1e-4,3e-4", compact=True, id="vary")

    def read_form(self) -> SweepRequest:
        values = self.shared_values()
        sampling = self.query_one("#sampling", Select).value
        if isinstance(sampling, str):  # chosen; else each objective's own (MORE: balanced)
            values["sampling"] = sampling
        objectives = sweep.parse_objectives(self.query_one("#objectives", Input).value, "objectives")
        seeds = sweep.parse_seeds(self.query_one("#seeds", Input).value, "seeds")
        fixed, varied = sweep.parse_set(self.query_one("#vary", Input).value.split(), "vary")
        name = sweep.check_name(self.query_one("#name", Input).value.strip() or None, "name")
        plan = sweep.plan_sweep({**values, **fixed}, objectives, seeds, varied, name=name)
        return SweepRequest(plan, parse_gpus(self.query_one("#gpus", Input).value), typed=self.typed())

    def check(self, request: SweepRequest, con) -> SweepRequest:
        configs, notes = sweep.check_sweep(self.app.ws, request.plan, con=con, spell=form_spelling,
                                           too_many="make it from the command line with --yes")
        return replace(request, configs=tuple(configs), notes=tuple(notes))
