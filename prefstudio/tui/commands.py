"""The command palette's commands (ctrl+p): every screen, and every action of every screen, by name.

A user who does not know a key types what they want ("new job", "blind", "score") and the
palette takes them to the screen that does it and does it. The commands are read off the
screens' own key bindings, so a key added to a screen is in the palette with nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Iterator

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class ScreenAction:
    """One command: a screen's action, or going to the screen (action None)."""

    mode: str
    screen_title: str
    action: str | None
    description: str
    key: str

    @property
    def title(self) -> str:
        return f"Go to {self.screen_title}" if self.action is None else f"{self.screen_title}: {self.description}"

    @property
    def help(self) -> str:
        return f"key {self.key}" if self.action is None else f"key {self.key} on {self.screen_title}"


def screen_bindings(screen_class) -> list[Binding]:
    """The bindings a screen class shows in its footer (its mixins' included), in their order."""
    seen: dict[str, Binding] = {}
    for _, bindings in screen_class._merge_bindings().key_to_bindings.items():
        for binding in bindings:
            if binding.show and binding.description and binding.action not in seen:
                seen[binding.action] = binding
    return list(seen.values())


def screen_actions(app) -> Iterator[ScreenAction]:
    """Every screen's "Go to", then each screen's actions, from the app's NAVIGATION and MODES."""
    for key, mode, title in app.NAVIGATION:
        yield ScreenAction(mode, title, None, title, key.upper())
    for key, mode, title in app.NAVIGATION:
        for binding in screen_bindings(app.MODES[mode]):
            yield ScreenAction(mode, title, binding.action, binding.description, binding.key_display or binding.key)


async def run_screen_action(app, command: ScreenAction) -> None:
    """Show the command's screen, then run its action there (as its key would)."""
    if app.current_mode != command.mode:
        await app.switch_mode(command.mode)
    if command.action is not None:
        await app.screen.run_action(command.action)


class ScreenCommands(Provider):
    """The app's screens and their actions, found by any words of their names."""

    def _commands(self) -> list[ScreenAction]:
        return list(screen_actions(self.app))

    async def discover(self) -> Hits:
        """With nothing typed: the current screen's actions first, then the ways to the other screens."""
        commands = self._commands()
        here = [c for c in commands if c.mode == self.app.current_mode and c.action is not None]
        elsewhere = [c for c in commands if c.action is None and c.mode != self.app.current_mode]
        for command in here + elsewhere:
            yield DiscoveryHit(command.title, partial(run_screen_action, self.app, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), partial(run_screen_action, self.app, command),
                          help=command.help)
