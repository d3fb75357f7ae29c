"""One pair in full, to read chosen against rejected.

The screen steps through the same filtered list the browser shows, so a
researcher can read a search's hits one after another; on the way back it
tells the browser which pair it ended on. `l` hands the pair to the labelling
screen (esc there comes back here). The demo's ground truth in the metadata
(gt_level, gt_flip) is hidden until `g`, so that reading a pair before
labelling it does not give the answer away. A text too big to show is cut (browse.SHOWN_CHARS) with a line that
says how much more there is; `o` opens it whole in $PAGER (tui/pager.py).
"""

from __future__ import annotations

import json

import duckdb
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from prefstudio import browse
from prefstudio.browse import AnnotationRow, PairDetail, PairFilter
from prefstudio.config import LEVEL_NAMES
from prefstudio.labels import GROUND_TRUTH_KEYS, level_label
from prefstudio.tui.pager import OpensTextsInPager, more_line, shown_text
from prefstudio.tui.widgets import WorkspaceHeader, literal_text
from prefstudio.tui.workers import ReportsFailedWorkers, query_work


class PairLoaded(Message):
    def __init__(self, pair: PairDetail, annotations: list[AnnotationRow]) -> None:
        super().__init__()
        self.pair, self.annotations = pair, annotations


class PairNotLoaded(Message):
    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why  # for the user; empty when the error was already shown


class TextBox(VerticalScroll):
    """A titled, scrollable box of wrapped literal text."""

    DEFAULT_CSS = """
    TextBox {
        border: round $primary 50%;
        padding: 0 1;
    }
    TextBox:focus {
        border: heavy $accent;
        border-title-style: bold reverse;
    }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id)
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Static(id=f"{self.id}-text")

    def show(self, text: Text) -> None:
        self.query_one(Static).update(text)
        self.scroll_home(animate=False)


class PairScreen(ReportsFailedWorkers, OpensTextsInPager, Screen[int]):
    """Dismisses with the id of the pair shown last."""

    CSS_PATH = "pair_view.tcss"

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("n", "step(True)", "Next pair"),
        Binding("p", "step(False)", "Previous pair"),
        Binding("j", "step(True)", "Next pair", show=False),
        Binding("k", "step(False)", "Previous pair", show=False),
        Binding("l", "label_pair", "Label it"),
        Binding("o", "open_in_pager", "Pager"),
        Binding("g", "toggle_truth", "Ground truth"),
    ]

    def __init__(self, pair_filter: PairFilter, pair_id: int) -> None:
        super().__init__()
        self.filter = pair_filter
        self.pair_id = pair_id
        self._stepping = False
        self.pair: PairDetail | None = None
        self.show_truth = False

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        yield TextBox(f"prompt · pair {self.pair_id}", id="prompt")
        with Horizontal(id="responses"):
            yield TextBox("chosen", id="chosen")
            yield TextBox("rejected", id="rejected")
        with Horizontal(id="details"):
            yield TextBox("annotations", id="annotations")
            yield TextBox("metadata", id="metadata")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._load(self.pair_id)
        self.query_one("#chosen", TextBox).focus()

    @query_work(group="pair", exclusive=True)
    def _load(self, pair_id: int, *, step_forward: bool | None = None) -> None:
        """Load `pair_id`, or with `step_forward` the pair after (or before) it in the filter."""
        try:
            with self.app.cursor("pair") as con:
                if step_forward is not None:
                    pair_id = browse.adjacent_pair_id(con, self.filter, pair_id, forward=step_forward)
                    if pair_id is None:
                        end = "last" if step_forward else "first"
                        self.post_message(PairNotLoaded(f"this is the {end} pair in the list"))
                        return
                pair = browse.get_pair(con, pair_id)
                annotations = browse.annotations_for(con, pair_id)
        except duckdb.InterruptException:
            return
        except Exception:  # the screen stops waiting; the app reports it
            self.post_message(PairNotLoaded(""))
            raise
        if pair is None:
            self.post_message(PairNotLoaded(f"pair {pair_id} is no longer in the workspace"))
            return
        self.post_message(PairLoaded(pair, annotations))

    def on_pair_loaded(self, message: PairLoaded) -> None:
        self._stepping = False
        pair = message.pair
        self.pair, self.pair_id = pair, pair.id
        self.query_one("#prompt", TextBox).border_title = literal_text(
            f"prompt · pair {pair.id} · {pair.source} · {pair.split}"
        )
        for name in ("prompt", "chosen", "rejected"):
            self.query_one(f"#{name}", TextBox).show(shown_text(getattr(pair, name), pair.left_out.get(name, 0)))
        self.query_one("#annotations", TextBox).show(annotations_text(message.annotations))
        self.query_one("#metadata", TextBox).show(metadata_text(pair, self.show_truth))

    def action_toggle_truth(self) -> None:
        self.show_truth = not self.show_truth
        if self.pair is not None:
            self.query_one("#metadata", TextBox).show(metadata_text(self.pair, self.show_truth))

    def on_pair_not_loaded(self, message: PairNotLoaded) -> None:
        self._stepping = False
        if message.why:
            self.notify(message.why, timeout=2, markup=False)

    def action_step(self, forward: bool) -> None:
        if not self._stepping:
            self._stepping = True
            self._load(self.pair_id, step_forward=forward)

    def action_open_in_pager(self) -> None:
        """The focused text whole; from elsewhere (or a text shown whole), the first one cut short."""
        if self.pair is None:
            return
        focused = self.focused.id if self.focused is not None else None
        box = {"metadata": "meta"}.get(focused, focused)
        if box not in self.pair.left_out:
            box = next(iter(self.pair.left_out), box if box in browse.PAIR_TEXTS else "chosen")
        self.open_in_pager(self.pair.id, box)

    async def action_label_pair(self) -> None:
        # back to the browser's or the evaluation's mode: this view stays on top of it
        await self.app.label_pair(self.pair_id, back_to=self.app.current_mode)

    def action_back(self) -> None:
        self.dismiss(self.pair_id)


def annotations_text(annotations: list[AnnotationRow]) -> Text:
    if not annotations:
        return Text("no annotations yet", style="dim")
    lines = Text()
    for a in annotations:
        if a.outcome == "label" and a.level is not None:
            verdict = level_label(a.level)
            if a.annotator_kind == "data":  # the data's own margin first: "data 0.82 → 3 · Distinctly superior"
                verdict = f"data {browse.data_margin_text(a.value, a.level)} · {LEVEL_NAMES[a.level]}"
        else:
            verdict = a.outcome
        flip = " · flip" if a.flip else ""
        margin = f" · margin {a.margin:.2f}" if a.margin is not None else ""
        expected = f" · expected {a.expected_level:+.2f}" if a.expected_level is not None else ""  # soft label
        when = a.created_at.strftime("%Y-%m-%d %H:%M")
        lines.append(literal_text(f"{a.annotator_kind}:{a.annotator_id}", style="bold"))
        lines.append(literal_text(f"  {verdict}{flip}{margin}{expected} · {when}\n"))
    lines.rstrip()
    return lines


def metadata_text(pair: PairDetail, show_truth: bool = False) -> Text:
    """The pair's fields and meta; the demo's ground truth only when `show_truth` (module docstring)."""
    fields = {
        "id": str(pair.id),
        "source": pair.source,
        "split": pair.split,
        "import batch": "" if pair.import_batch is None else str(pair.import_batch),
        "content hash": pair.content_hash[:16],
    }
    hidden = [key for key in GROUND_TRUTH_KEYS if key in pair.meta and not show_truth]
    fields |= {
        f"meta.{key}": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in pair.meta.items() if key not in hidden
    }
    if hidden:
        fields["ground truth"] = "hidden while you label · g shows it"
    text = Text()
    for key, value in fields.items():
        text.append(literal_text(f"{key}: ", style="dim"))
        text.append(literal_text(f"{value}\n"))
    if "meta" in pair.left_out:  # too big to show: its size, and the key that opens it
        text.append(literal_text("meta: ", style="dim"))
        text.append(more_line(pair.left_out["meta"]))
    text.rstrip()
    return text
