"""A pair's text whole, in the user's pager: what a screen cuts short is still there to read.

The screens show the first browse.SHOWN_CHARS of each text, so a 50 MB response
costs a blink and a few MB. `o` fetches the whole text only then (in a
worker), writes it to a temporary file, suspends the app while $PAGER (default
less) shows it, and removes the file when the pager exits.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.text import Text
from textual.app import SuspendNotSupported
from textual.message import Message

from prefstudio import browse
from prefstudio.tui.widgets import literal_text
from prefstudio.tui.workers import query_work

DEFAULT_PAGER = "less"
NO_PAGER = f"no pager to show the whole text: $PAGER is not set and {DEFAULT_PAGER} is not installed (e.g. export PAGER=more)"


def pager_command() -> list[str] | None:
    """$PAGER (or less) as an argument list; None when neither is there to run."""
    command = os.environ.get("PAGER", "").strip()
    if command:
        try:
            return shlex.split(command)
        except ValueError:  # an unclosed quote: run it as the shell would not, word by word
            return command.split()
    return [DEFAULT_PAGER] if shutil.which(DEFAULT_PAGER) else None


def pager_name() -> str:
    return os.environ.get("PAGER", "").strip() or DEFAULT_PAGER


def more_line(left_out: int) -> Text:
    """'… 49.9 MB more, o opens it in less': what a cut text leaves out, and how to read it all."""
    return Text.assemble((f"… {browse.size_text(left_out)} more, ", "bold"), ("o", "bold reverse"),
                         literal_text(f" opens it in {pager_name()}", style="bold"))


def shown_text(text: str, left_out: int) -> Text:
    """A text as a screen shows it: literal, and when cut, a last line that says how much more there is."""
    shown = literal_text(text)
    if left_out:
        shown.append("\n")
        shown.append(more_line(left_out))
    return shown


class TextWritten(Message):
    """A text was fetched whole into `path`, a temporary file the pager shows and then removes."""

    def __init__(self, path: Path, request: int) -> None:
        super().__init__()
        self.path, self.request = path, request


class OpensTextsInPager:
    """Mixed into a screen that shows pair texts: `open_in_pager(pair_id, name)` and its message handler."""

    _pager_request = 0  # the latest `o`: a text fetched for an earlier one is not paged after it

    def open_in_pager(self, pair_id: int, name: str) -> None:
        if pager_command() is None:
            self.notify(NO_PAGER, severity="warning", timeout=6, markup=False)
            return
        self.notify(f"fetching the whole {name} of pair {pair_id}…", timeout=2)
        self._pager_request += 1
        self._write_text(pair_id, name, self._pager_request)

    @query_work(group="pager", exclusive=True)
    def _write_text(self, pair_id: int, name: str, request: int) -> None:
        with self.app.cursor("pager") as con:
            text = browse.full_text(con, pair_id, name)
        if text is None:
            self.app.call_from_thread(self.notify, f"pair {pair_id} is no longer in the workspace", timeout=3)
            return
        handle, name_on_disk = tempfile.mkstemp(prefix=f"prefstudio-pair-{pair_id}-{name}-", suffix=".txt")
        path = Path(name_on_disk)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.post_message(TextWritten(path, request))

    def on_text_written(self, message: TextWritten) -> None:
        command = pager_command()
        try:
            if message.request != self._pager_request:
                return
            if command is None:  # less went away while the text was fetched
                self.notify(NO_PAGER, severity="warning", timeout=6, markup=False)
                return
            with self.app.suspend():
                subprocess.run([*command, str(message.path)], check=False)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to a pager", severity="warning", timeout=4)
        except OSError as exc:
            self.notify(f"cannot run pager {shlex.join(command)!r}: {exc.strerror or exc}", severity="error",
                        timeout=6, markup=False)
        finally:
            message.path.unlink(missing_ok=True)

