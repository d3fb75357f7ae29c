"""The terminal app: one open workspace, queried only from worker threads.

The workspace is opened before Textual starts, so a busy or broken workspace is
one line on stderr rather than a flash of a full-screen app. Screens never run
a query on the UI thread: each query runs in a thread worker on its own
cursor, and a newer query of the same kind interrupts an older one, so a slow
search over a million pairs never holds up the next keypress. Writes get a
cursor nothing interrupts: a label that was given is a label that is stored.

Browse, Label, Judge, Agreement and Jobs are Textual modes (F1-F5 on every
screen): each keeps its own screen alive while another is shown, so a judge run
goes on while its owner labels, and the labelling screen keeps its place.
Evaluate is F6, Best-of-N F7.

A query worker that fails raises, and the app's one handler
(report_failed_worker) says so in a notification and the log (tui/workers.py);
a query that meets a damaged database file ends the app with the one line that
says how to restore it, rather than leave screens that look empty.

The daily backup (prefstudio/backup.py) runs in a thread worker after the app
is up, not before: it reads the whole file (~20 ms for the demo, ~0.75 s for
200,000 pairs), and its own cursor's read transaction never holds up labelling.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
from textual import events, on
from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import HelpPanel
from textual.worker import Worker, WorkerState

from prefstudio import browse
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.tui.agreement_screen import AgreementScreen
from prefstudio.tui.bon_screen import BonScreen
from prefstudio.tui.commands import ScreenCommands
from prefstudio.tui.help_panel import ScreenHelp
from prefstudio.tui.browser import BrowserScreen
from prefstudio.tui.eval_screen import EvalScreen
from prefstudio.tui.jobs_screen import JobsScreen
from prefstudio.tui.judge_screen import JudgeScreen
from prefstudio.tui.label_screen import LabelScreen
from prefstudio.tui.workers import query_work
from prefstudio.workspace import Workspace, damage_error

log = logging.getLogger(__name__)


class PrefstudioApp(App):
    TITLE = "prefstudio"
    MODES = {"browse": BrowserScreen, "label": LabelScreen, "judge": JudgeScreen, "agreement": AgreementScreen,
             "jobs": JobsScreen, "eval": EvalScreen, "bon": BonScreen}
    DEFAULT_MODE = "browse"
    NAVIGATION = (("f1", "browse", "Browse"), ("f2", "label", "Label"), ("f3", "judge", "Judge"),
                  ("f4", "agreement", "Agreement"), ("f5", "jobs", "Jobs"), ("f6", "eval", "Evaluate"),
                  ("f7", "bon", "Best-of-N"))
    """(key, mode, title) of each screen; F-keys, as every letter is some screen's own key."""
    # The header shows the screens' keys (and takes clicks), so the footer keeps its width for the screen's own.
    # alt+N and N serve terminals that take the F-keys (VS Code, macOS laptops); N only where it types nothing.
    BINDINGS = [Binding(key, f"switch_mode('{mode}')", title, show=False) for key, mode, title in NAVIGATION]
    BINDINGS += [Binding(f"alt+{n}", f"switch_mode('{mode}')", title, show=False)
                 for n, (_, mode, title) in enumerate(NAVIGATION, start=1)]
    BINDINGS += [Binding(str(n), f"switch_screen_by_digit('{mode}')", title, show=False)
                 for n, (_, mode, title) in enumerate(NAVIGATION, start=1)]
    BINDINGS += [Binding("question_mark", "screen_help", "Help", key_display="?"),
                 Binding("escape", "close_keys_panel", show=False, priority=True),
                 Binding("q", "quit", "Quit"), Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]
    COMMANDS = App.COMMANDS | {ScreenCommands}

    summary: reactive[str] = reactive("")
    """The header line: workspace name and pairs per source."""

    def __init__(self, ws: Workspace, annotator: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        # Whose hand labels the labelling screen writes and walks (their annotator_id).
        self.annotator = annotator or ws.config.annotation.annotator_name()
        self.summary = ws.name
        self._query_cursors: dict[str, duckdb.DuckDBPyConnection] = {}
        self._cursors_lock = threading.Lock()
        self.fatal_error: str | None = None
        """Why the app ended itself (a damaged database file): run_app prints it as the one error line."""

    async def label_pair(self, pair_id: int, back_to: str | None = None) -> None:
        """Show the labelling screen on `pair_id`, out of its queue's order; esc there returns to `back_to`'s
        screen (the mode the pair was sent from), where given."""
        await self.switch_mode("label")
        label_screen = self.screen
        assert isinstance(label_screen, LabelScreen)
        label_screen.show_pair(pair_id)
        if back_to is not None:
            label_screen.return_on_escape(back_to)

    def on_mount(self) -> None:
        self._load_summary()
        self._daily_backup()
        # A full garbage collection walks every live object: ~75,000 once Textual is up, 60-100 ms
        # on a small machine, and it would land in the middle of page moves. What is alive now
        # lives as long as the app, so leave it out of collections until the app ends.
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's Screenshot saves into the workspace's screenshots/ (Textual's ~/Downloads may not exist)."""
        if path is None:
            folder = self.ws.path / "screenshots"
            folder.mkdir(exist_ok=True)
            path = str(folder)
        return super().deliver_screenshot(filename, path, time_format)

    def on_delivery_complete(self, event: events.DeliveryComplete) -> None:
        if event.name == "screenshot":
            self.notify(f"screenshot saved: {event.path}", title="screenshot", markup=False)

    def on_delivery_failed(self, event: events.DeliveryFailed) -> None:
        if event.name == "screenshot":
            self.notify(f"no screenshot: {event.exception}", title="screenshot", severity="error", markup=False)

    def refresh_summary(self) -> None:
        """Count the pairs again for the header: a screen added some (best-of-N's pairs for labelling)."""
        self._load_summary()

    @contextmanager
    def cursor(self, kind: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one worker; opening another of the same `kind` interrupts this one's query."""
        with self._cursors_lock:  # also keeps two threads from making cursors off one connection at once
            con = self.ws.cursor()
            older = self._query_cursors.get(kind)
            self._query_cursors[kind] = con
            if older is not None:
                older.interrupt()
        try:
            yield con
        finally:
            with self._cursors_lock:
                if self._query_cursors.get(kind) is con:
                    del self._query_cursors[kind]
                con.close()

    @contextmanager
    def write_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for a worker that writes; unlike cursor(), nothing interrupts it."""
        with self._cursors_lock:
            con = self.ws.cursor()
        try:
            yield con
        finally:
            con.close()

    def action_switch_screen_by_digit(self, mode: str) -> None:
        """A digit switches screens only where it is not the screen's own key (Label's 1-4 are levels)."""
        own_keys = self.screen._merge_bindings().key_to_bindings
        if isinstance(self.screen, ModalScreen) or any(key.isdigit() for key in own_keys):
            raise SkipAction()
        self.switch_mode(mode)

    def action_screen_help(self) -> None:
        if isinstance(self.screen, ScreenHelp):
            return
        title = next((t for _, mode, t in self.NAVIGATION if mode == self.current_mode), "prefstudio")
        self.push_screen(ScreenHelp(self.screen, title))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_keys_panel":  # only while it is open: else esc stays the screen's own (and in its footer)
            return self._keys_panel_open()
        return True

    def _keys_panel_open(self) -> bool:
        return bool(self.screen.query(HelpPanel))

    def action_show_help_panel(self) -> None:
        super().action_show_help_panel()
        self.call_after_refresh(self.refresh_bindings)

    def action_close_keys_panel(self) -> None:
        """esc closes Textual's Keys panel (palette: Keys)."""
        self.action_hide_help_panel()
        self.call_after_refresh(self.refresh_bindings)

    async def action_quit(self) -> None:
        # Textual waits for running workers on the way out; a search should not hold up quitting.
        with self._cursors_lock:
            for running in self._query_cursors.values():
                running.interrupt()
        await super().action_quit()

    def interrupt(self, kind: str) -> None:
        """Stop the query a worker of this `kind` is running, if any."""
        with self._cursors_lock:
            running = self._query_cursors.get(kind)
            if running is not None:
                running.interrupt()

    @on(Worker.StateChanged)
    def report_failed_worker(self, event: Worker.StateChanged) -> None:
        """A worker raised: one notification with the error's first line, and the whole of it in the log.

        The one handler of failed workers (tui/workers.py): Worker.StateChanged goes only to
        the node that runs the worker, and screens and widgets hand theirs over.
        """
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        damage = damage_error(self.ws.path, error)
        if damage is not None:
            log.error("worker %s met a damaged database", event.worker.name, exc_info=error)
            self.fatal_error = str(damage)
            self.exit(return_code=2)
            return
        log.error("worker %s failed", event.worker.name, exc_info=error)
        title = "query failed" if isinstance(error, duckdb.Error) else "failed"
        self.notify(first_line(error), title=title, severity="error", markup=False)

    @query_work(group="backup")
    def _daily_backup(self) -> None:
        with self.write_cursor() as con:
            made = self.ws.backup_if_due(con)
        if made is not None:
            self.call_from_thread(self.notify, f"daily backup written: {made.folder.name}", title="backup",
                                  markup=False)

    @query_work(group="summary")
    def _load_summary(self) -> None:
        with self.cursor("summary") as con:
            counts = browse.source_counts(con)
        parts = [self.ws.name, f"{sum(counts.values()):,} pairs"]
        parts += [f"{source} {n:,}" for source, n in counts.items()]
        self.call_from_thread(setattr, self, "summary", " · ".join(parts))


def run_app(path: str | Path, annotator: str | None = None) -> int:
    """Open the workspace at `path` in the terminal app; the exit status.

    `annotator` names the person labelling (default: the workspace's annotation.annotator, else $USER).
    """
    try:
        ws = Workspace.open(path, daily_backup=False)  # the app makes it after start (_daily_backup)
    except PrefstudioError as exc:
        print(f"prefstudio: error: {exc}", file=sys.stderr)
        return 2
    try:
        app = PrefstudioApp(ws, annotator)
        app.run()
    finally:
        ws.close()
    if app.fatal_error:
        print(f"prefstudio: error: {app.fatal_error}", file=sys.stderr)
    return app.return_code or 0
