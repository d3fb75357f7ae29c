"""Who is labelling: a name asked for in the app, since `--annotator` is set once, before it opens.

Two people taking turns at one terminal each keep their own queues and labels;
the name is whitespace-trimmed, and an empty answer (or esc) keeps the current one.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class AnnotatorPrompt(ModalScreen[str | None]):
    """Dismisses with the new name, or None to keep the current one."""

    BINDINGS = [Binding("escape", "cancel", "Keep the name")]
    DEFAULT_CSS = """
    AnnotatorPrompt { align: center middle; }
    AnnotatorPrompt > Vertical {
        width: 60; height: auto; border: round $accent; background: $panel; padding: 0 1;
    }
    AnnotatorPrompt Input:focus { border: tall $accent; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "annotator"
            box.border_subtitle = "enter sets · esc keeps"
            yield Static("Whose labels these are: yours are kept apart from everyone else's.", markup=False)
            yield Input(self.current, placeholder="a name, e.g. ana", max_length=64, id="annotator-name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
