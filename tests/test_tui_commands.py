"""The app explains itself: the palette's commands, `?` per screen, screens without F-keys."""

import pytest
from textual.command import CommandPalette
from textual.widgets import HelpPanel, Input, Static

from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.browser import BrowserScreen
from prefstudio.tui.commands import screen_actions
from prefstudio.tui.help_panel import ScreenHelp, screen_keys
from prefstudio.tui.jobs_screen import JobsScreen
from prefstudio.tui.launch_form import NewJobForm
from prefstudio.tui.label_screen import LabelScreen
from prefstudio.tui.widgets import WorkspaceHeader
from tests.pilot_helpers import settle


@pytest.fixture
def app(ws):
    records = [RawPair(f"prompt {i}", f"chosen {i}", f"rejected {i}", f"line {i}", source="s") for i in range(1, 21)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="s", records=records))
    return PrefstudioApp(ws)


async def palette_titles(pilot, query: str) -> list[str]:
    """What the command palette offers for `query`, once its search has finished."""
    await pilot.press("ctrl+p")
    await settle(pilot)
    palette = pilot.app.screen
    assert isinstance(palette, CommandPalette)
    await pilot.press(*query)
    titles: list[str] = []
    for _ in range(200):  # the palette searches in a task of its own: wait for its hits to be listed
        await pilot.pause(0.02)
        titles = [str(getattr(option.prompt, "plain", option.prompt)).split("\n")[0]
                  for option in palette.query_one("CommandList").options]
        if any(query.split()[0] in t.lower() for t in titles):
            break
    return titles


def test_every_screen_and_every_shown_key_is_a_command(ws):
    app = PrefstudioApp(ws)
    commands = list(screen_actions(app))
    titles = {c.title for c in commands}
    assert {f"Go to {title}" for _, _, title in app.NAVIGATION} <= titles
    assert "Jobs: New job" in titles and "Jobs: Score on test" in titles and "Label: Blind" in titles
    assert "Evaluate: Label outlier" in titles and "Browse: Search" in titles
    new_job = next(c for c in commands if c.title == "Jobs: New job")
    assert (new_job.mode, new_job.action, new_job.help) == ("jobs", "new_job", "key n on Jobs")


async def test_the_palette_finds_a_command_on_another_screen_and_runs_it_there(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        titles = await palette_titles(pilot, "new job")
        assert "Jobs: New job" in titles, titles
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "jobs"
        assert isinstance(app.screen, NewJobForm)  # the action ran on the Jobs screen: its form is open


async def test_question_mark_shows_the_screen_purpose_and_keys_and_esc_closes_it(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        label = app.screen
        assert isinstance(label, LabelScreen)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, ScreenHelp)
        purpose = app.screen.query_one(".purpose", Static).visual.plain
        assert purpose == LabelScreen.PURPOSE
        keys = dict(screen_keys(label))
        assert keys["f"] == "Flip" and keys["u"] == "Undo" and "1" in keys
        assert "q" not in keys  # the app's keys are listed apart, after the screen's
        assert "tab" not in keys and "super+c" not in keys  # Textual's own focus and copy keys are not the screen's
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is label


async def test_screens_switch_by_alt_digit_and_digit_but_not_where_digits_are_the_screens_keys(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("alt+5")
        await settle(pilot)
        assert app.current_mode == "jobs" and isinstance(app.screen, JobsScreen)
        await pilot.press("1")
        await settle(pilot)
        assert app.current_mode == "browse" and isinstance(app.screen, BrowserScreen)
        await pilot.press("2")
        await settle(pilot)
        assert app.current_mode == "label"
        await pilot.press("6")  # on Label, digits are levels: 6 is not a screen key here
        await settle(pilot)
        assert app.current_mode == "label"
        await pilot.press("alt+6")
        await settle(pilot)
        assert app.current_mode == "eval"


async def test_a_digit_typed_in_a_text_box_stays_there(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "3")
        await settle(pilot)
        assert app.current_mode == "browse"
        assert app.screen.query_one("#search", Input).value == "3"


async def test_header_tabs_take_clicks(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(WorkspaceHeader)
        start = next(x for x in range(header.size.width) if header.mode_at(x) == "jobs")
        await pilot.click(WorkspaceHeader, offset=(start + 1 + header.styles.padding.left, 0))
        await settle(pilot)
        assert app.current_mode == "jobs"


async def test_footer_leaves_out_the_f_keys_and_ctrl_c_quits(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        shown = {key for key, active in app.screen.active_bindings.items() if active.binding.show}
        assert not shown & {f"f{n}" for n in range(1, 8)}
        assert {"q", "question_mark", "n"} <= shown
        quit_key = next(k for k in app.screen.query("FooterKey") if k.key == "q")
        assert quit_key.region.width > 0 and quit_key.region.right <= 100  # q Quit fits at 100 columns
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code in (0, None) and not app.is_running


async def test_esc_closes_the_keys_panel_and_otherwise_reaches_the_screen(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.action_show_help_panel()
        await settle(pilot)
        assert app.screen.query(HelpPanel)
        await pilot.press("escape")
        await settle(pilot)
        assert not app.screen.query(HelpPanel)
        await pilot.press("slash", "x")
        await settle(pilot)
        await pilot.press("escape")  # the Browse screen's own esc: clear the search
        await settle(pilot)
        assert app.screen.query_one("#search", Input).value == ""


async def test_the_help_lists_the_screens_own_keys_before_its_tables(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        keys = [key for key, _ in screen_keys(app.screen)]
        assert keys[:5] == ["n", "w", "c", "r", "e"]  # New job ... Score on test
        assert "↓" in keys[5:]  # the job table's moves after them
