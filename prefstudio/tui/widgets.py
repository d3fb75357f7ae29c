"""Small widgets shared by the screens, and the one way user text reaches the terminal.

Pair texts come from arbitrary datasets: they may hold Rich markup, which must
show as typed, and terminal escape sequences, which must never reach the
terminal. Every user string is shown through visible() or literal_text().

Over 400 lines because it holds every small shared widget; each is short and
stands alone, and one import site keeps the screens' look consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Select

from prefstudio import browse, textplot
from prefstudio.browse import PairFilter
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

SERIES_STYLES = ("bold white", "cyan", "magenta", "yellow", "green", "red", "blue", "bright_cyan", "bright_magenta")
"""The colour of series i of a chart: the same model or source has the same colour on every plot of a screen."""

# C0 controls (but tab and newline) become their Unicode "control pictures" (ESC -> ␛), DEL -> ␡,
# C1 controls (0x9b is a CSI on some terminals) -> \x9b; carriage returns are dropped.
_VISIBLE_CONTROLS = {code: chr(0x2400 + code) for code in range(32) if code not in (9, 10, 13)}
_VISIBLE_CONTROLS |= {13: None, 127: "\u2421"} | {code: f"\\x{code:02x}" for code in range(0x80, 0xA0)}


def visible(text: str) -> str:
    """`text` with every terminal control character shown as a visible stand-in."""
    return text.translate(_VISIBLE_CONTROLS)


def literal_text(text: str, **kwargs) -> Text:
    """`text` exactly as typed: no markup, no terminal control."""
    return Text(visible(text), **kwargs)


EXTRA_SERIES_STYLE = "dim"  # a chart's guide lines (d = 0, the calibrated diagonal, 50%) beside the models


def slot_styles(slots: list[int], extra: int = 0) -> list[str]:
    """The style of each model's colour slot (evaluate.compare.colour_slots), then of `extra` guide lines."""
    return [SERIES_STYLES[slot % len(SERIES_STYLES)] for slot in slots] + [EXTRA_SERIES_STYLE] * extra


def chart_text(chart: textplot.Chart, text: Text | None = None, styles: list[str] | None = None) -> Text:
    """The chart's lines, each run of characters in the colour of the series that drew it, appended to `text`.

    `styles[i]` colours series i (default: SERIES_STYLES in series order)."""
    text = text if text is not None else Text()
    styles = styles or SERIES_STYLES
    for number, (line, owners) in enumerate(zip(chart.lines, chart.owners)):
        if number or text.plain:
            text.append("\n")
        start = 0
        for end in range(1, len(line) + 1):
            if end == len(line) or owners[end] != owners[start]:
                style = "" if owners[start] is None else styles[owners[start] % len(styles)]
                text.append(visible(line[start:end]), style=style)
                start = end
    return text


class DrawnChart(Widget):
    """A titled text chart that fills the widget.

    `draw(width, lines)` makes the chart for the room there is; when its legend wraps to more lines than
    planned, it is drawn again that much shorter, so the legend is never cut off.
    """

    DEFAULT_CSS = """
    DrawnChart {
        height: 1fr;
        width: 1fr;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = ""
        self.empty = "nothing to draw"
        self.draw = None
        self.series_styles: list[str] | None = None  # not `styles`: that is Textual's CSS

    def show(self, title: str, draw, empty: str = "nothing to draw", styles: list[str] | None = None) -> None:
        self.title, self.draw, self.empty, self.series_styles = title, draw, empty, styles
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        text = literal_text(self.title, style="bold")
        text.truncate(width, overflow="ellipsis")  # one line, however narrow: the plot gets the rest
        room = max(2, height - 1)
        chart = self.draw(max(8, width), room) if self.draw else textplot.Chart([], [], [])
        if len(chart.lines) > room:
            chart = self.draw(max(8, width), max(2, 2 * room - len(chart.lines)))
        if not chart.lines:
            text.append("\n" + self.empty, style="dim")
            return text
        return chart_text(chart, text, self.series_styles)


class WorkspaceHeader(Widget):
    """One line on top of every screen: the workspace, its pairs per source, and the keys to the screens.

    The screens' keys are in every footer too, but a footer with many keys of its
    own runs out of width first; here they always show, with this screen's marked.
    """

    DEFAULT_CSS = """
    WorkspaceHeader {
        dock: top;
        height: 1;
        padding: 0 1;
        background: $primary;
        color: $text;
        text-style: bold;
    }
    """

    def on_mount(self) -> None:
        self._mode = self.app.current_mode  # a screen is mounted in the mode it belongs to
        self.watch(self.app, "summary", lambda _: self.refresh())

    SHORT_TITLES = {"Agreement": "Agree", "Evaluate": "Eval", "Best-of-N": "BoN"}
    SUMMARY_ROOM = 24  # cells the summary keeps before the tabs shorten their titles (100 columns)

    def render(self) -> Text:
        width = self.content_size.width
        tabs = self._tabs(short=False)
        if width - tabs.cell_len < self.SUMMARY_ROOM:
            tabs = self._tabs(short=True)
        self._tab_start = width - tabs.cell_len
        summary = literal_text(self.app.summary)
        summary.truncate(max(0, width - tabs.cell_len - 1), overflow="ellipsis")
        return Text.assemble(summary, " " * max(1, width - summary.cell_len - tabs.cell_len), tabs)

    def _tabs(self, short: bool) -> Text:
        tabs = Text()
        self._tab_ends: list[tuple[int, str]] = []  # (cell after the tab, its mode): what a click lands on
        for key, mode, title in getattr(self.app, "NAVIGATION", ()):
            title = self.SHORT_TITLES.get(title, title) if short else title
            tabs.append(f" {key.upper()} {title} ", style="reverse" if mode == self._mode else "")
            self._tab_ends.append((tabs.cell_len, mode))
        return tabs

    def mode_at(self, x: int) -> str | None:
        """The screen whose tab is at column `x` of the content, if any."""
        offset = x - getattr(self, "_tab_start", 0)
        if offset < 0:
            return None
        return next((mode for end, mode in getattr(self, "_tab_ends", []) if offset < end), None)

    def on_click(self, event) -> None:
        mode = self.mode_at(event.x - self.styles.padding.left)
        if mode is not None and mode != self.app.current_mode:
            self.app.switch_mode(mode)


@dataclass(frozen=True)
class Column:
    label: str
    width: int | None = None  # None: an equal share of what the fixed-width columns leave
    right: bool = False


class PlainTextTable(ScrollView, can_focus=True):
    """A table of plain-text rows under a header, with a row cursor: the lists of every screen.

    It holds one page; running the cursor off either end asks for the next or
    previous one. Drawn straight from segments: Textual's DataTable renders each
    cell through Rich (about 0.3 ms a cell), so redrawing a screenful of pairs
    took ~100 ms, the whole budget of a page move; this takes about 1 ms.
    """

    DEFAULT_CSS = """
    PlainTextTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        & > .plain-text-table--header {
            text-style: bold;
            background: $panel;
        }
        & > .plain-text-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .plain-text-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .plain-text-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES = {"plain-text-table--header", "plain-text-table--even-row", "plain-text-table--cursor"}
    BINDINGS = [
        Binding("enter", "select", "Open pair"),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move_page(-1)", "Page up", show=False),
        Binding("pagedown", "move_page(1)", "Page down", show=False),
        Binding("home", "move_to(0)", "First row", show=False),
        Binding("end", "move_to(-1)", "Last row", show=False),
    ]

    class Selected(Message):
        """Enter (or a click) on the row with this key."""

        def __init__(self, key: int, table: PlainTextTable | None = None) -> None:
            super().__init__()
            self.key = key
            self.table = table

        @property
        def control(self) -> PlainTextTable | None:
            """The table, so a screen with two tells them apart (and `@on(..., "#id")` works)."""
            return self.table

    class PastEnd(Message):
        """The cursor was moved down from the last row."""

    class PastStart(Message):
        """The cursor was moved up from the first row."""

    def __init__(self, columns: list[Column], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []
        self.keys: list[int] = []
        self._cursor = 0

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def cursor_key(self) -> int | None:
        return self.keys[self._cursor] if self.rows else None

    def show_rows(self, rows: list[tuple[str, ...]], keys: list[int], *, cursor_row: int = 0) -> None:
        """Replace the rows; a negative cursor_row counts from the end."""
        self.rows = [tuple(visible(value).replace("\n", " ").replace("\t", " ") for value in row) for row in rows]
        self.keys = list(keys)
        self.virtual_size = Size(0, len(self.rows) + 1)  # + the header line
        self.scroll_to(y=0, animate=False)
        self.move_cursor(cursor_row % len(self.rows) if self.rows else 0)
        self.refresh()

    def move_cursor(self, row: int) -> None:
        self._cursor = max(0, min(row, len(self.rows) - 1))
        shown = max(1, self.scrollable_content_region.height - 1)
        top = self.scroll_offset.y
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False)
        elif self._cursor >= top + shown:
            self.scroll_to(y=self._cursor - shown + 1, animate=False)
        self.refresh()

    def action_move(self, step: int) -> None:
        if not self.rows:
            return
        if self._cursor + step >= len(self.rows):
            self.post_message(self.PastEnd())
        elif self._cursor + step < 0:
            self.post_message(self.PastStart())
        else:
            self.move_cursor(self._cursor + step)

    def action_move_page(self, direction: int) -> None:
        self.move_cursor(self._cursor + direction * max(1, self.scrollable_content_region.height - 2))

    def action_move_to(self, row: int) -> None:
        self.move_cursor(row % len(self.rows) if self.rows else 0)

    def action_select(self) -> None:
        if self.rows:
            self.post_message(self.Selected(self.keys[self._cursor], self))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        row = self.scroll_offset.y + offset.y - 1
        if row == self._cursor:
            self.action_select()
        elif row < len(self.rows):
            self.move_cursor(row)

    def _widths(self, total: int) -> list[int]:
        fixed = [c.width for c in self.columns if c.width is not None]
        flexible = len(self.columns) - len(fixed)
        share = max(8, (total - sum(fixed) - 2 * len(self.columns)) // flexible) if flexible else 0
        return [share if c.width is None else c.width for c in self.columns]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            cells, style = [c.label for c in self.columns], base + self.get_component_rich_style("plain-text-table--header")
        else:
            index = self.scroll_offset.y + y - 1
            if index >= len(self.rows):
                return Strip.blank(width, base)
            cells, style = self.rows[index], base
            if index % 2:
                style += self.get_component_rich_style("plain-text-table--even-row")
            if index == self._cursor:
                style += self.get_component_rich_style("plain-text-table--cursor")
        text = "".join(
            f" {_fit(value, w, column.right)} " for column, w, value in zip(self.columns, self._widths(width), cells)
        )
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)


def _fit(value: str, width: int, right: bool) -> str:
    """`value` in exactly `width` cells: cut with an ellipsis, or padded."""
    if cell_len(value) > width:
        return set_cell_size(value, width - 1) + "…"
    padding = " " * (width - cell_len(value))
    return padding + value if right else value + padding


class FilterBar(Horizontal):
    """Source, split and label-state pickers and a search box; posts Changed with the new filter.

    Pickers apply at once, the search text when Enter is pressed in the box.
    """

    DEFAULT_CSS = """
    FilterBar {
        height: auto;
    }
    FilterBar Select {
        width: 24;
    }
    FilterBar Input {
        width: 1fr;
    }
    """

    class Changed(Message):
        def __init__(self, pair_filter: PairFilter) -> None:
            super().__init__()
            self.filter = pair_filter

    def __init__(self) -> None:
        super().__init__()
        self._search = ""

    def compose(self) -> ComposeResult:
        yield Select([], prompt="all sources", id="source")
        yield Select([], prompt="all splits", id="split")
        yield Select(
            [(Text("unlabelled"), "unlabelled"), (Text("labelled"), "labelled")],
            prompt="labelled or not",
            id="label-state",
        )
        yield Input(placeholder="search texts (enter)", id="search")

    @property
    def filter(self) -> PairFilter:
        return PairFilter(
            source=self.query_one("#source", Select).selection,
            split=self.query_one("#split", Select).selection,
            annotated=self.query_one("#label-state", Select).selection or "any",
            search=self._search,
        )

    def set_choices(self, sources: list[str], splits: list[str]) -> None:
        self.query_one("#source", Select).set_options([(literal_text(s), s) for s in sources])
        self.query_one("#split", Select).set_options([(literal_text(s), s) for s in splits])

    def focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def clear_search(self) -> bool:
        """Empty the search; True if there was anything to clear."""
        box = self.query_one("#search", Input)
        if not box.value and not self._search:
            return False
        box.value = ""
        if self._search:
            self._search = ""
            self.post_message(self.Changed(self.filter))
        return True

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filter))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._search = event.value
        self.post_message(self.Changed(self.filter))


class SourceSplitPicker(ReportsFailedWorkers, Horizontal):
    """Source and split pickers that fill themselves from the workspace; posts Changed on a pick."""

    DEFAULT_CSS = """
    SourceSplitPicker {
        height: auto;
        width: 1fr;
    }
    SourceSplitPicker Select {
        width: 1fr;
    }
    """

    class Changed(Message):
        def __init__(self, source: str | None, split: str | None) -> None:
            super().__init__()
            self.source, self.split = source, split

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)

    def compose(self) -> ComposeResult:
        yield Select([], prompt="all sources", compact=True, id=f"{self.id}-source")
        yield Select([], prompt="all splits", compact=True, id=f"{self.id}-split")

    @property
    def source(self) -> str | None:
        return self.query_one(f"#{self.id}-source", Select).selection

    @property
    def split(self) -> str | None:
        return self.query_one(f"#{self.id}-split", Select).selection

    def on_mount(self) -> None:
        self._load_choices()

    @query_work(group="choices")
    def _load_choices(self) -> None:
        with self.app.cursor(f"choices:{self.id}") as con:
            sources, splits = browse.sources(con), browse.splits(con)
        self.app.call_from_thread(self._set_choices, sources, splits)

    def _set_choices(self, sources: list[str], splits: list[str]) -> None:
        self.query_one(f"#{self.id}-source", Select).set_options([(literal_text(s), s) for s in sources])
        self.query_one(f"#{self.id}-split", Select).set_options([(literal_text(s), s) for s in splits])

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.source, self.split))
