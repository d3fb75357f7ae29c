"""The Best-of-N screen (F7), driven by Pilot over a run with two reward models' rewards."""

import pytest
from textual.widgets import Static

from prefstudio.bon import runs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.bon_screen import BonScreen, WinRateChart
from prefstudio.tui.jobs_screen import JobTable
from tests.bon_helpers import store_rewards, write_jsonl
from tests.pilot_helpers import open_screen, settle


@pytest.fixture
def ws(ws, tmp_path):
    records = [{"prompt": "prompt X", "responses": ["aa", "aaaa", "a", "aaaaaaaaa"]},
               {"prompt": "[bold]prompt Y[/bold]", "responses": ["bbbbbbbb", "b\x1b[31mred", "bb", "cccccccc"]}]
    runs.import_jsonl(ws.con, write_jsonl(tmp_path / "cands.jsonl", records), "r")
    store_rewards(ws.con, "r", "rm-one", {"prompt X": [0, 1, 2, 3], "[bold]prompt Y[/bold]": [0, 1, 2, 3]})
    store_rewards(ws.con, "r", "rm-two", {"prompt X": [0, 3, 2, 1], "[bold]prompt Y[/bold]": [5, 1, 0, 0]})
    return ws


def text(screen, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}", Static).render())


def samples(screen) -> list[str]:
    return [row[0] for row in screen.query_one(JobTable).rows]


async def test_candidates_ranked_side_by_side_moved_through_and_made_into_a_pair(ws):
    app = PrefstudioApp(ws, annotator="ana")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_screen(pilot, "f7")
        assert isinstance(screen, BonScreen)
        assert "prompt 1/2 · 4 samples · sorted by rm-one · A = rm-one · B = rm-two" in text(screen, "bon-status")
        table = screen.query_one(JobTable)
        assert [c.label for c in table.columns] == ["#", "A", "r(A)", "B", "r(B)", "Δ", "response"]
        # best first by rm-one; Δrank = B's rank - A's: where the two models disagree
        assert table.rows[0] == ("3", "1", "+3.0000", "3", "+1.0000", "+2", "aaaaaaaaa")
        assert samples(screen) == ["3", "2", "1", "0"]
        assert [row[5] for row in table.rows] == ["+2", "0", "-2", "0"]
        spread = text(screen, "bon-spread")
        assert "rm-one: spread 3.0000" in spread and "rm-two: spread 3.0000" in spread
        assert "Kendall τ +0.00 · best differs (A: sample 3, B: sample 1)" in spread
        assert "aaaaaaaaa" in text(screen, "bon-response")

        await pilot.press("s")  # rank by the second model
        assert samples(screen) == ["1", "2", "3", "0"]
        await pilot.press("n")
        await settle(pilot)
        assert "prompt 2/2" in text(screen, "bon-status")
        assert text(screen, "bon-prompt") == "[bold]prompt Y[/bold]"  # markup shown as typed
        await pilot.press("down")
        assert "b␛[31mred" in text(screen, "bon-response")  # an escape code never reaches the terminal
        await pilot.press("p")
        await settle(pilot)
        assert "prompt 1/2" in text(screen, "bon-status")

        # mark sample 1 (rm-two's best), move to sample 2: a pair, the model's favourite as 'chosen'
        await pilot.press("m", "down", "a")
        await settle(pilot)
        assert samples(screen)[0] == "*1"
        rows = ws.con.execute("SELECT source, split, chosen, rejected FROM pairs").fetchall()
        assert rows == [("bon:r", "bon", "aaaa", "a")]
        assert "1 pairs · bon:r 1" in app.summary  # the header counts the new pair
        await pilot.press("a")  # the same two again: nothing new
        await settle(pilot)
        assert ws.con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 1

        chart = screen.query_one(WinRateChart)
        assert "judge gpt-4o" in chart.render().plain  # nothing judged yet: nothing drawn, nothing spent
        await pilot.press("w")  # rm-one as the evaluator of rm-two's picks
        await settle(pilot)
        drawn = chart.render().plain
        assert "evaluator rm-one" in drawn and any(0x2801 <= ord(ch) <= 0x28FF for ch in drawn)
        assert "rm-two 0.75" in drawn  # N=4: X picks sample 1 (rm-one: 1 > 0, a win), Y sample 0 (half)
