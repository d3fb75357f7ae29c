from datetime import datetime

import pytest
from textual.widgets import Input, Select, Static

from prefstudio.browse import AnnotationRow
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp, run_app
from prefstudio.tui.browser import BrowserScreen
from prefstudio.tui.pair_view import PairScreen, annotations_text
from prefstudio.tui.widgets import PlainTextTable
from prefstudio.workspace import Workspace
from tests.pilot_helpers import settle

SOURCES = ("a", "b", "c")  # pair i is in SOURCES[(i - 1) % 3]: 84, 83, 83 of 250
MARKUP = "[bold]markup[/bold] and \x1b[31mred\x1b[0m"


def texts(i: int) -> tuple[str, str, str]:
    if i == 42:
        return "a prompt with [red]colour[/red]", f"{MARKUP} chosen", "plain rejected 42"
    if i in (77, 201):
        return f"prompt {i}", f"this one has a Needle\nin it ({i})", f"rejected {i}"
    return f"prompt {i}\nsecond line", f"chosen answer {i}", f"rejected answer {i}"


@pytest.fixture
def app(ws):
    records = [
        RawPair(*texts(i), f"line {i}", source=SOURCES[(i - 1) % 3], split="test" if i % 5 == 0 else "train",
                meta={"row": i})
        for i in range(1, 251)
    ]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    ws.con.execute(
        "INSERT INTO annotations (id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin) "
        "VALUES (1, 42, 'human', 'alice', 'label', 3, false, 1.0), "
        "(2, 43, 'llm', 'judge', 'parse_error', NULL, true, NULL)"
    )
    return PrefstudioApp(ws)


def status(app) -> str:
    return str(app.screen.query_one("#status", Static).content)


def table_ids(app) -> list[int]:
    return app.screen.query_one(PlainTextTable).keys


def cursor_id(app) -> int:
    return app.screen.query_one(PlainTextTable).cursor_key


def shown(app, box_id: str) -> str:
    """The text a pair screen box renders, after Textual has turned it into its own content."""
    return app.screen.query_one(f"#{box_id}-text", Static).visual.plain


async def test_first_page_header_status_and_footer(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert app.summary == "ws · 250 pairs · a 84 · b 83 · c 83"
        assert table_ids(app) == list(range(1, 101))
        assert status(app) == "pairs 1–100 of 250 · page 1 of 3"
        table = app.screen.query_one(PlainTextTable)
        shown_42 = "[bold]markup[/bold] and \u241b[31mred\u241b[0m chosen"
        assert table.rows[41] == ("42", "c", "train", "1", "", "a prompt with [red]colour[/red]", shown_42,
                                  "plain rejected 42")
        assert table.rows[0][5] == "prompt 1 second line"
        assert table.rows[1][3] == ""
        header = table.render_line(0).text
        assert header.split() == ["id", "source", "split", "annot.", "data", "prompt", "chosen", "rejected"]
        table.move_cursor(41)  # scrolls row 42 into view
        lines = [table.render_line(y).text for y in range(1, table.size.height)]
        line = next(line for line in lines if line.split()[0] == "42")
        assert "a prompt with [red…" in line and "[bold]markup[/bold…" in line
        footer = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        assert {"n", "p", "slash", "escape", "enter", "q", "question_mark"} <= footer
        assert not footer & {"g", "G"}  # first and last page: in the ? panel, so the footer fits 100 columns


async def test_page_keys(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert table_ids(app) == list(range(101, 201))
        assert status(app) == "pairs 101–200 of 250 · page 2 of 3"
        await pilot.press("n")
        await settle(pilot)
        assert status(app) == "pairs 201–250 of 250 · page 3 of 3"
        await pilot.press("n")  # no page after the last
        await settle(pilot)
        assert table_ids(app) == list(range(201, 251))
        await pilot.press("p")
        await settle(pilot)
        assert table_ids(app) == list(range(101, 201))
        await pilot.press("g")
        await settle(pilot)
        assert status(app) == "pairs 1–100 of 250 · page 1 of 3"
        await pilot.press("p")  # no page before the first
        await settle(pilot)
        assert table_ids(app)[0] == 1
        await pilot.press("G")
        await settle(pilot)
        assert status(app) == "pairs 201–250 of 250 · page 3 of 3"
        assert cursor_id(app) == 250


async def test_cursor_runs_onto_the_next_and_previous_page(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(99)
        await pilot.press("down")
        await settle(pilot)
        assert status(app) == "pairs 101–200 of 250 · page 2 of 3"
        assert cursor_id(app) == 101
        await pilot.press("up")
        await settle(pilot)
        assert status(app) == "pairs 1–100 of 250 · page 1 of 3"
        assert cursor_id(app) == 100


async def test_source_split_and_label_filters(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one("#source", Select).value = "b"
        await settle(pilot)
        assert table_ids(app) == list(range(2, 251, 3))
        assert status(app) == "pairs 1–83 of 83 · page 1 of 1"
        app.screen.query_one("#split", Select).value = "test"
        await settle(pilot)
        assert table_ids(app) == [i for i in range(2, 251, 3) if i % 5 == 0]
        app.screen.query_one("#split", Select).clear()
        app.screen.query_one("#source", Select).value = "c"
        app.screen.query_one("#label-state", Select).value = "labelled"
        await settle(pilot)
        assert table_ids(app) == [42]
        assert status(app) == "pairs 1–1 of 1 · page 1 of 1"
        app.screen.query_one("#source", Select).clear()
        app.screen.query_one("#label-state", Select).value = "unlabelled"
        await settle(pilot)
        assert status(app) == "pairs 1–100 of 249 · page 1 of 3"  # 43's parse error is no label
        app.screen.query_one("#label-state", Select).value = "labelled"
        app.screen.query_one("#source", Select).value = "a"
        await settle(pilot)
        assert table_ids(app) == []
        assert status(app) == "no pairs match"


async def test_search_applies_on_enter_and_escape_clears_it(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"needle")  # typing 'n' in the box is not 'next page'
        await settle(pilot)
        assert status(app) == "pairs 1–100 of 250 · page 1 of 3"
        await pilot.press("enter")
        await settle(pilot)
        assert table_ids(app) == [77, 201]
        assert status(app) == "pairs 1–2 of 2 · page 1 of 1"
        assert isinstance(app.focused, PlainTextTable)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.query_one("#search", Input).value == ""
        assert status(app) == "pairs 1–100 of 250 · page 1 of 3"


async def test_pages_of_a_search(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"ANSWER", "enter")  # all but 42, 77 and 201
        await settle(pilot)
        await pilot.press("G")
        await settle(pilot)
        assert status(app) == "pairs 201–247 of 247 · page 3 of 3"
        assert table_ids(app)[0] == 204 and table_ids(app)[-1] == 250 and 201 not in table_ids(app)
        await pilot.press("p")
        await settle(pilot)
        assert status(app) == "pairs 101–200 of 247 · page 2 of 3"
        assert table_ids(app)[0] == 103 and table_ids(app)[-1] == 203


async def test_search_for_like_metacharacters(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"[/", "enter")
        await settle(pilot)
        assert table_ids(app) == [42]
        await pilot.press("slash", "ctrl+a", "ctrl+k", "%", "enter")
        await settle(pilot)
        assert status(app) == "no pairs match"


async def test_open_pair_shows_exact_texts_and_annotations(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(76)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)
        assert shown(app, "prompt") == "prompt 77"
        assert shown(app, "chosen") == "this one has a Needle\nin it (77)"
        assert shown(app, "rejected") == "rejected 77"
        assert shown(app, "annotations") == "no annotations yet"
        assert "meta.row: 77" in shown(app, "metadata")
        assert "source: b" in shown(app, "metadata")
        await pilot.press("p")
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 76\nsecond line"
        await pilot.press("k")
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 75\nsecond line"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert cursor_id(app) == 75


async def test_markup_and_escapes_show_literally(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(41)
        await pilot.press("enter")
        await settle(pilot)
        assert shown(app, "prompt") == "a prompt with [red]colour[/red]"
        assert shown(app, "chosen") == "[bold]markup[/bold] and \u241b[31mred\u241b[0m chosen"
        annotations = shown(app, "annotations")
        assert annotations.startswith("human:alice  3 · Distinctly superior · margin 1.00 · ")


async def test_pair_steps_follow_the_filter_and_the_browser_follows_back(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one("#source", Select).value = "c"  # 3, 6, ..., 249: 83 pairs
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(82)
        await pilot.press("enter")
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 249\nsecond line"
        await pilot.press("n")  # nothing after the last
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 249\nsecond line"
        await pilot.press("p")
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 246\nsecond line"
        await pilot.press("j")
        await settle(pilot)
        assert shown(app, "prompt") == "prompt 249\nsecond line"
        await pilot.press("escape")
        await settle(pilot)
        app.screen.query_one("#source", Select).clear()
        await settle(pilot)
        app.screen.query_one(PlainTextTable).move_cursor(99)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert shown(app, "rejected") == "rejected answer 101"
        await pilot.press("escape")  # pair 101 is on page 2: the browser goes there
        await settle(pilot)
        assert status(app) == "pairs 101–200 of 250 · page 2 of 3"
        assert cursor_id(app) == 101


async def test_a_margin_that_came_with_the_data_is_shown_in_the_list_and_the_pair(app):
    app.ws.con.execute(
        "INSERT INTO annotations (id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, value) "
        "VALUES (3, 7, 'data', 'alpaca-eval/weighted_alpaca_eval_gpt4_turbo', 'label', 3, false, 1.0, 0.8213)"
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(PlainTextTable)
        assert table.rows[6][3:5] == ("1", "0.82 → 3")
        assert table.rows[7][4] == ""
        table.move_cursor(6)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)
        assert shown(app, "annotations").startswith(
            "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo  data 0.82 → 3 · Distinctly superior · margin 1.00")


def test_annotations_name_the_level_or_the_outcome():
    when = datetime(2024, 5, 1, 9, 30)
    shown = annotations_text([
        AnnotationRow(1, "llm", "judge", "label", 1, True, 0.33333, when),
        AnnotationRow(2, "llm", "judge", "parse_error", None, False, None, when),
    ]).plain
    assert shown.splitlines() == [
        "llm:judge  1 · Slightly better · flip · margin 0.33 · 2024-05-01 09:30",
        "llm:judge  parse_error · 2024-05-01 09:30",
    ]


def test_run_app_on_a_busy_workspace_prints_one_line_and_returns_2(tmp_path, capsys):
    Workspace.init(tmp_path / "held").close()
    with Workspace.open(tmp_path / "held"):
        assert run_app(tmp_path / "held") == 2
    err = capsys.readouterr().err
    assert err.startswith("prefstudio: error: ") and "in use by prefstudio process" in err
    assert err.count("\n") == 1


def test_run_app_on_a_missing_workspace(tmp_path, capsys):
    assert run_app(tmp_path / "nope") == 2
    assert capsys.readouterr().err.startswith("prefstudio: error: ")
