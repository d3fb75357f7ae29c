"""`?`: what the current screen is for and every key it answers to, in one panel that esc closes.

The footer has room for a screen's main keys only; this panel lists them all, with the
app's own keys (screens, palette, quit) after them. It reads the bindings that are
active on the screen underneath, so it can never disagree with what a key does.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GLOBAL_KEYS = (("f1…f7, alt+1…7", "switch screens (1…7 too, where no text box has the cursor)"),
               ("ctrl+p", "command palette: every screen and action by name"),
               ("?", "this help"), ("q, ctrl+c", "quit"))


def ours(node) -> set[tuple[str, str]]:
    """(key, action) of the bindings the app's own classes give `node`: not Textual's scrolling and focus keys."""
    return {(b.key, b.action) if isinstance(b, Binding) else (b[0], b[1])
            for cls in type(node).__mro__ if cls.__module__.startswith("prefstudio")
            for b in cls.__dict__.get("BINDINGS", [])}


def screen_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for each of the app's bindings active on `screen`, the app-wide ones left out: the
    screen's own first, then those of the widget that has focus (a table's moves)."""
    app = screen.app
    keys: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    actives = sorted(screen.active_bindings.values(), key=lambda active: active.node is not screen)
    for active in actives:
        binding = active.binding
        if active.node is app or not binding.description or (binding.key, binding.action) not in ours(active.node):
            continue
        shown = app.get_key_display(binding)
        if (shown, binding.description) not in seen:
            seen.add((shown, binding.description))
            keys.append((shown, binding.description))
    return keys


def help_text(screen: Screen) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in screen_keys(screen):
        table.add_row(key, what)
    table.add_row("", "")
    for key, what in GLOBAL_KEYS:
        table.add_row(Text(key, style="dim"), Text(what, style="dim"))
    return table


class ScreenHelp(ModalScreen[None]):
    """The help of the screen it was opened over."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close", show=False),
                Binding("q", "close", "Close", show=False)]
    DEFAULT_CSS = """
    ScreenHelp { align: center middle; }
    ScreenHelp > VerticalScroll {
        width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    ScreenHelp .purpose { margin-bottom: 1; text-style: italic; }
    """

    def __init__(self, under: Screen, title: str) -> None:
        super().__init__()
        self.under, self.screen_title = under, title

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"{self.screen_title} · keys"
            box.border_subtitle = "esc closes"
            yield Static(getattr(self.under, "PURPOSE", ""), classes="purpose", markup=False)
            yield Static(help_text(self.under), id="keys")

    def action_close(self) -> None:
        self.dismiss(None)
