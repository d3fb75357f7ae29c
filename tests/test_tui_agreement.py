import pytest
from textual.widgets import Select, Static

from prefstudio import agreement
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.agreement_screen import AgreementScreen, bar, format_kappa
from prefstudio.tui.app import PrefstudioApp
from tests.pilot_helpers import settle

# (ana's level, ana's flip, the judge's level, the judge's flip) for pairs 1..10
LABELS = [(3, False, 3, False), (3, False, 2, False), (2, False, 2, False), (2, True, 2, False),
          (1, False, 1, False), (1, False, 0, False), (0, False, 0, False), (0, False, 1, False),
          (3, False, 3, True), (2, False, 3, False)]


@pytest.fixture
def app(ws):
    records = [RawPair(f"q{i}", f"chosen {i}", f"rejected {i}", f"line {i}", source="[red]x[/red]" if i % 2 else "y",
                       split="train") for i in range(1, 13)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    values = []
    for pair_id, (level_a, flip_a, level_b, flip_b) in enumerate(LABELS, start=1):
        values.append((pair_id, "human", "ana", "label", level_a, flip_a))
        values.append((pair_id, "llm", "gpt-4o", "label", level_b, flip_b))
    values.append((11, "llm", "gpt-4o", "inconsistent", None, False))
    values.append((12, "human", "ben", "label", 1, False))
    for pair_id, kind, who, outcome, level, flip in values:
        ws.con.execute(
            "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, prompt_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [pair_id, kind, who, outcome, level, flip, "general@1#abc" if kind == "llm" else None],
        )
    return PrefstudioApp(ws, annotator="ana")


def text(screen, static_id: str) -> str:
    return screen.query_one(f"#{static_id}", Static).visual.plain


async def test_two_annotators_compared(app):
    expected = agreement.compare(app.ws.con, "human:ana", "llm:gpt-4o")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AgreementScreen)
        assert [value for _, value in screen.query_one("#a", Select)._options[1:]] == [
            "human:ana", "human:ben", "llm:gpt-4o"]
        screen.query_one("#a", Select).value = "human:ana"
        screen.query_one("#b", Select).value = "llm:gpt-4o"
        await settle(pilot)
        scores = text(screen, "scores")
        assert f"weighted kappa (quadratic)  {format_kappa(expected.kappa)}" in scores
        assert "pairs labelled by both      10" in scores
        assert "exact agreement             60.0%" in scores
        assert "flip rate A                 10.0%" in scores and "flip rate B                 10.0%" in scores
        assert "flipped by one only         2" in scores
        rows = text(screen, "confusion").splitlines()[1:]
        assert [[int(n) for n in row.split()[-4:]] for row in rows] == expected.confusion.tolist()
        assert rows[3].startswith("3 · Distinctly superior")

        screen.query_one("#b", Select).value = "human:ben"  # no pair in common
        await settle(pilot)
        assert text(screen, "scores") == "no pair was labelled by both"


async def test_judge_consistency_and_levels_per_source(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        consistency = text(screen, "consistency").splitlines()
        assert consistency[0].split() == ["model", "prompt", "judged", "inconsistent", "rate", "first", "won",
                                          "bias"]
        # labels stored without the judge's raw answers show no positions
        assert consistency[1].split() == ["gpt-4o", "general@1#abc", "11", "1", "9.1%", "n/a", "n/a"]
        distribution = text(screen, "distribution")
        assert "[red]x[/red] · 6 labelled" in distribution  # a source name is shown as typed
        assert "y · 6 labelled" in distribution
        assert "█" in distribution
        # shown again on coming back: labels given elsewhere count
        app.ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level) "
                           "VALUES (11, 'human', 'cleo', 'label', 3)")
        await pilot.press("f1")
        await pilot.press("f4")
        await settle(pilot)
        assert "human:cleo" in [value for _, value in screen.query_one("#a", Select)._options[1:]]
        assert "[red]x[/red] · 6 labelled" in text(screen, "distribution")  # cleo's label counts over the judge's


async def test_everyone_against_everyone_and_each_judges_position_bias(app):
    rows = [  # a second judge's (outcome, level, answer with chosen shown as A, with chosen shown as B), pairs 1..4
        ("label", 1, "Verdict: A>>>B", "Verdict: B>A"),       # first, then second
        ("inconsistent", 0, "Verdict: A>B", "Verdict: A>>B"),  # the first shown both times
        ("inconsistent", 0, "Verdict: B>A", "Verdict: B>A"),   # the second shown both times
        ("inconsistent", 0, "Verdict: A>>B", "Verdict: A>B"),  # the first shown both times
    ]
    for pair_id, (outcome, level, ab, ba) in enumerate(rows, start=1):
        app.ws.con.execute(
            "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, prompt_version, "
            "raw_response_ab, raw_response_ba) VALUES (?, 'llm', 'j2', ?, ?, 'general@1#abc', ?, ?)",
            [pair_id, outcome, level, ab, ba])
    ana_judge = agreement.compare(app.ws.con, "human:ana", "llm:gpt-4o")
    ana_j2 = agreement.compare(app.ws.con, "human:ana", "llm:j2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        matrix = text(app.screen, "matrix").splitlines()
        assert matrix[:4] == ["1  human:ana", "2  human:ben", "3  llm:gpt-4o", "4  llm:j2"]
        assert matrix[4].split() == ["1", "2", "3", "4"]
        # ana with the judge on 10 pairs, with j2 on 4; ben shares no pair with anyone
        assert matrix[5].split() == ["1", "—", "–", f"{ana_judge.kappa:.2f}", "(10)", f"{ana_j2.kappa:.2f}", "(4)"]
        assert matrix[6].split() == ["2", "–", "—", "–", "–"]
        consistency = text(app.screen, "consistency").splitlines()
        # j2: 3 of 4 inconsistent, 2 of them the first shown twice; 5 of its 8 answers name the first shown
        assert consistency[2].split() == ["j2", "general@1#abc", "4", "3", "75.0%", "62.5%", "66.7%"]
        assert consistency[3].startswith("first won: the judge's answers naming the response shown first")


def test_bars_are_drawn_to_an_eighth_of_a_cell():
    assert bar(0.0) == ""
    assert bar(1.0, 10) == "█" * 10
    assert bar(0.5, 3) == "█▌"
    assert bar(1 / 80, 10) == "▏"


async def test_a_margin_that_came_with_the_data_is_an_annotator_too(app):
    for pair_id, (level, value) in enumerate([(3, 0.9), (3, 0.8), (2, 0.6), (1, 0.3)], start=1):
        app.ws.con.execute(
            "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, value) "
            "VALUES (?, 'data', 'alpaca-eval/weighted_alpaca_eval_gpt4_turbo', 'label', ?, ?)", [pair_id, level, value])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        data = "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo"
        assert data in [value for _, value in screen.query_one("#a", Select)._options[1:]]
        screen.query_one("#a", Select).value = "llm:gpt-4o"
        screen.query_one("#b", Select).value = data
        await settle(pilot)
        scores = text(screen, "scores")
        assert "pairs labelled by both      4" in scores
        # the judge's levels of pairs 1..4 are 3, 2, 2, 2 (LABELS): 0.9, then the mean of 0.8, 0.6 and 0.3
        assert "B's value by A's level      0: – · 1: – · 2: 0.57 · 3: 0.90" in scores
