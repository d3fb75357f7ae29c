"""Hand labelling: a queue of pairs, one at a time, each decision stored the moment it is given.

A step is one trip to the database in a worker: write the decision (if any),
pick the pair to show next, and load it. The decision keys do nothing until
that pair is on screen, so a fast typist never labels a pair they have not
seen. Where a queue stands is never kept on the side: it is asked of the
annotations table at each step (labels.queue_page), so quitting and opening
the app again resumes at the first pair not yet decided. The progress counts
come in by their own worker, after the pair: a count over every pair should
not hold up the next one.

Blind mode shows the two responses as A and B in an order fixed per pair by a
seeded hash, so a person cannot learn that the left one is the dataset's
choice. Which one was chosen is said only once the label is stored, and the
label keeps the order it was given under (extra.chosen_shown_as).

A text too big to show is cut with a line that says how much more there is;
`o` opens it whole in $PAGER (tui/pager.py).

The queues that learn (evaluate/model_queues.py) walk in the order the models
and judges give, and a line says why the shown pair is in the queue. `p` shows
the pre-labels, the judges' and the models' opinions on the pair: in blind mode
the judges' sides are said in A/B and the models are hidden, since a queue like
'likely noise' already says which way the model leans.

A pair shown again (relabelled, or brought back by undo) starts from the
person's last decision on it: its side is preset and its level marked, and
the older row in "recent" reads as superseded. A pair brought back by undo,
once decided again, sends the walk to the queue's first pair (the first
undecided one), so nothing undone is passed over. A pair sent here from
another screen (`l` on an outlier, in the pair view) goes back there on esc.
The demo's ground truth (meta.gt_level, gt_flip) is never shown unless asked
for (`g`), so that a person labels blind to it and can check themself after.

Over 400 lines: the screen, its worker steps and its key bindings; the rules
themselves (queue, flips, sides) live in prefstudio/labels.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Select, Static

from prefstudio import browse, labels
from prefstudio.browse import PairDetail
from prefstudio.config import LEVEL_NAMES
from prefstudio.evaluate import model_queues
from prefstudio.evaluate.model_queues import LEARNED_QUEUES, Model, Opinions, Reason
from prefstudio.labels import (HumanDecision, QueueFilter, QueueName, better_side, chosen_shown_as, ground_truth,
                               level_label, next_in_queue, stored_flip)
from prefstudio.tui.annotator_prompt import AnnotatorPrompt
from prefstudio.tui.pager import OpensTextsInPager, shown_text
from prefstudio.tui.pair_view import TextBox
from prefstudio.tui.widgets import Column, PlainTextTable, SourceSplitPicker, WorkspaceHeader, literal_text
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

RECENT_SHOWN = 8
QUEUE_TITLES: dict[QueueName, str] = {
    "unlabelled": "unlabelled",
    "mine": "labelled by me",
    "skipped": "skipped",
    "disagreements": "disagreements",
    "uncertain": "uncertain",
    "models_disagree": "models disagree",
    "judge_inconsistent": "judge inconsistent",
    "human_judge_flips": "human–judge flips",
    "agreed_outliers": "agreed outliers",
    "likely_noise": "likely noise",
}
RECENT_COLUMNS = [Column("pair", 6, right=True), Column("decision"), Column("better", 6)]
LEVEL_KEYS = Binding.Group("Level", compact=True)

DEFAULT_GUIDELINES = """\
# Labelling guidelines

Read the prompt, then both responses, and say how much better the better one is.

Keys 1-4 give the level, from small to large (the level is stored as 0-3, the number shown everywhere):

key 1  0 · Negligibly better / unsure: about as good as each other, or you cannot tell. No direction.
key 2  1 · Slightly better: better, but only a little.
key 3  2 · More effective: clearly better: more correct, more helpful or safer.
key 4  3 · Distinctly superior: much better; the other one is wrong, harmful or useless.

The left response is taken to be the better one. If the right-hand one is better, press f before the level: that is a flip, kept as its own outcome, never dropped.

Blind mode (b) shows the responses as A and B in a fixed random order; f then means B is better.

s skips a pair you cannot judge now (it goes to the skipped queue). u undoes your last decision and brings that pair back.

This file is the workspace's own: press e to edit it.
"""


def label_text(level: int, flip: bool, blind_side: str | None) -> str:
    """A label as this screen says it: "3 · Distinctly superior, left better"."""
    if level == 0:
        return level_label(0)
    return f"{level_label(level)}, {better_side(flip, blind_side)} better"


def decision_text(decision: HumanDecision, blind_side: str | None) -> str:
    if decision.outcome == "skip" or decision.level is None:
        return "skipped"
    return label_text(decision.level, decision.flip, blind_side)


def level_legend(width: int = 0, last_level: int | None = None) -> Text:
    """The level keys (1-4) with the levels they give: the footer has room for the keys only.

    The keys are drawn as keycaps so that their digit is never read as the
    level's number; items move to a second line, whole, when `width` is short.
    `last_level`, the level of the person's last decision on this pair, is marked.
    """
    items = []
    for level in range(len(LEVEL_NAMES)):
        item = Text.assemble((f" {level + 1} ", "bold reverse"), f" {level_label(level)}")
        if level == last_level:
            item.append(" ◂ last", style="bold")
        items.append(item)
    text, line = Text(), 0
    for item in items:
        gap = 2 if line else 0
        if width and line and line + gap + item.cell_len > width:
            text.append("\n")
            line, gap = 0, 0
        text.append(" " * gap)
        text.append_text(item)
        line += gap + item.cell_len
    return text


def direction_text(blind: bool, right_better: bool) -> Text:
    """The pending label's direction: which response the next level key says is better."""
    left, right = ("A", "B") if blind else ("left (chosen)", "right (rejected)")
    picked, other = "bold reverse", "dim"
    mark = lambda side_is_picked: "✓ " if side_is_picked else "  "  # noqa: E731 (not colour alone: a mono terminal, a capture)
    return Text.assemble(
        ("blind  " if blind else "", "bold"),
        "better  ",
        (f" ◀ {mark(not right_better)}{left} ", other if right_better else picked),
        " ",
        (f" {mark(right_better)}{right} ▶ ", picked if right_better else other),
        ("   f switches sides · key 1 has no side", "dim"),
    )


@dataclass(frozen=True, eq=False)
class Step:
    """One trip to the database; the screen takes its result only if it is the step it asked for last."""

    # writes what it must, then names the pair to show; the scored models are read once a step, for every use
    pick: Callable[[duckdb.DuckDBPyConnection, list[Model] | None], int | None]
    writes: bool = False
    pinned: bool = False  # shown out of the queue's order (relabel, from the pair view); the walk stays put
    done_note: str = ""  # said once the step is done


class RecentDecisions(PlainTextTable):
    """The annotator's latest decisions; enter brings one's pair back to be labelled again."""

    BINDINGS = [Binding("enter", "select", "Relabel")]


class StepDone(Message):
    def __init__(self, step: Step, pair: PairDetail | None, decision: HumanDecision | None,
                 recent: list[HumanDecision], pair_labels: list[tuple[str, int, bool]],
                 opinions: Opinions | None = None, reason: Reason | None = None) -> None:
        super().__init__()
        self.step, self.pair, self.decision, self.recent = step, pair, decision, recent
        self.pair_labels, self.opinions, self.reason = pair_labels, opinions, reason


class StepFailed(Message):
    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step


class CountsLoaded(Message):
    def __init__(self, queue_filter: QueueFilter, counts: dict[str, int], sizes: dict[str, int] | None = None) -> None:
        super().__init__()
        self.filter, self.counts = queue_filter, counts
        self.sizes = sizes  # pairs per queue, for the queue picker; None: the progress counts only, sizes to come


class GuidelinesLoaded(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LabelScreen(ReportsFailedWorkers, OpensTextsInPager, Screen):
    CSS_PATH = "label_screen.tcss"
    PURPOSE = ("Label pairs by hand: which response is better (f flips the side) and by how much, on four levels "
               "0-3 (keys 1-4).")  # what `?` says first

    BINDINGS = [
        *(Binding(str(level + 1), f"label({level})", level_label(level), group=LEVEL_KEYS)
          for level in range(len(LEVEL_NAMES))),
        Binding("f", "flip", "Flip"),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("b", "blind", "Blind"),
        Binding("e", "edit_guidelines", "Guide"),
        Binding("o", "open_in_pager", "Pager"),
        Binding("a", "set_annotator", "Annotator"),
        Binding("p", "toggle_prelabels", "Pre-labels", show=False),  # in the ? panel: the footer must fit 100 columns
        Binding("escape", "back", "Back"),
        Binding("g", "toggle_truth", "Ground truth", show=False),  # in the ? panel: the footer must fit 100 columns
        Binding("t", "retrain", "Retrain", show=False),  # the newest training job again, on the labels as they are now
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = QueueFilter()
        self.blind = False
        self.pair: PairDetail | None = None
        self.pair_decision: HumanDecision | None = None  # the annotator's latest decision on the shown pair
        self.pinned = False  # the shown pair is out of the queue's order
        self.walk_pair: int | None = None  # the queue pair the walk is at (shown, or set aside by a pinned one)
        self.right_better = False  # the pending label's direction
        self.recent: list[HumanDecision] = []
        self.shown_texts: dict[str, str] = {}  # box id -> the pair's text it shows ("left" -> "chosen")
        self.pair_labels: list[tuple[str, int, bool]] = []  # everyone's latest label on the shown pair
        self.back_to: str | None = None  # the mode esc goes back to (the pair was sent from there)
        self.undone_pair: int | None = None  # the pair undo brought back, until it is decided again
        self.show_truth = False  # the demo's ground truth, hidden while labelling
        self.show_prelabels = False  # the judges' and models' opinions on the pair (p)
        self.opinions: Opinions | None = None  # loaded when shown, or in a queue that learns
        self.reason: Reason | None = None  # why the shown pair is in the queue that learns
        self._pending: Step | None = None

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        with Horizontal(id="controls"):
            yield Select([(title, queue) for queue, title in QUEUE_TITLES.items()], value="unlabelled",
                         allow_blank=False, compact=True, id="queue")
            yield SourceSplitPicker(id="label-pairs")
            yield Static(id="annotator")
        with Horizontal(id="progress-row"):
            yield ProgressBar(show_eta=False, id="progress")
            yield Static(id="counts")
        yield Static("loading…", id="status")
        yield Static(id="pair-labels")
        yield Static(id="reason")
        yield Static(id="prelabels")
        with Horizontal(id="body"):
            with Vertical(id="pair"):
                yield TextBox("prompt", id="prompt")
                with Horizontal(id="responses"):
                    yield TextBox("left", id="left")
                    yield TextBox("right", id="right")
            with Vertical(id="side"):
                yield TextBox("guidelines · e edits", id="guidelines")
                yield RecentDecisions(RECENT_COLUMNS, id="recent")
        yield Static(level_legend(), id="legend")
        yield Static(id="direction")
        yield Footer(compact=True, show_command_palette=False)  # its keys need the width

    def on_mount(self) -> None:
        settings = self.app.ws.config.annotation
        self.blind = settings.blind
        self._show_annotator()
        self.query_one("#recent", RecentDecisions).border_title = "recent · enter relabels"
        self.query_one("#left", TextBox).focus()
        self._show_direction()
        self._load_guidelines()
        if self._pending is None:  # show_pair() may have asked for a pair already
            self._take(self._walk_step(after=0))

    def on_screen_resume(self) -> None:
        if self.pair is not None and self._pending is None:
            self._load_counts(self.app.annotator, self.filter)  # labels may have come in from elsewhere

    def on_screen_suspend(self) -> None:
        self.back_to = None  # esc goes back only straight after being sent here

    def on_resize(self) -> None:
        self._show_legend()

    # -- steps ---------------------------------------------------------------------
    def show_pair(self, pair_id: int) -> None:
        """Show `pair_id` to be labelled, out of the queue's order; the walk goes on after it."""
        self._take(Step(lambda con, models: pair_id, pinned=True))

    def return_on_escape(self, mode: str) -> None:
        """esc goes back to the screen of `mode`, which sent the pair here, until the app leaves this screen."""
        self.back_to = mode
        if self._pending is None:  # else the pair on its way shows it
            self._show_pair()

    def action_back(self) -> None:
        if self.back_to is not None:
            self.app.switch_mode(self.back_to)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # shown only where there is somewhere to go back to
            return self.back_to is not None
        return True

    def _walk_step(self, after: int) -> Step:
        annotator, queue_filter = self.app.annotator, self.filter
        return Step(lambda con, models: next_in_queue(con, annotator, queue_filter, after, models=models))

    def _take(self, step: Step) -> None:
        self._pending = step
        # everyone's labels on the pair: shown in the disagreements queue only, so only read there; the same
        # for the opinions, read where they are shown or a queue's reason needs them
        self._run_step(step, self.app.annotator, self.filter, self.show_prelabels)

    @query_work(group="label")
    def _run_step(self, step: Step, annotator: str, queue_filter: QueueFilter, with_opinions: bool) -> None:
        learned = queue_filter.queue in LEARNED_QUEUES
        said = why = None
        try:
            with (self.app.write_cursor() if step.writes else self.app.cursor("label")) as con:
                models = model_queues.scored_models(con) if learned or with_opinions else None
                pair_id = step.pick(con, models)
                pair = browse.get_pair(con, pair_id) if pair_id is not None else None
                decision = labels.latest_decision(con, pair.id, annotator) if pair is not None else None
                recent = labels.recent_decisions(con, annotator, RECENT_SHOWN)
                with_labels = queue_filter.queue == "disagreements"
                pair_labels = labels.pair_labels(con, pair.id) if pair is not None and with_labels else []
                if pair is not None and models is not None:
                    said = model_queues.opinions(con, pair.id, models)
                    if learned:
                        why = model_queues.reason(con, queue_filter.queue, pair.id, source=queue_filter.source,
                                                  split=queue_filter.split, models=models, said=said)
        except duckdb.InterruptException:
            return  # a newer step took over
        except Exception:  # the screen stops waiting; the app reports it
            self.post_message(StepFailed(step))
            raise
        self.post_message(StepDone(step, pair, decision, recent, pair_labels, said, why))

    @query_work(group="label-counts", exclusive=True)
    def _load_counts(self, annotator: str, queue_filter: QueueFilter) -> None:
        """The progress counts, then (slower: every queue's rule, over a million pairs) each queue's size."""
        source, split = queue_filter.source, queue_filter.split
        with self.app.cursor("label-counts") as con:
            counts = labels.queue_counts(con, annotator, source=source, split=split)
            self.post_message(CountsLoaded(queue_filter, counts))
            sizes = {"unlabelled": counts["left"], "mine": counts["done"], "skipped": counts["skipped"],
                     "disagreements": labels.queue_size(con, annotator, "disagreements", source=source, split=split),
                     **model_queues.queue_sizes(con, annotator, source=source, split=split)}
        self.post_message(CountsLoaded(queue_filter, counts, sizes))

    def on_step_done(self, message: StepDone) -> None:
        step, pair = message.step, message.pair
        if step is not self._pending:
            return
        self._pending = None
        self.pinned = step.pinned and pair is not None and pair.id != self.walk_pair
        if not step.pinned:
            self.walk_pair = pair.id if pair is not None else None
        self.pair, self.pair_decision, self.recent = pair, message.decision, message.recent
        self.pair_labels, self.opinions, self.reason = message.pair_labels, message.opinions, message.reason
        self.right_better = self._last_side_right()
        self._show_pair()
        self._show_recent()
        self._show_direction()
        if step.done_note:
            self.notify(step.done_note, timeout=4, markup=False)
        self._load_counts(self.app.annotator, self.filter)

    def on_step_failed(self, message: StepFailed) -> None:
        if message.step is self._pending:
            self._pending = None

    def on_counts_loaded(self, message: CountsLoaded) -> None:
        if message.filter != self.filter:
            return
        counts = message.counts
        if message.sizes is not None:
            self._show_queue_sizes(message.sizes)
        self.query_one("#progress", ProgressBar).update(total=max(1, counts["total"]),
                                                        progress=counts["done"] + counts["skipped"])
        self.query_one("#counts", Static).update(
            f"done {counts['done']:,} · skipped {counts['skipped']:,} · left {counts['left']:,} of {counts['total']:,}"
        )

    # -- filters -------------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "queue":
            self._refilter(QueueFilter(event.value, self.filter.source, self.filter.split))

    def on_source_split_picker_changed(self, message: SourceSplitPicker.Changed) -> None:
        self._refilter(QueueFilter(self.filter.queue, message.source, message.split))

    def _refilter(self, queue_filter: QueueFilter) -> None:
        if queue_filter == self.filter:
            return
        self.filter, self.walk_pair, self.pinned = queue_filter, None, False
        self._take(self._walk_step(after=0))
        self.query_one("#left", TextBox).focus()

    # -- decisions -----------------------------------------------------------------
    def _blind_side(self, pair_id: int) -> str | None:
        return chosen_shown_as(self.app.ws.config.annotation.blind_seed, pair_id) if self.blind else None

    def _last_side_right(self) -> bool:
        """Whether the person's last decision on the shown pair said the right-hand response is better."""
        last = self.pair_decision
        if self.pair is None or last is None or last.outcome != "label" or not last.level:
            return False
        return better_side(last.flip, self._blind_side(self.pair.id)) in ("right", "B")

    def _decide(self, write: Callable[[duckdb.DuckDBPyConnection], object], done_note: str = "") -> None:
        """Store a decision on the shown pair, then show the queue's next pair."""
        if self.pair.id == self.undone_pair:  # undo may have left undecided pairs before it: the first of them
            (after, including), self.undone_pair = (0, False), None
        elif self.pinned and self.walk_pair is not None:  # back to where the walk was set aside
            after, including = self.walk_pair, True
        else:
            after, including = (0 if self.pinned else self.pair.id), False
        annotator, queue_filter = self.app.annotator, self.filter

        def pick(con: duckdb.DuckDBPyConnection, models: list[Model] | None) -> int | None:
            write(con)
            return next_in_queue(con, annotator, queue_filter, after, including=including, models=models)

        self._take(Step(pick, writes=True, done_note=done_note))

    def _can_decide(self) -> bool:
        return self._pending is None and self.pair is not None

    def action_label(self, level: int) -> None:
        if not self._can_decide():
            return
        pair_id = self.pair.id
        side = self._blind_side(pair_id)
        flip = stored_flip(level, self.right_better, side)
        extra = json.dumps({"blind": True, "chosen_shown_as": side}) if side else None
        annotator, margins = self.app.annotator, self.app.ws.config.margins
        reveal = ""
        if side:
            stored = "" if level == 0 else (" · stored as a flip" if flip else " · not a flip")
            reveal = f"pair {pair_id}: the chosen response was {side}{stored}"
        self._decide(lambda con: labels.add_label(con, pair_id, annotator, level, flip, margins, extra=extra), reveal)

    def action_skip(self) -> None:
        if self._can_decide():
            pair_id, annotator = self.pair.id, self.app.annotator
            self._decide(lambda con: labels.add_skip(con, pair_id, annotator))

    def action_undo(self) -> None:
        if self._pending is not None:
            return
        if not self.recent:
            self.notify("nothing to undo", timeout=2)
            return
        last = self.recent[0]  # this screen writes this annotator's decisions: it knows the latest

        def pick(con: duckdb.DuckDBPyConnection, models: list[Model] | None) -> int:
            labels.undo(con, last.annotation_id)
            return last.pair_id

        said = decision_text(last, self._blind_side(last.pair_id))
        # Out of the queue's order: once it is decided again, the walk goes to the queue's first pair (_decide).
        self.undone_pair = last.pair_id
        self._take(Step(pick, writes=True, pinned=True, done_note=f"undone: {said} on pair {last.pair_id}"))

    def action_flip(self) -> None:
        if self.pair is not None:
            self.right_better = not self.right_better
            self._show_direction()
            self._mark_better()

    def action_blind(self) -> None:
        self.blind = not self.blind
        self.right_better = self._last_side_right()
        self._show_pair()
        self._show_recent()
        self._show_direction()
        self.notify("blind mode on: A/B order hides the chosen response" if self.blind else "blind mode off",
                    timeout=2)

    def action_toggle_prelabels(self) -> None:
        self.show_prelabels = not self.show_prelabels
        if self.show_prelabels and self.opinions is None and self.pair is not None and self._pending is None:
            self._take(Step(lambda con, models, pair_id=self.pair.id: pair_id, pinned=self.pinned))  # read them
        else:
            self._show_prelabels()
        self.notify("pre-labels shown: the judges' and the models' opinions" if self.show_prelabels
                    else "pre-labels hidden", timeout=2)

    def action_toggle_truth(self) -> None:
        self.show_truth = not self.show_truth
        self._show_pair()
        self.notify("ground truth shown: check yourself against it" if self.show_truth else "ground truth hidden",
                    timeout=2)

    def action_set_annotator(self) -> None:
        self.app.push_screen(AnnotatorPrompt(self.app.annotator), self._annotator_given)

    def _annotator_given(self, name: str | None) -> None:
        if not name or name == self.app.annotator:
            return
        self.app.annotator = name  # whose labels this screen writes, and whose queues it walks
        self._show_annotator()
        self.walk_pair, self.pinned, self.undone_pair, self.recent = None, False, None, []
        self._take(self._walk_step(after=0))
        self.notify(f"labelling as {name}", timeout=2, markup=False)

    def _show_annotator(self) -> None:
        self.query_one("#annotator", Static).update(literal_text(f"labelling as {self.app.annotator} · a changes"))

    def on_plain_text_table_selected(self, event: PlainTextTable.Selected) -> None:
        chosen = next((d for d in self.recent if d.annotation_id == event.key), None)
        if chosen is not None and self._pending is None:
            self.show_pair(chosen.pair_id)
            self.query_one("#left", TextBox).focus()

    def action_open_in_pager(self) -> None:
        """The focused text whole; from elsewhere (or a text shown whole), the first one cut short."""
        if self.pair is None:
            return
        focused = self.shown_texts.get(self.focused.id if self.focused is not None else "")
        cut = [name for name in self.shown_texts.values() if name in self.pair.left_out]
        name = focused if focused in cut or not cut else cut[0]
        self.open_in_pager(self.pair.id, name or "prompt")

    # -- guidelines ----------------------------------------------------------------
    def _guidelines_path(self) -> Path:
        return self.app.ws.path / self.app.ws.config.annotation.guidelines

    @work(thread=True, exclusive=True, group="guidelines")
    def _load_guidelines(self) -> None:
        path = self._guidelines_path()
        try:
            try:
                with path.open("x", encoding="utf-8") as new:
                    new.write(DEFAULT_GUIDELINES)
            except FileExistsError:
                pass
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = f"cannot read {path}: {exc.strerror or exc}"
        self.post_message(GuidelinesLoaded(text))

    def on_guidelines_loaded(self, message: GuidelinesLoaded) -> None:
        self.query_one("#guidelines", TextBox).show(literal_text(message.text))

    def action_edit_guidelines(self) -> None:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        path = self._guidelines_path()
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="warning", timeout=3)
        except (OSError, ValueError) as exc:
            self.notify(f"cannot run editor {editor!r}: {exc}", severity="error", timeout=4, markup=False)
        self._load_guidelines()

    # -- showing -------------------------------------------------------------------
    def _show_pair(self) -> None:
        prompt, left, right = (self.query_one(f"#{box}", TextBox) for box in ("prompt", "left", "right"))
        pair = self.pair
        if pair is None:
            where = QUEUE_TITLES[self.filter.queue]
            self.query_one("#status", Static).update(f"nothing left in the {where} queue for these filters")
            for box in (prompt, left, right):
                box.show(Text(""))
            self.shown_texts = {}
            left.border_title, right.border_title = "left", "right"
            self._mark_better()
            self._show_pair_labels()
            self._show_reason()
            self._show_prelabels()
            self._show_legend()
            return
        side = self._blind_side(pair.id)
        if side is None:
            left_name, right_name = "chosen", "rejected"
            left.border_title, right.border_title = "left · chosen", "right · rejected"
        else:
            left_name, right_name = ("chosen", "rejected") if side == "A" else ("rejected", "chosen")
            left.border_title, right.border_title = "A", "B"
        prompt.border_title = literal_text(f"prompt · pair {pair.id} · {pair.source} · {pair.split}")
        self.shown_texts = {"prompt": "prompt", "left": left_name, "right": right_name}
        for box, name in zip((prompt, left, right), self.shown_texts.values()):
            box.show(shown_text(getattr(pair, name), pair.left_out.get(name, 0)))
        place = "out of queue order" if self.pinned else f"{QUEUE_TITLES[self.filter.queue]} queue"
        if pair.id == self.undone_pair:
            place = "brought back by undo"
        before = "not decided yet" if self.pair_decision is None else (
            f"your last decision: {decision_text(self.pair_decision, side)}")
        parts = [f"pair {pair.id}", place, before]
        if self.show_truth:
            truth = ground_truth(pair.meta)
            parts.append("no ground truth" if truth is None else f"truth: {label_text(*truth, side)}")
        if self.back_to is not None:
            parts.append(f"esc: back to {self._mode_title(self.back_to)}")
        self.query_one("#status", Static).update(literal_text(" · ".join(parts)))
        self._mark_better()
        self._show_pair_labels()
        self._show_reason()
        self._show_prelabels()
        self._show_legend()

    def _mode_title(self, mode: str) -> str:
        return next((title for _, m, title in getattr(self.app, "NAVIGATION", ()) if m == mode), mode)

    def _show_legend(self) -> None:
        last = self.pair_decision
        last_level = last.level if self.pair is not None and last is not None and last.outcome == "label" else None
        legend = self.query_one("#legend", Static)
        legend.update(level_legend(legend.content_size.width or self.size.width - 2, last_level))

    def _show_pair_labels(self) -> None:
        """In the disagreements queue, every annotator's label on the pair, side by side."""
        box = self.query_one("#pair-labels", Static)
        box.display = self.filter.queue == "disagreements" and self.pair is not None
        if box.display:
            side = self._blind_side(self.pair.id)
            cells = [f"{who}: {label_text(level, flip, side)}" for who, level, flip in self.pair_labels]
            box.update(literal_text("labels  " + "  │  ".join(cells)))

    def _show_reason(self) -> None:
        """In a queue that learns, why the pair is in it (signs of d hidden in blind mode)."""
        box = self.query_one("#reason", Static)
        box.display = self.filter.queue in LEARNED_QUEUES and self.pair is not None and self.reason is not None
        if box.display:
            box.update(literal_text("why  " + self.reason.text(self._blind_side(self.pair.id))))

    def _show_prelabels(self) -> None:
        """The judges' and models' opinions, while shown (p); blind mode: judges in A/B, no models."""
        box = self.query_one("#prelabels", Static)
        box.display = self.show_prelabels and self.pair is not None and self.opinions is not None
        if box.display:
            box.update(literal_text("pre-labels  " + self.opinions.text(self._blind_side(self.pair.id))))

    def _show_queue_sizes(self, sizes: dict[str, int]) -> None:
        """Each queue's size in the queue picker, its choice kept (no Changed: the walk stays where it is)."""
        select = self.query_one("#queue", Select)
        with select.prevent(Select.Changed):
            select.set_options([(f"{title} · {sizes.get(queue, 0):,}", queue) for queue, title in QUEUE_TITLES.items()])
            select.value = self.filter.queue
            select.mutate_reactive(Select.value)  # the shown choice's new title, where the value did not change

    def _mark_better(self) -> None:
        shown = self.pair is not None
        self.query_one("#left", TextBox).set_class(shown and not self.right_better, "-better")
        self.query_one("#right", TextBox).set_class(shown and self.right_better, "-better")

    def _show_direction(self) -> None:
        self.query_one("#direction", Static).update(direction_text(self.blind, self.right_better))

    def _show_recent(self) -> None:
        rows, seen = [], set()
        for d in self.recent:  # newest first: a pair met again is a decision given again
            side = self._blind_side(d.pair_id)
            said = "skipped" if d.outcome == "skip" or d.level is None else level_label(d.level)
            better = "" if d.outcome == "skip" or not d.level else better_side(d.flip, side)
            if d.pair_id in seen:
                said = f"superseded: {said}"
            seen.add(d.pair_id)
            rows.append((str(d.pair_id), said, better))
        self.query_one("#recent", RecentDecisions).show_rows(rows, [d.annotation_id for d in self.recent])

    def action_retrain(self) -> None:
        from prefstudio.tui.jobs_screen import ask_retrain

        ask_retrain(self)  # asks first, saying what will run
