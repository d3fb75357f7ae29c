"""Issue 17, item 7: one naming of the levels, visible focus, undo and relabel, disagreements, the way back
from a label, the annotator's name, and the demo's hidden ground truth."""

import pytest
from textual.widgets import Input, Select, Static

from prefstudio import labels
from prefstudio.cli import build_parser
from prefstudio.cli.main import main
from prefstudio.config import MarginConfig
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.agreement_screen import AgreementScreen
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.eval_screen import EvalScreen
from prefstudio.tui.help_panel import screen_keys
from prefstudio.tui.jobs_screen import JobTable
from prefstudio.tui.label_screen import LabelScreen, RecentDecisions
from prefstudio.tui.pair_view import PairScreen
from tests.eval_helpers import add_pairs, store_model
from tests.pilot_helpers import open_screen, settle

MARGINS = MarginConfig()


@pytest.fixture
def ws(ws):
    records = [RawPair(f"prompt {i}", f"chosen answer {i}", f"rejected answer {i}", f"line {i}", source="a",
                       split="train", meta={"gt_level": 3, "gt_flip": i == 2, "kind": "demo"} if i <= 2 else None)
               for i in range(1, 13)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    return ws


def line(screen, static_id: str) -> str:
    return screen.query_one(f"#{static_id}", Static).visual.plain


def shown_pair(screen) -> int | None:
    return screen.pair.id if screen.pair is not None else None


async def label_screen(pilot) -> LabelScreen:
    screen = await open_screen(pilot, "f2")
    assert isinstance(screen, LabelScreen)
    return screen


async def test_every_screen_and_command_names_a_level_the_same_way(ws, tmp_path, capsys):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await label_screen(pilot)
        legend = line(screen, "legend")
        for key, level in (("1", 0), ("2", 1), ("3", 2), ("4", 3)):
            assert f" {key}  {labels.level_label(level)}" in legend
        assert ("4", "3 · Distinctly superior") in screen_keys(screen)  # the ? panel
        assert max(len(row) for row in legend.splitlines()) <= 98  # items wrap whole at 100 columns
        await pilot.press("4")
        await settle(pilot)
        assert screen.query_one(RecentDecisions).rows[0] == ("1", "3 · Distinctly superior", "left")
        labels.add_label(ws.con, 1, "bo", 1, False, MARGINS)
        agreement = await open_screen(pilot, "f4")
        assert isinstance(agreement, AgreementScreen)
        agreement.query_one("#a", Select).value = "human:ana"
        agreement.query_one("#b", Select).value = "human:bo"
        await settle(pilot)
        rows = line(agreement, "confusion").splitlines()
        assert rows[4].startswith("3 · Distinctly superior") and rows[4].split()[-4:] == ["0", "1", "0", "0"]
    ws.close()  # the command opens it itself
    assert main(["agreement", str(ws.path), "--a", "human:ana", "--b", "human:bo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [row.split()[-4:] for row in out if row.startswith("3 · Distinctly superior ")] == [["0", "1", "0", "0"]]
    assert [row.startswith(labels.level_label(level)) for level, row in enumerate(out[3:7])] == [True] * 4
    assert main(["export", str(ws.path), str(tmp_path / "out.jsonl"), "--unlabelled", "drop"]) == 0
    exported = (tmp_path / "out.jsonl").read_text()
    assert '"level":1,"level_name":"1 · Slightly better"' in exported  # bo's label is the latest human one


async def test_focus_is_marked_on_every_widget_tab_reaches(ws):
    """A heavy border with a reversed title, or a reversed select: seen in a capture, not by colour alone."""
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(120, 36)) as pilot:
        for key in ("f2", "f4"):
            screen = await open_screen(pilot, key)
            seen = set()
            for _ in range(12):
                await pilot.press("tab")
                await pilot.pause()
                widget = app.focused
                if widget is None or widget in seen:
                    continue
                seen.add(widget)
                if isinstance(widget, Select):
                    assert "reverse" in str(widget.query_one("SelectCurrent").styles.text_style), widget
                elif widget.id == "body":  # the agreement screen's scrolling body: its boxes turn heavy
                    assert all(box.styles.border_top[0] == "heavy" for box in widget.query(Static)
                               if box.styles.border_top[0]), widget
                else:
                    assert widget.styles.border_top[0] == "heavy", widget
                    assert "reverse" in str(widget.styles.border_title_style), widget
            assert len(seen) >= (6 if isinstance(screen, LabelScreen) else 3)
        screen = await label_screen(pilot)
        right = screen.query_one("#right")
        right.focus()
        await pilot.pause()
        assert right.styles.border_top[0] == "heavy"
        screen.query_one("#prompt").focus()  # unfocused again: back to the round border
        await pilot.pause()
        assert right.styles.border_top[0] == "round"


async def test_a_pair_brought_back_by_undo_then_decided_sends_the_walk_to_the_first_undecided_pair(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await label_screen(pilot)
        screen.show_pair(5)  # out of order, as from the pair view: pairs 1-4 stay undecided
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert shown_pair(screen) == 1
        await pilot.press("u")
        await settle(pilot)
        assert shown_pair(screen) == 5 and "brought back by undo" in line(screen, "status")
        await pilot.press("2")
        await settle(pilot)
        assert shown_pair(screen) == 1  # not 6, after the undone pair

        await pilot.press("1", "1", "1")  # 1, 2, 3 labelled: at 4
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert shown_pair(screen) == 2
        await pilot.press("1")
        await settle(pilot)
        assert shown_pair(screen) == 3  # undone too: not passed over on the way back to 4


async def test_relabelling_presets_the_last_side_and_level_and_supersedes_the_old_row(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await label_screen(pilot)
        await pilot.press("f", "3")  # pair 1: right better, level 2
        await settle(pilot)
        assert shown_pair(screen) == 2 and "✓ left" in line(screen, "direction")
        recent = screen.query_one(RecentDecisions)
        recent.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert shown_pair(screen) == 1
        assert screen.right_better and "✓ right (rejected)" in line(screen, "direction")
        assert "2 · More effective ◂ last" in line(screen, "legend")
        await pilot.press("4")
        await settle(pilot)
        assert recent.rows[:2] == [("1", "3 · Distinctly superior", "right"),
                                   ("1", "superseded: 2 · More effective", "right")]
        assert labels.latest_decision(ws.con, 1, "ana").flip is True  # the preset side was stored


async def test_the_disagreements_queue_shows_both_labels_side_by_side(ws):
    labels.add_label(ws.con, 3, "ana", 3, False, MARGINS)
    ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip) "
                   "VALUES (3, 'llm', 'gpt-4o', 'label', 1, TRUE)")
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await label_screen(pilot)
        assert not screen.query_one("#pair-labels").display  # labels of others are not shown while labelling
        screen.query_one("#queue", Select).value = "disagreements"
        await settle(pilot)
        assert shown_pair(screen) == 3
        assert line(screen, "pair-labels") == ("labels  human:ana: 3 · Distinctly superior, left better  │  "
                                               "llm:gpt-4o: 1 · Slightly better, right better")


async def test_l_on_an_outlier_labels_it_and_esc_goes_back_to_the_outliers(ws):
    ids = add_pairs(ws.con, {"beta": 20})["beta"]
    store_model(ws.con, "job-more", ids, [*[0.5 + i / 40 for i in range(19)], 40.0], name="more")
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        evaluate = await open_screen(pilot, "f6")
        assert isinstance(evaluate, EvalScreen)
        outliers = evaluate.query_one("#eval-outliers", JobTable)
        assert [row[2] for row in outliers.rows] == [str(ids[-1])]
        outliers.focus()
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LabelScreen) and shown_pair(screen) == ids[-1]
        assert "esc: back to Evaluate" in line(screen, "status")
        assert "esc" in [key for key, _ in screen_keys(screen)]
        await pilot.press("2")
        await settle(pilot)
        assert labels.latest_decision(ws.con, ids[-1], "ana").level == 1
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is evaluate and app.current_mode == "eval"
        screen = await label_screen(pilot)  # reached by its key: esc has nowhere to go back to
        assert "esc" not in [key for key, _ in screen_keys(screen)]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen


async def test_the_annotator_is_named_in_the_app_and_on_the_command_line(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await label_screen(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert shown_pair(screen) == 2
        await pilot.press("a")
        await pilot.pause()
        name = app.screen.query_one(Input)
        assert name.value == "ana"
        name.value = "  bo "
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen and app.annotator == "bo"
        assert line(screen, "annotator").startswith("labelling as bo")
        assert shown_pair(screen) == 1  # bo's own queue: pair 1 is undecided for bo
        await pilot.press("2")
        await settle(pilot)
        assert labels.latest_decision(ws.con, 1, "bo").level == 1
        assert labels.latest_decision(ws.con, 1, "ana").level == 2
    assert build_parser().parse_args(["demo", "--annotator", "cy", "--no-open"]).annotator == "cy"
    assert build_parser().parse_args(["open", str(ws.path)]).annotator is None  # the login name, in the app


def test_agreement_with_an_unknown_annotator_names_the_known_ones(ws, capsys):
    labels.add_label(ws.con, 1, "ana", 2, False, MARGINS)
    labels.add_label(ws.con, 2, "ana", 2, False, MARGINS)
    ws.close()
    assert main(["agreement", str(ws.path), "--a", "human:ana", "--b", "human:anna"]) == 2
    assert capsys.readouterr().err.strip() == ("prefstudio: error: --b human:anna: no labels by this annotator; "
                                               "annotators with labels: human:ana (2 pairs)")


async def test_the_demo_ground_truth_is_hidden_while_labelling_and_shown_on_request(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await label_screen(pilot)
        await pilot.press("4")  # pair 1, then pair 2 (stored the wrong way round)
        await settle(pilot)
        assert "truth" not in line(screen, "status")
        await pilot.press("g")
        assert line(screen, "status").endswith("truth: 3 · Distinctly superior, right better")
        await pilot.press("b")  # in blind mode the side is said as A/B, where the pair is shown
        side = labels.better_side(True, labels.chosen_shown_as(ws.config.annotation.blind_seed, 2))
        assert line(screen, "status").endswith(f"truth: 3 · Distinctly superior, {side} better")

        await pilot.press("f1")
        await settle(pilot)
        app.push_screen(PairScreen(app.screen.filter, 1))
        await settle(pilot)
        metadata = app.screen.query_one("#metadata-text", Static).visual.plain
        assert "gt_level" not in metadata and "gt_flip" not in metadata
        assert "ground truth: hidden while you label · g shows it" in metadata
        assert "meta.kind: demo" in metadata
        await pilot.press("g")
        metadata = app.screen.query_one("#metadata-text", Static).visual.plain
        assert "meta.gt_level: 3" in metadata and "meta.gt_flip: false" in metadata


async def test_a_queue_that_learns_says_why_and_shows_pre_labels_hidden_in_blind_mode(ws):
    """Issue 18, item 5: the uncertain queue walks by the latest model's |d|, says why, and `p` shows the judge's
    and the models' opinions; blind mode drops every sign and side that would tell the chosen response."""
    store_model(ws.con, "j1", [1, 2, 3, 4], [0.4, -0.3, 0.9, 0.05], name="old-run", split="train")
    store_model(ws.con, "j2", [1, 2, 3, 4], [0.6, -0.1, 1.5, 0.02], name="new-run", split="train")
    ws.con.execute("UPDATE jobs SET created_at = created_at + INTERVAL 1 HOUR WHERE id = 'j2'")
    ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip) "
                   "VALUES (4, 'llm', 'gpt', 'label', 2, true)")
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await label_screen(pilot)
        select = screen.query_one("#queue", Select)
        assert not screen.query_one("#reason", Static).display  # the unlabelled queue has no reason to give
        assert str(select.query_one("#label", Static).visual) == "unlabelled · 12"  # each queue's size
        select.value = "uncertain"
        await settle(pilot)
        assert shown_pair(screen) == 4  # |d| 0.02: the latest model's least sure
        assert line(screen, "reason") == "why  latest model new-run d = +0.02 (1st most uncertain of 4)"
        assert str(select.query_one("#label", Static).visual) == "uncertain · 4"
        assert not screen.query_one("#prelabels", Static).display  # hidden until asked for
        await pilot.press("p")
        await settle(pilot)
        assert line(screen, "prelabels") == ("pre-labels  judge gpt: 2 · More effective, right better  │  models "
                                             "old-run d = +0.05 (left) · new-run d = +0.02 (left)")
        await pilot.press("b")
        side = labels.chosen_shown_as(ws.config.annotation.blind_seed, 4)
        judged = labels.better_side(True, side)
        assert line(screen, "prelabels") == (f"pre-labels  judge gpt: 2 · More effective, {judged} better  │  "
                                             "models hidden in blind mode")
        assert line(screen, "reason") == "why  latest model new-run |d| = 0.02 (1st most uncertain of 4)"
        await pilot.press("b", "2")
        await settle(pilot)
        assert shown_pair(screen) == 2  # next by |d|: 0.1
        assert line(screen, "reason") == "why  latest model new-run d = -0.10 (2nd most uncertain of 4)"
        assert "old-run d = -0.30 (right)" in line(screen, "prelabels")
        assert str(select.query_one("#label", Static).visual) == "uncertain · 3"
        assert select.value == "uncertain"
