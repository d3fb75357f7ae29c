"""A pair with a 50 MB response: the app shows its start and its size, and `o` hands all of it to $PAGER."""

import hashlib
import os
import tempfile
import time

import pytest
from textual.drivers.headless_driver import HeadlessDriver
from textual.widgets import Static

from prefstudio import browse
from prefstudio.evaluate import compare, predictions
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.label_screen import LabelScreen
from prefstudio.tui.pair_view import PairScreen
from prefstudio.tui.widgets import PlainTextTable
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs, store_model
from tests.pilot_helpers import settle

HUGE = "x " * 25_000_000  # 50 MB: pair 1's chosen response
HUGE_SHA = hashlib.sha256(HUGE.encode()).hexdigest()
ROOM = 200  # what a cut text's box may hold beyond SHOWN_CHARS: the "… MB more" line
MORE = f"\n… {browse.size_text(len(HUGE) - browse.SHOWN_CHARS)} more, o opens it in "  # 32 KB shown: 50.0 MB more


@pytest.fixture(scope="module")
def huge_ws(tmp_path_factory):
    """One workspace for the module: a 50 MB import is a second and 600 MB of the ingest's peak memory."""
    ws = Workspace.init(tmp_path_factory.mktemp("huge") / "ws")
    records = [RawPair("a short prompt", HUGE, "a short rejected", "line 1")]
    records += [RawPair(f"prompt {i}", f"chosen {i}", f"rejected {i}", f"line {i}") for i in range(2, 5)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    yield ws
    ws.close()


@pytest.fixture
def pager(tmp_path, monkeypatch):
    """$PAGER is a real program that copies the file it is given (and names it) and exits.

    The headless test driver has no terminal to hand over, so it says it can suspend and
    does nothing when it does: App.suspend's own code (signals, redirects, resume) still runs.
    """
    copy, named = tmp_path / "paged.txt", tmp_path / "paged-path.txt"
    script = tmp_path / "pager.sh"
    script.write_text(f'#!/bin/sh\nprintf %s "$1" > "{named}"\ncp "$1" "{copy}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PAGER", str(script))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a temporary file left behind stays in the test's folder
    monkeypatch.setattr(HeadlessDriver, "can_suspend", property(lambda self: True), raising=False)
    monkeypatch.setattr(HeadlessDriver, "suspend_application_mode", lambda self: None, raising=False)
    monkeypatch.setattr(HeadlessDriver, "resume_application_mode", lambda self: None, raising=False)
    return copy, named


def shown(screen, box_id: str) -> str:
    return screen.query_one(f"#{box_id}-text", Static).visual.plain


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def wait_for(pilot, done, what: str, deadline_s: float = 60.0) -> None:
    """Let the app run until `done()` holds; fail after a generous deadline."""
    end = time.monotonic() + deadline_s
    while not done():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        await pilot.pause(0.05)


def file_sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_50_mb_response_shows_its_start_and_o_opens_all_of_it_in_the_pager(huge_ws, pager):
    copy, named = pager
    app = PrefstudioApp(huge_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(PlainTextTable)
        assert len(table.rows[0][6]) == browse.PREVIEW_CHARS  # the browser's cell: a preview cut in SQL
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PairScreen)
        chosen = shown(screen, "chosen")
        assert chosen.endswith(MORE + os.environ["PAGER"]) and " MB more" in MORE
        assert chosen.startswith("x x x ")
        assert browse.SHOWN_CHARS < len(chosen) <= browse.SHOWN_CHARS + ROOM
        assert shown(screen, "rejected") == "a short rejected"  # a text that fits is shown whole, no line
        footer = {b.binding.key: b.binding.description for b in app.active_bindings.values() if b.binding.show}
        assert footer.get("o") == "Pager"

        await pilot.press("o")
        await wait_for(pilot, lambda: copy.exists() and copy.stat().st_size == len(HUGE), "the pager's copy")
        assert file_sha(copy) == HUGE_SHA
        temporary = named.read_text()
        await wait_for(pilot, lambda: not os.path.exists(temporary), "the temporary file to be removed")

        assert app.is_running and app.screen is screen
        await pilot.press("n")  # still answers keys
        await settle(pilot)
        assert shown(screen, "chosen") == "chosen 2"
        assert "o" in {b.binding.key for b in app.active_bindings.values() if b.binding.show}


async def test_o_on_a_pair_that_fits_opens_the_focused_text(huge_ws, pager):
    copy, _ = pager
    app = PrefstudioApp(huge_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(2)
        await pilot.press("enter")
        await settle(pilot)
        app.screen.query_one("#rejected").focus()
        await pilot.press("o")
        await wait_for(pilot, copy.exists, "the pager's copy")
        await wait_for(pilot, lambda: copy.read_text() == "rejected 3", "the whole copy")


async def test_the_labelling_screen_cuts_the_50_mb_response_and_opens_it_whole(huge_ws, pager):
    copy, _ = pager
    app = PrefstudioApp(huge_ws, annotator="ana")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LabelScreen) and screen.pair.id == 1
        left = shown(screen, "left")  # not blind: the chosen response is on the left
        assert MORE in left
        assert len(left) <= browse.SHOWN_CHARS + ROOM
        screen.query_one("#prompt").focus()  # the prompt is whole: o opens the text that was cut
        await pilot.press("o")
        await wait_for(pilot, lambda: copy.exists() and copy.stat().st_size == len(HUGE), "the pager's copy")
        assert file_sha(copy) == HUGE_SHA
        assert app.is_running and app.screen is screen


async def test_without_a_pager_o_says_so_and_fetches_nothing(huge_ws, tmp_path, monkeypatch):
    monkeypatch.delenv("PAGER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no less on it
    app = PrefstudioApp(huge_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        said = notifications(app)
        assert any("$PAGER is not set and less is not installed" in n for n in said), said
        assert not any(w.group == "pager" for w in app.workers)
        assert app.is_running and isinstance(app.screen, PairScreen)


async def test_a_pager_that_cannot_run_is_one_notification_and_the_file_is_removed(huge_ws, tmp_path, monkeypatch):
    monkeypatch.setenv("PAGER", str(tmp_path / "no-such-pager"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(HeadlessDriver, "can_suspend", property(lambda self: True), raising=False)
    monkeypatch.setattr(HeadlessDriver, "suspend_application_mode", lambda self: None, raising=False)
    monkeypatch.setattr(HeadlessDriver, "resume_application_mode", lambda self: None, raising=False)
    app = PrefstudioApp(huge_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: any("cannot run pager" in n for n in notifications(app)), "the notification")
        assert not list(tmp_path.glob("prefstudio-pair-*"))
        assert app.is_running and isinstance(app.screen, PairScreen)


def test_eval_outliers_fetch_only_the_start_of_each_text(ws):
    ids = add_pairs(ws.con, {"alpha": 8})
    store_model(ws.con, "a", ids["alpha"], [0.0, 0.1, 0.2, 0.3, 0.1, 0.2, 9.0, -7.0], name="a")
    ws.con.execute("UPDATE pairs SET chosen = repeat('y ', 1000000) WHERE id = ?", [ids["alpha"][6]])
    (result,) = compare.compare(ws.con, predictions.scored_models(ws.con, "test")).results
    found = compare.outlier_pairs(ws.con, result)
    assert found[0].pair_id == ids["alpha"][6] and found[0].chosen == "y " * 1000
