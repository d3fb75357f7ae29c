"""A failed query worker is one notification from the app's one handler; an interrupted one is nothing."""

import logging

import duckdb

from prefstudio import agreement, browse
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.label_screen import LabelScreen


async def until(pilot, condition, what: str) -> None:
    """Pause until `condition()`; not pilot_helpers.settle, whose wait on a worker re-raises its error."""
    for _ in range(200):
        await pilot.pause(0.02)
        if condition():
            return
    raise AssertionError(f"never: {what}")


def notes(app) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


def broken(*args, **kwargs):
    raise duckdb.CatalogException("Catalog Error: Table with name pairs does not exist!\nLINE 1: SELECT ...")


async def test_a_failed_worker_of_the_app_is_one_notification_and_a_log_line(ws, monkeypatch, caplog):
    monkeypatch.setattr(browse, "source_counts", broken)  # the header's summary
    app = PrefstudioApp(ws)
    with caplog.at_level(logging.ERROR, logger="prefstudio.tui.app"):
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: any(t == "query failed" for t, _ in notes(app)), "a notification")
            await pilot.pause(0.1)
            assert notes(app) == [("query failed", "Catalog Error: Table with name pairs does not exist!")]
            assert app.is_running  # not the end of the app
    assert "worker _load_summary failed" in caplog.text and "LINE 1" in caplog.text  # the whole error, logged


async def test_a_failed_worker_of_a_screen_reaches_the_same_handler(ws, monkeypatch):
    monkeypatch.setattr(agreement, "annotators", broken)
    app = PrefstudioApp(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await until(pilot, lambda: notes(app), "a notification")
        assert notes(app) == [("query failed", "Catalog Error: Table with name pairs does not exist!")]


async def test_a_failed_step_frees_the_labelling_screen(ws, monkeypatch):
    import_pairs(ws, RecordsReader("t", "test", "t", [RawPair("p", "c", "r", "line 1")]))
    real = browse.get_pair
    calls = []

    def fails_once(con, pair_id):
        calls.append(pair_id)
        if len(calls) == 1:
            raise duckdb.IOException("IO Error: disk gone")
        return real(con, pair_id)

    monkeypatch.setattr(browse, "get_pair", fails_once)
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        await until(pilot, lambda: notes(app), "a notification")
        assert notes(app) == [("query failed", "IO Error: disk gone")]
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen._pending is None, "the screen to stop waiting")
        screen.show_pair(1)  # and it takes the next step
        await until(pilot, lambda: screen.pair is not None, "the pair")


async def test_an_interrupted_query_is_not_a_failure(ws, monkeypatch):
    def interrupted(*args, **kwargs):
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(browse, "source_counts", interrupted)
    app = PrefstudioApp(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: not [w for w in app.workers if w.group == "summary"], "the summary worker to end")
        await pilot.pause(0.1)
        assert notes(app) == []
