"""The pair browser: one page of the filtered pairs at a time.

Only the shown page is ever loaded. Pages are cut from the first matching pair
and stepped by id (browse.fetch_page), so the screen remembers which page it
shows instead of asking for a rank. The total is counted by its own worker once
the first page is in: a search's count scans every text, and the page should
not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import duckdb
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from prefstudio import browse
from prefstudio.browse import PAGE_SIZE, PairFilter, PairRow
from prefstudio.tui.pair_view import PairScreen
from prefstudio.tui.widgets import Column, FilterBar, PlainTextTable, WorkspaceHeader
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

# A page fetch: (page index, rows, total matching pairs if it had to count them).
PageFetch = Callable[[duckdb.DuckDBPyConnection], tuple[int, list[PairRow], int | None]]

SLOW_LOAD_S = 0.2  # after this long the status line says a page is on its way
COLUMNS = [
    Column("id", 9, right=True),
    Column("source", 14),
    Column("split", 6),
    Column("annot.", 6, right=True),
    Column("data", 8, right=True),  # a margin that came with the data: value → level
    Column("prompt"),
    Column("chosen"),
    Column("rejected"),
]


@dataclass(frozen=True, eq=False)
class PageRequest:
    """One page load; the screen shows a page only if it is the request it last made."""

    fetch: PageFetch
    cursor_row: int = 0  # where the cursor lands; -1 is the last row
    cursor_pair: int | None = None  # or on this pair, when it is on the page


class PageLoaded(Message):
    def __init__(self, request: PageRequest, index: int, rows: list[PairRow], total: int | None) -> None:
        super().__init__()
        self.request, self.index, self.rows, self.total = request, index, rows, total


class PageFailed(Message):
    def __init__(self, request: PageRequest) -> None:
        super().__init__()
        self.request = request


class CountLoaded(Message):
    def __init__(self, pair_filter: PairFilter, total: int) -> None:
        super().__init__()
        self.filter, self.total = pair_filter, total


class ChoicesLoaded(Message):
    def __init__(self, sources: list[str], splits: list[str]) -> None:
        super().__init__()
        self.sources, self.splits = sources, splits


class BrowserScreen(ReportsFailedWorkers, Screen):
    CSS_PATH = "browser.tcss"
    PURPOSE = ("Every pair in the workspace a page at a time: search, filter by source and split, enter opens a pair"
               " to read it whole.")  # what `?` says first

    BINDINGS = [
        Binding("n", "next_page", "Next page"),
        Binding("p", "previous_page", "Prev page"),
        Binding("g", "first_page", "First page", show=False),  # in the ? panel: the footer must fit 100 columns
        Binding("G", "last_page", "Last page", show=False),
        Binding("slash", "focus_search", "Search"),
        Binding("escape", "clear_search", "Clear search"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = PairFilter()
        self.page_index = 0
        self.rows: list[PairRow] = []
        self.total: int | None = None
        self._pending: PageRequest | None = None
        self._counting: PairFilter | None = None  # the filter whose count was last asked for

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        yield FilterBar()
        yield PlainTextTable(COLUMNS)
        yield Static("loading…", id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(PlainTextTable).focus()
        self._apply(self.filter)
        self._load_choices()

    # -- loading -------------------------------------------------------------------
    def _apply(self, pair_filter: PairFilter) -> None:
        """Show the first page of `pair_filter`; its pairs are counted once that page is in."""
        self.filter, self.total, self._counting = pair_filter, None, None
        self.app.interrupt("count")
        self._request(lambda con: (0, browse.fetch_page(con, pair_filter), None))

    def _request(self, fetch: PageFetch, *, cursor_row: int = 0, cursor_pair: int | None = None) -> None:
        request = PageRequest(fetch, cursor_row, cursor_pair)
        self._pending = request
        self._load_page(request)
        self.set_timer(SLOW_LOAD_S, lambda: self._say_loading(request))

    def _say_loading(self, request: PageRequest) -> None:
        if self._pending is request:
            shown = self._status_line()
            self.query_one("#status", Static).update(f"{shown} · loading…" if shown else "loading…")

    @query_work(group="page", exclusive=True)
    def _load_page(self, request: PageRequest) -> None:
        try:
            with self.app.cursor("page") as con:
                index, rows, total = request.fetch(con)
        except duckdb.InterruptException:
            return
        except Exception:  # the screen stops waiting; the app reports it
            self.post_message(PageFailed(request))
            raise
        self.post_message(PageLoaded(request, index, rows, total))

    @query_work(group="count", exclusive=True)
    def _count(self, pair_filter: PairFilter) -> None:
        with self.app.cursor("count") as con:
            total = browse.count_pairs(con, pair_filter)
        self.post_message(CountLoaded(pair_filter, total))

    @query_work(group="choices")
    def _load_choices(self) -> None:
        with self.app.cursor("choices") as con:
            choices = ChoicesLoaded(browse.sources(con), browse.splits(con))
        self.post_message(choices)

    def on_page_loaded(self, message: PageLoaded) -> None:
        request = message.request
        if request is not self._pending:
            return
        self._pending = None
        if message.total is not None:
            self.total = message.total
        elif message.index == 0 and len(message.rows) < PAGE_SIZE:
            self.total = len(message.rows)
        elif self.total is None and self._counting != self.filter:
            # After the page, not beside it: on a small machine two scans of every text
            # would each take twice as long.
            self._counting = self.filter
            self._count(self.filter)
        if not message.rows and message.index > 0:
            # Stepped past the end before the count came in: stay, and now the count is known.
            self.total = self.page_index * PAGE_SIZE + len(self.rows)
            self._show_status()
            return
        self.page_index, self.rows = message.index, message.rows
        self._fill_table(request)
        self._show_status()

    def on_page_failed(self, message: PageFailed) -> None:
        if message.request is self._pending:
            self._pending = None
            self._show_status()

    def on_count_loaded(self, message: CountLoaded) -> None:
        if message.filter == self.filter:
            self.total = message.total
            self._show_status()

    def on_choices_loaded(self, message: ChoicesLoaded) -> None:
        self.query_one(FilterBar).set_choices(message.sources, message.splits)

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        if message.filter != self.filter:
            self._apply(message.filter)
            self.query_one(PlainTextTable).focus()

    # -- showing -------------------------------------------------------------------
    def _fill_table(self, request: PageRequest) -> None:
        table = self.query_one(PlainTextTable)
        cells = [
            (str(r.id), r.source, r.split, str(r.n_annotations or ""),
             browse.data_margin_text(r.data_value, r.data_level), r.prompt, r.chosen, r.rejected)
            for r in self.rows
        ]
        keys = [r.id for r in self.rows]
        cursor_row = keys.index(request.cursor_pair) if request.cursor_pair in keys else request.cursor_row
        table.show_rows(cells, keys, cursor_row=cursor_row)

    def _status_line(self) -> str:
        if not self.rows:
            settled = self.total == 0 or (self.total is None and self._pending is None)
            return "no pairs match" if settled else ""
        first = self.page_index * PAGE_SIZE + 1
        shown = f"pairs {first:,}–{first + len(self.rows) - 1:,}"
        if self.total is None:
            return f"{shown} of … (counting) · page {self.page_index + 1:,}"
        return f"{shown} of {self.total:,} · page {self.page_index + 1:,} of {browse.page_count(self.total):,}"

    def _show_status(self) -> None:
        self.query_one("#status", Static).update(self._status_line())

    # -- actions -------------------------------------------------------------------
    def _has_next_page(self) -> bool:
        if self.total is not None:
            return self.page_index + 1 < browse.page_count(self.total)
        return len(self.rows) == PAGE_SIZE

    def action_next_page(self, cursor_row: int = 0) -> None:
        if self._pending is not None or not self.rows or not self._has_next_page():
            return
        pair_filter, after, index = self.filter, self.rows[-1].id, self.page_index + 1
        self._request(
            lambda con: (index, browse.fetch_page(con, pair_filter, after_id=after), None), cursor_row=cursor_row
        )

    def action_previous_page(self, cursor_row: int = 0) -> None:
        if self._pending is not None or not self.rows or self.page_index == 0:
            return
        pair_filter, before, index = self.filter, self.rows[0].id, self.page_index - 1
        self._request(
            lambda con: (index, browse.fetch_page(con, pair_filter, before_id=before), None), cursor_row=cursor_row
        )

    def action_first_page(self) -> None:
        if self._pending is None and self.page_index > 0:
            pair_filter = self.filter
            self._request(lambda con: (0, browse.fetch_page(con, pair_filter), None))

    def action_last_page(self) -> None:
        if self._pending is not None or not self._has_next_page():
            return
        pair_filter, known = self.filter, self.total
        if known is None:
            self.app.interrupt("count")  # this page counts too, and brings the total with it

        def fetch(con: duckdb.DuckDBPyConnection) -> tuple[int, list[PairRow], int]:
            total = known if known is not None else browse.count_pairs(con, pair_filter)
            rows = browse.fetch_last_page(con, pair_filter, limit=browse.last_page_size(total))
            return browse.page_count(total) - 1, rows, total

        self._request(fetch, cursor_row=-1)

    def action_focus_search(self) -> None:
        self.query_one(FilterBar).focus_search()

    def action_clear_search(self) -> None:
        if self.query_one(FilterBar).clear_search():
            self.query_one(PlainTextTable).focus()

    def on_plain_text_table_past_end(self) -> None:
        self.action_next_page(cursor_row=0)

    def on_plain_text_table_past_start(self) -> None:
        self.action_previous_page(cursor_row=-1)

    def on_plain_text_table_selected(self, event: PlainTextTable.Selected) -> None:
        self.app.push_screen(PairScreen(self.filter, event.key), self._back_from_pair)

    def _back_from_pair(self, pair_id: int | None) -> None:
        """Show the pair last seen on the pair screen: it may be pages away from where it was opened."""
        if pair_id is None:
            return
        table = self.query_one(PlainTextTable)
        if pair_id in table.keys:
            table.move_cursor(table.keys.index(pair_id))
            return
        pair_filter = self.filter
        self._request(lambda con: (*browse.page_of(con, pair_filter, pair_id), None), cursor_pair=pair_id)
