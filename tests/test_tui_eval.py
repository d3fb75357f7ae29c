"""The Evaluate screen (F6), driven by Pilot over a workspace with stored rewards of three models."""

import numpy as np
import pytest
from textual.widgets import Select, Static

from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.eval_screen import DrawnChart, EvalScreen
from prefstudio.tui.jobs_screen import JobTable
from prefstudio.tui.label_screen import LabelScreen
from prefstudio.tui.pair_view import PairScreen
from tests.eval_helpers import add_pairs, store_model
from tests.pilot_helpers import open_screen, settle

BRAILLE = range(0x2801, 0x2900)


@pytest.fixture
def ws(ws):
    ids = add_pairs(ws.con, {"alpha": 40, "beta": 20})
    every = ids["alpha"] + ids["beta"]
    rng = np.random.default_rng(0)
    # raw: alpha half right; bt: alpha all right, beta 10 of 20; more: all right, one wild pair in beta
    raw = np.r_[np.tile([0.2, -0.2], 20), rng.normal(0.0, 0.1, 20)]
    bt = np.r_[np.linspace(0.1, 2.0, 40), np.tile([1.0, -1.0], 10)]
    more = np.r_[np.linspace(0.5, 1.5, 40), np.linspace(0.5, 1.5, 19), [40.0]]
    store_model(ws.con, "raw:tiny", every, raw, checkpoint="raw")
    store_model(ws.con, "job-bt", every, bt, name="bt", checkpoint="step-5")
    store_model(ws.con, "job-bt", every, bt - 5.0, name=None, checkpoint="step-1")  # an older checkpoint
    store_model(ws.con, "job-more", every, more, name="more")
    ws.ids = ids
    return ws


def status(screen) -> str:
    return str(screen.query_one("#eval-status", Static).render())


def chart(screen, widget_id: str) -> str:
    return screen.query_one(f"#{widget_id}", DrawnChart).render().plain


async def test_the_table_plots_and_outliers_of_three_models_at_100_by_30(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        assert isinstance(screen, EvalScreen)
        table = screen.query_one("#eval-table", JobTable)
        assert [c.label for c in table.columns] == ["", "model", "alpha", "beta", "avg", "all", "ties", "ECE@10", "n"]
        rows = {row[1]: row for row in table.rows}
        # every checkpoint is listed; each job's latest is picked, the older one is not
        assert list(rows) == ["raw:tiny", "bt (step-1)", "bt (step-5)", "more (step-10)", "length"]
        # the length baseline under the models: "good answer k" is longer than "bad answer k"; no ECE
        assert rows["length"] == (" ", "length", "100.0", "100.0", "100.0", "100.0", "0", "—", "60")
        assert not screen.query_one("#eval-accuracy").display  # no setting with several seeds: no whiskers
        assert rows["raw:tiny"][:7] == ("✓", "raw:tiny", "50.0", "45.0", "47.5", "48.3", "0")
        assert rows["bt (step-5)"][:6] == ("✓", "bt (step-5)", "100.0", "50.0", "75.0", "83.3")
        assert rows["more (step-10)"][2:6] == ("100.0", "100.0", "100.0", "100.0")
        assert rows["bt (step-1)"][0] == " " and rows["bt (step-1)"][2:] == ("",) * 7
        assert "60 pairs scored by every picked model · 10 bins" in status(screen)

        # readable at 100×30: both plots drawn with a few rows each, every model in the legend
        histogram, reliability = chart(screen, "eval-histogram"), chart(screen, "eval-reliability")
        assert sum(ord(ch) in BRAILLE for ch in histogram) > 40 and sum(ord(ch) in BRAILLE for ch in reliability) > 10
        for label in ("raw:tiny", "bt (step-5)", "more (step-10)"):
            assert label in histogram and label in reliability
        assert "calibrated" in reliability and "d = 0" in histogram
        for widget_id in ("eval-histogram", "eval-reliability"):
            assert screen.query_one(f"#{widget_id}").size.height >= 8

        # the outliers of the model under the cursor: more's wild beta pair comes first
        await pilot.press("end", "up")  # more: the last model, above the length row
        await settle(pilot)
        outliers = screen.query_one("#eval-outliers", JobTable)
        assert outliers.rows[0][:4] == ("over", "+40.0000", str(ws.ids["beta"][-1]), "beta")
        assert "outliers · more (step-10) · all sources: 1 over" in str(
            screen.query_one("#eval-outliers-title", Static).render())

        # stacked histograms: one block-bar chart per model, on the same scale
        await pilot.press("o")
        stacked = chart(screen, "eval-histogram")
        assert "▁" in stacked or "█" in stacked
        assert stacked.index("raw:tiny") < stacked.index("bt (step-5)") < stacked.index("more (step-10)")

        # more bins for ECE and the reliability diagram
        await pilot.press("b")
        await settle(pilot)
        assert table.columns[7].label == "ECE@20" and "20 bins" in status(screen)

        # drop raw: fewer rows with figures, the table recomputed
        await pilot.press("home", "space")
        await settle(pilot)
        assert table.rows[0][0] == " " and table.rows[0][2] == ""
        assert "raw:tiny" not in chart(screen, "eval-reliability")


async def test_a_source_filter_then_an_outlier_opened_and_labelled(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        await pilot.press("end", "up")  # more, above the length row
        await settle(pilot)
        screen.query_one("#eval-source", Select).value = "alpha"
        await settle(pilot)
        assert "· alpha ·" in chart(screen, "eval-histogram")
        outliers = screen.query_one("#eval-outliers", JobTable)
        assert outliers.rows == []  # alpha has no outlier: the wild pair is beta's
        screen.query_one("#eval-source", Select).value = "beta"
        await settle(pilot)
        assert [row[2] for row in outliers.rows] == [str(ws.ids["beta"][-1])]

        outliers.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen) and app.screen.pair_id == ws.ids["beta"][-1]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
        await pilot.press("l")
        await settle(pilot)
        label = app.screen
        assert isinstance(label, LabelScreen) and label.pair.id == ws.ids["beta"][-1]


async def test_an_empty_workspace_says_how_to_score(ws):
    ws.con.execute("DELETE FROM predictions")
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        assert "e on a job in F5 Jobs scores it, or `prefstudio eval WORKSPACE JOB --wait`" in status(screen)
        assert "no model picked" in chart(screen, "eval-histogram")
        await pilot.press("space", "o", "b", "l")  # nothing to act on: nothing breaks
        await settle(pilot)


async def test_the_palettes_screenshot_goes_into_the_workspace(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, "f6")
        app.action_screenshot("evaluate.svg")
        said = lambda: [n.message for n in app._notifications if "screenshot saved" in n.message]  # noqa: E731
        for _ in range(100):
            if said():
                break
            await pilot.pause(0.05)
        assert said() == [f"screenshot saved: {ws.path / 'screenshots' / 'evaluate.svg'}"]
    assert "<svg" in (ws.path / "screenshots" / "evaluate.svg").read_text()


@pytest.mark.parametrize(("width", "tabs"), [(100, " F6 Eval "), (160, " F6 Evaluate ")])
async def test_the_header_keeps_the_pair_count_in_view(ws, width, tabs):
    from prefstudio.tui.widgets import WorkspaceHeader

    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(width, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        line = screen.query_one(WorkspaceHeader).render().plain
        assert tabs in line and " F7 " in line
        assert "60 pairs" in line  # the tabs shorten before the count is cut


async def test_a_model_scored_meanwhile_shows_when_the_screen_is_shown_again(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        table = screen.query_one("#eval-table", JobTable)
        assert len(table.rows) == 4 + 1  # and the length row
        store_model(ws.con, "job-late", ws.ids["alpha"] + ws.ids["beta"], [1.0] * 60, name="late")
        await open_screen(pilot, "f1")
        assert await open_screen(pilot, "f6") is screen
        assert [row[:2] for row in table.rows][-2:] == [("✓", "late (step-10)"), (" ", "length")]
        assert table.rows[-2][5] == "100.0"


async def test_t_shows_the_figures_behind_the_plots(ws):
    import numpy as np

    from prefstudio.evaluate import metrics

    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        figures = screen.query_one("#eval-figures")
        assert not figures.display
        await pilot.press("t")
        assert figures.display and not screen.query_one("#eval-plots").display
        rows = {row[0]: row for row in figures.rows}
        bt = np.r_[np.linspace(0.1, 2.0, 40), np.tile([1.0, -1.0], 10)]  # as the fixture stored it
        dist = metrics.distribution(bt)
        assert rows["bt (step-5)"][1:6] == (f"{dist.mean:+.3f}", f"{dist.std:.3f}", f"{dist.skewness:+.2f}",
                                            f"{dist.excess_kurtosis:+.2f}", "16.7")
        assert rows["bt (step-5)"][6] == f"{metrics.ece(bt, 5):.4f}"
        assert rows["more (step-10)"][-2:] == ("1", "0")  # the wild beta pair
        screen.query_one("#eval-source", Select).value = "beta"
        await settle(pilot)
        beta = metrics.distribution(bt[40:])
        assert {row[0]: row for row in figures.rows}["bt (step-5)"][1:3] == (f"{beta.mean:+.3f}", f"{beta.std:.3f}")
        await pilot.press("t")
        assert screen.query_one("#eval-plots").display


async def test_each_model_keeps_its_colour_when_another_is_dropped(ws):
    from prefstudio.tui.widgets import EXTRA_SERIES_STYLE, SERIES_STYLES

    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        histogram = screen.query_one("#eval-histogram", DrawnChart)
        # raw, bt step-5, more picked: slots 0, 2, 3 (raw baselines first, then jobs as made, each job's
        # checkpoints by step: bt's step-1 has slot 1), then the d = 0 line
        assert histogram.series_styles == [SERIES_STYLES[0], SERIES_STYLES[2], SERIES_STYLES[3], EXTRA_SERIES_STYLE]
        await pilot.press("home", "space")  # drop raw
        await settle(pilot)
        assert histogram.series_styles == [SERIES_STYLES[2], SERIES_STYLES[3], EXTRA_SERIES_STYLE]
        assert screen.query_one("#eval-reliability", DrawnChart).series_styles == histogram.series_styles


async def test_two_checkpoints_of_one_job_have_their_own_colour_and_mark(ws):
    from prefstudio.evaluate.compare import text_mark
    from prefstudio.tui.widgets import EXTRA_SERIES_STYLE, SERIES_STYLES

    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        await pilot.press("down", "space")  # pick bt's older checkpoint beside its latest
        await settle(pilot)
        histogram = screen.query_one("#eval-histogram", DrawnChart)
        assert histogram.series_styles == [SERIES_STYLES[0], SERIES_STYLES[1], SERIES_STYLES[2], SERIES_STYLES[3],
                                           EXTRA_SERIES_STYLE]
        for widget_id in ("eval-histogram", "eval-reliability"):
            text = chart(screen, widget_id)
            assert f"{text_mark(1)} bt (step-1)" in text and f"{text_mark(2)} bt (step-5)" in text
        await pilot.press("o")  # stacked: each model's title carries its mark
        assert f"{text_mark(1)} bt (step-1)" in chart(screen, "eval-histogram")


async def test_an_odd_bin_count_gets_its_footnote(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        note = screen.query_one("#eval-ece-note", Static)
        assert not note.display  # ECE@10 in the table
        await pilot.press("t")  # the figures show ECE@5
        assert note.display and "so ECE@5 can read ≈ 0" in note.visual.plain
        await pilot.press("t")
        assert not note.display
        await pilot.press("b", "b")  # 20, then 5 bins in the table's ECE column
        await settle(pilot)
        assert screen.query_one("#eval-table", JobTable).columns[7].label == "ECE@5"
        assert note.display and note.visual.plain.startswith("odd bin count: the middle bin pools p and 1 − p")


async def test_ties_count_half_and_are_shown_beside_accuracy(ws):
    every = ws.ids["alpha"] + ws.ids["beta"]
    # alpha: 30 right, 10 ties -> 35/40; beta: 10 right, 4 ties, 6 wrong -> 12/20; all 47/60, 14 ties
    tied = np.r_[np.ones(30), np.zeros(10), np.ones(10), np.zeros(4), -np.ones(6)]
    store_model(ws.con, "job-tied", every, tied, name="tied")
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        table = screen.query_one("#eval-table", JobTable)
        rows = {row[1]: row for row in table.rows}
        assert rows["tied (step-10)"][2:7] == ("87.5", "60.0", "73.8", "78.3", "14")
        assert rows["bt (step-5)"][6] == "0"
        header, tied_line = table.render_line(0).text, table.render_line(5).text
        assert header.split() == ["model", "alpha", "beta", "avg", "all", "ties", "ECE@10", "n"]
        assert tied_line.split()[1:8] == ["tied", "(step-10)", "87.5", "60.0", "73.8", "78.3", "14"]  # whole at 100


async def test_seeds_of_one_setting_show_as_a_row_with_its_interval_and_a_whisker(tmp_path):
    from prefstudio.workspace import Workspace
    from tests.test_compare import store_cells

    with Workspace.init(tmp_path / "ws") as ws:
        store_cells(ws.con)  # bt and more, two seeds each (tests/test_compare.py: hand-computed intervals)
        app = PrefstudioApp(ws, annotator="ana")
        async with app.run_test(size=(110, 32)) as pilot:
            screen = await open_screen(pilot, "f6")
            rows = {row[1]: row for row in screen.query_one("#eval-table", JobTable).rows}
            assert list(rows) == ["bt-0 (step-10)", "bt-1 (step-10)", "more-0 (step-10)", "more-1 (step-10)",
                                  "objective=bt (2 seeds)", "objective=more (2 seeds)", "length"]
            assert rows["objective=bt (2 seeds)"][5] == "58.3 ± 105.9" and rows["objective=more (2 seeds)"][5] == \
                "87.5 ± 52.9"
            assert screen.query_one("#eval-accuracy").display
            drawn = chart(screen, "eval-accuracy")
            assert "bt (2)" in drawn and "more (2)" in drawn  # the setting's values alone: the chart is narrow
            assert "├" in drawn and "┤" in drawn and "●" in drawn
            assert "58.3 ± 105.9" in drawn and "length" in drawn and "100.0" in drawn
            await pilot.press("space")  # drop bt-0: bt is one seed now, more still two
            await settle(pilot)
            rows = {row[1]: row for row in screen.query_one("#eval-table", JobTable).rows}
            assert "objective=bt (2 seeds)" not in rows and "objective=more (2 seeds)" in rows


async def test_m_shows_the_calibration_by_margin_level(ws):
    from prefstudio.tui.widgets import PlainTextTable
    from tests.test_calibration import add_labels

    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, "f6")
        title = lambda: str(screen.query_one("#eval-margins-title", Static).render())  # noqa: E731
        await pilot.press("m")
        box = screen.query_one("#eval-margins-box")
        assert box.display and not screen.query_one("#eval-plots").display
        assert title() == "no margin labels on the test pairs; label some (F2) or judge them (F3)"

        alpha, beta = ws.ids["alpha"], ws.ids["beta"]
        # bt's d: alpha[0] 0.1, alpha[39] 2.0, beta[0] 1.0, beta[1] −1.0 (its label flipped: +1.0)
        add_labels(ws.con, {alpha[0]: ("human", 0, False), beta[1]: ("human", 1, True), beta[0]: ("llm", 2, False),
                            alpha[39]: ("data", 3, False)})
        await pilot.press("r")
        await settle(pilot)
        margins = screen.query_one("#eval-margins", PlainTextTable)
        assert [c.label for c in margins.columns] == ["model", "level", "pairs", "mean d", "bar of mean d",
                                                      "acc %", "ECE@10"]
        rows = margins.rows
        at = [row[0] for row in rows].index("bt (step-5)")
        bt = rows[at:at + 5]
        # one scale for every row: bt's 2.0 at level 3 is the largest mean d, a full half of 7 cells
        assert [row[1:5] for row in bt] == [
            ("0 · Negligibly better / unsure", "1", "+0.100", "       │       "),
            ("1 · Slightly better", "1", "+1.000", "       │████   "),
            ("2 · More effective", "1", "+1.000", "       │████   "),
            ("3 · Distinctly superior", "1", "+2.000", "       │███████"),
            ("all levels", "4", "+1.025", "")]
        assert bt[3][5:] == ("100.0", f"{metrics_ece([2.0]):.4f}")
        # ρ by hand: d ranks (1, 2.5, 2.5, 4) against levels (1, 2, 3, 4): 4.5 / √(5 · 4.5) = 0.949
        assert title().startswith("margins · all sources · 4 of 60 pairs labelled (2 human, 1 judge, 1 data)")
        assert "bt (step-5) +0.949" in title()
        line = margins.render_line(at + 4).text  # the level-3 row, whole at 100 columns
        assert "3 · Distinctly superior" in line and "███████" in line and line.rstrip().endswith(
            f"{metrics_ece([2.0]):.4f}")

        screen.query_one("#eval-source", Select).value = "beta"  # levels 1 and 2 only
        await settle(pilot)
        assert [row[1] for row in margins.rows[:3]] == ["1 · Slightly better", "2 · More effective", "all levels"]
        assert "margins · beta · " in title()
        await pilot.press("t")  # the figures replace the margins, and m brings the plots back after them
        assert screen.query_one("#eval-figures").display and not box.display
        await pilot.press("m", "m")
        assert screen.query_one("#eval-plots").display


def metrics_ece(d: list[float]) -> float:
    from prefstudio.evaluate import metrics

    return metrics.ece(np.array(d), 10)
