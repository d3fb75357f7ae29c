import json

import pytest
from textual.widgets import Select, Static

from prefstudio import labels
from prefstudio.cli import build_parser
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.labels import chosen_shown_as
from prefstudio.tui.label_screen import DEFAULT_GUIDELINES, LabelScreen, RecentDecisions
from prefstudio.tui.pair_view import PairScreen
from prefstudio.tui.widgets import PlainTextTable, WorkspaceHeader
from tests.pilot_helpers import settle

ANNOTATOR = "ana"


@pytest.fixture
def ws(ws):
    records = [
        RawPair(f"prompt {i}", f"chosen answer {i}", f"rejected answer {i}", f"line {i}",
                source="a" if i % 2 else "b", split="train")
        for i in range(1, 21)
    ]
    records[5] = RawPair("[bold]six[/bold]", "\x1b[31mred chosen\x1b[0m", "rejected 6", "line 6", source="b",
                         split="train")
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    return ws


async def open_label_screen(pilot) -> LabelScreen:
    await settle(pilot)
    await pilot.press("f2")
    await settle(pilot)
    assert isinstance(pilot.app.screen, LabelScreen)
    return pilot.app.screen


def shown(screen, box_id: str) -> str:
    return screen.query_one(f"#{box_id}-text", Static).visual.plain


def line(screen, static_id: str) -> str:
    return screen.query_one(f"#{static_id}", Static).visual.plain


def shown_pair(screen) -> int | None:
    return screen.pair.id if screen.pair is not None else None


def annotation_rows(ws) -> list[tuple]:
    return ws.con.execute(
        "SELECT pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, extra FROM annotations ORDER BY id"
    ).fetchall()


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_level_keys_flip_skip_and_undo(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown_pair(screen) == 1
        assert shown(screen, "prompt") == "prompt 1"
        assert shown(screen, "left") == "chosen answer 1" and shown(screen, "right") == "rejected answer 1"
        assert line(screen, "counts") == "done 0 · skipped 0 · left 20 of 20"

        await pilot.press("3")
        await settle(pilot)
        assert annotation_rows(ws) == [(1, "human", ANNOTATOR, "label", 2, False, pytest.approx(2 / 3), None)]
        assert shown_pair(screen) == 2
        assert line(screen, "counts") == "done 1 · skipped 0 · left 19 of 20"

        assert "✓ left (chosen)" in line(screen, "direction") and "✓ right" not in line(screen, "direction")
        await pilot.press("f")
        assert "✓ right (rejected)" in line(screen, "direction")  # said in text, not only by colour
        assert screen.query_one("#right").has_class("-better")
        await pilot.press("4")
        await settle(pilot)
        assert annotation_rows(ws)[-1] == (2, "human", ANNOTATOR, "label", 3, True, -1.0, None)
        assert shown_pair(screen) == 3
        assert screen.right_better is False  # the toggle is for one label only

        await pilot.press("s")
        await settle(pilot)
        assert annotation_rows(ws)[-1][:4] == (3, "human", ANNOTATOR, "skip")
        assert labels.queue_page(ws.con, ANNOTATOR, "skipped") == [3]
        assert shown_pair(screen) == 4
        assert line(screen, "counts") == "done 2 · skipped 1 · left 17 of 20"

        await pilot.press("u")
        await settle(pilot)
        assert [row[0] for row in annotation_rows(ws)] == [1, 2]
        assert shown_pair(screen) == 3
        assert "undone: skipped on pair 3" in notifications(app)
        await pilot.press("u")
        await settle(pilot)
        assert [row[0] for row in annotation_rows(ws)] == [1]
        assert shown_pair(screen) == 2

        await pilot.press("f", "1")  # level 0 has no direction, whatever the toggle says
        await settle(pilot)
        assert annotation_rows(ws)[-1] == (2, "human", ANNOTATOR, "label", 0, False, 0.0, None)
        assert shown_pair(screen) == 3  # back to where the queue was


async def test_quitting_and_reopening_resumes_at_the_first_undecided_pair(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_label_screen(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("q")
    assert [row[0] for row in annotation_rows(ws)] == [1, 2, 3]

    again = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with again.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown_pair(screen) == 4
        assert line(screen, "counts") == "done 2 · skipped 1 · left 17 of 20"
        recent = screen.query_one(RecentDecisions)
        assert [row[0] for row in recent.rows] == ["3", "2", "1"]
        assert recent.rows[1][1] == "skipped"

    other = PrefstudioApp(ws, annotator="ben")  # someone else starts from the beginning
    async with other.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown_pair(screen) == 1


async def test_recent_decision_comes_back_to_be_relabelled(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        for key in "234":
            await pilot.press(key)
            await settle(pilot)
        assert shown_pair(screen) == 4
        recent = screen.query_one(RecentDecisions)
        recent.focus()
        recent.move_cursor(2)  # newest first: pair 1
        await pilot.press("enter")
        await settle(pilot)
        assert shown_pair(screen) == 1
        assert "out of queue order" in line(screen, "status")
        assert "your last decision: 1 · Slightly better, left better" in line(screen, "status")
        await pilot.press("f", "3")
        await settle(pilot)
        assert shown_pair(screen) == 4  # the walk goes on where it was
        assert [row[0] for row in annotation_rows(ws)] == [1, 2, 3, 1]  # a new row; the old one stays
        latest = labels.latest_decision(ws.con, 1, ANNOTATOR)
        assert (latest.level, latest.flip) == (2, True)
        assert line(screen, "counts") == "done 3 · skipped 0 · left 17 of 20"


async def test_queues_and_filters(ws):
    labels.add_label(ws.con, 2, ANNOTATOR, 1, False, ws.config.margins)
    labels.add_label(ws.con, 2, "ben", 0, False, ws.config.margins)
    labels.add_skip(ws.con, 5, ANNOTATOR)
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown_pair(screen) == 1
        screen.query_one("#label-pairs-source", Select).value = "b"  # even ids
        await settle(pilot)
        assert shown_pair(screen) == 4  # 2 is labelled
        assert line(screen, "counts") == "done 1 · skipped 0 · left 9 of 10"
        screen.query_one("#label-pairs-source", Select).clear()
        screen.query_one("#queue", Select).value = "mine"
        await settle(pilot)
        assert shown_pair(screen) == 2
        assert "your last decision: 1 · Slightly better, left better" in line(screen, "status")
        await pilot.press("4")  # relabel in the 'mine' queue: it stays there; the walk wraps round to it
        await settle(pilot)
        assert shown_pair(screen) == 2
        screen.query_one("#queue", Select).value = "skipped"
        await settle(pilot)
        assert shown_pair(screen) == 5
        await pilot.press("2")
        await settle(pilot)
        assert shown_pair(screen) is None
        assert line(screen, "status") == "nothing left in the skipped queue for these filters"
        await pilot.press("3")  # nothing shown: nothing stored
        await settle(pilot)
        assert len(annotation_rows(ws)) == 5
        screen.query_one("#queue", Select).value = "disagreements"
        await settle(pilot)
        assert shown_pair(screen) == 2  # ana's latest says level 3, ben's level 0


def blind_seed_for(pair_id: int, side: str) -> int:
    return next(seed for seed in range(100) if chosen_shown_as(seed, pair_id) == side)


async def test_blind_mode_hides_the_chosen_response_until_saved(ws):
    ws.config.annotation.blind = True
    ws.config.annotation.blind_seed = blind_seed_for(1, "B")
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown_pair(screen) == 1
        assert screen.query_one("#left").border_title == "A" and screen.query_one("#right").border_title == "B"
        assert shown(screen, "right") == "chosen answer 1"  # chosen shown as B...
        said = [line(screen, i) for i in ("status", "direction", "counts")] + [str(screen.query_one("#prompt").border_title)]
        assert not any("chosen" in text for text in said)  # ...and nothing on screen says so
        assert not any("chosen" in text for text in notifications(app))

        await pilot.press("f", "4")  # B is better
        await settle(pilot)
        pair_id, _, _, outcome, level, flip, margin, extra = annotation_rows(ws)[-1]
        assert (pair_id, outcome, level, flip, margin) == (1, "label", 3, False, 1.0)
        assert json.loads(extra) == {"blind": True, "chosen_shown_as": "B"}
        assert "pair 1: the chosen response was B · not a flip" in notifications(app)
        assert screen.query_one(RecentDecisions).rows[0] == ("1", "3 · Distinctly superior", "B")

        await pilot.press("b")  # normal mode: left is the chosen one again
        assert screen.query_one("#left").border_title == "left · chosen"
        assert shown(screen, "left") == "chosen answer 2"
        await pilot.press("2")
        await settle(pilot)
        assert annotation_rows(ws)[-1][-1] is None  # no blind mapping stored


async def test_annotator_override_and_default(ws):
    assert build_parser().parse_args(["open", "somewhere", "--annotator", "carla"]).annotator == "carla"
    app = PrefstudioApp(ws, annotator="carla")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert line(screen, "annotator") == "labelling as carla · a changes"
        await pilot.press("3")
        await settle(pilot)
    ws.config.annotation.annotator = "from-config"
    app = PrefstudioApp(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert line(screen, "annotator") == "labelling as from-config · a changes"
        assert shown_pair(screen) == 1
        await pilot.press("2")
        await settle(pilot)
    assert [row[2] for row in annotation_rows(ws)] == ["carla", "from-config"]


async def test_label_a_pair_from_the_pair_view(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        assert shown_pair(screen) == 6
        assert shown(screen, "prompt") == "[bold]six[/bold]"
        assert shown(screen, "left") == "\u241b[31mred chosen\u241b[0m"
        await pilot.press("2")
        await settle(pilot)
        assert annotation_rows(ws)[-1][:5] == (6, "human", ANNOTATOR, "label", 1)
        assert shown_pair(screen) == 1
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)  # browsing kept its place


async def test_guidelines_file_is_made_and_shown(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        path = ws.path / ws.config.annotation.guidelines
        assert path.read_text() == DEFAULT_GUIDELINES
        assert shown(screen, "guidelines") == DEFAULT_GUIDELINES
    path.write_text("[b]ours[/b]: be strict")
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        assert shown(screen, "guidelines") == "[b]ours[/b]: be strict"


async def test_every_screen_shows_the_level_names_and_navigation_keys(ws):
    app = PrefstudioApp(ws, annotator=ANNOTATOR)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_label_screen(pilot)
        legend = line(screen, "legend")
        for name in ("Negligibly better / unsure", "Slightly better", "More effective", "Distinctly superior"):
            assert name in legend
        footer = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        assert {"1", "2", "3", "4", "f", "s", "u", "b", "e", "q", "question_mark"} <= footer
        for key in ("f3", "f4", "f1"):  # the header, not the footer, shows the screens' keys
            await pilot.press(key)
            await settle(pilot)
            footer = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
            assert {"q", "question_mark"} <= footer and not footer & {"f1", "f2", "f3", "f4"}
            tabs = app.screen.query_one(WorkspaceHeader).render().plain
            assert all(f"F{n} " in tabs for n in range(1, 8))
