"""User-facing errors.

Anything a user can cause (bad file, busy workspace, bad config) raises
PrefstudioError with one line that names the thing and says what was expected;
the CLI and the TUI print that line instead of a traceback.
"""


class PrefstudioError(Exception):
    """An error the user can fix; its message is the whole story, on one line."""


class WorkspaceBusy(PrefstudioError):
    """Another process holds the workspace."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (DuckDB's run to several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
