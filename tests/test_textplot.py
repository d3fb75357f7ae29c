import math

from prefstudio.textplot import line_chart, plot, thin


def test_a_rising_line_on_one_row():
    # dots (0,3) (1,2) | (2,1) (3,0): ⡠ = dots 7+6, ⠊ = dots 2+4
    assert line_chart({"a": [(0, 0), (1, 1)]}, 2, 1) == ["1┤⡠⠊", "  0 1", "━ a 1"]


def test_labels_on_the_top_and_bottom_rows():
    assert line_chart({"a": [(0, 0), (1, 1)]}, 2, 2) == ["1┤ ⡜", "0┤⡜ ", "  0 1", "━ a 1"]
    lines = line_chart({"loss": [(10, 0.5), (20, 0.25), (40, 0.125)]}, 10, 3)
    assert [line[:6] for line in lines[:3]] == ["  0.5┤", "     │", "0.125┤"]
    assert lines[3] == "      10      40"  # the x range spans the plot area
    assert lines[4] == "━ loss 0.125"


def test_one_point_and_a_flat_series_sit_in_the_middle_labelled_once():
    assert line_chart({"a": [(1, 2)]}, 4, 2) == [" │    ", "2┤ ⠈  ", "  1", "━ a 2"]
    assert line_chart({"a": [(0, 1), (1, 1)]}, 4, 3) == [" │    ", "1┤⠤⠤⠤⠤", " │    ", "  0  1", "━ a 1"]


def test_nan_breaks_the_line_and_is_not_in_the_scale():
    lines = line_chart({"a": [(0, 1), (1, math.nan), (2, 1), (3, 0), (4, math.inf)]}, 4, 2)
    assert lines == ["1┤⠁ ⠘⡄", "0┤   ⢣", "  0  3", "━ a 0"]


def test_nothing_to_draw():
    assert line_chart({}, 10, 3) == []
    assert line_chart({"a": []}, 10, 3) == []
    assert line_chart({"a": [(0, math.nan)]}, 10, 3) == []


def test_owners_say_which_series_each_character_draws():
    chart = plot({"low": [(0, 0), (1, 0)], "high": [(0, 1), (1, 1)]}, 2, 1)
    assert chart.lines == ["1┤⣉⣉", "  0 1", "━ low 0", "━ high 1"]  # both series share the cells
    assert chart.owners[0] == [None, None, 1, 1]  # the one drawn last owns them
    assert chart.owners[2] == [0] + [None] * 6 and chart.owners[3] == [1] + [None] * 7


def test_the_legend_wraps_to_the_width():
    chart = plot({name: [(0, 1), (1, 2)] for name in ("alpha", "beta", "gamma")}, 18, 2)
    assert chart.lines[-2:] == ["━ alpha 2  ━ beta 2", "━ gamma 2"]
    assert all(len(line) == len(owners) for line, owners in zip(chart.lines, chart.owners))


def test_thin_keeps_the_last_point():
    points = [(float(i), float(i)) for i in range(10)]
    assert thin(points, 20) is points
    assert thin(points, 4) == [(0.0, 0.0), (3.0, 3.0), (6.0, 6.0), (9.0, 9.0)]
    assert thin(points, 3) == [(0.0, 0.0), (4.0, 4.0), (8.0, 8.0), (9.0, 9.0)]


def test_bars_in_eighths_scaled_to_the_top():
    from prefstudio.textplot import bars

    # top 4 over 2 rows = 16 eighths: 4 -> 16 (two full), 2 -> 8 (one full), 1 -> 4 (a half), 0.01 -> at least one
    assert bars([4, 2, 1, 0.01, 0, math.nan], 2) == ["█     ", "██▄▁  "]
    assert bars([1, 2], 1, top=4) == ["▂▄"]
    assert bars([0, 0], 2) == ["  ", "  "]


def test_histograms_and_reliability_share_one_colour_per_model():
    import numpy as np

    from prefstudio.evaluate import charts, metrics

    edges = np.linspace(-2.0, 2.0, 9)
    counts = {"a": np.array([0, 0, 1, 2, 4, 2, 1, 0]), "b": np.array([1, 1, 1, 1, 1, 1, 1, 1])}
    stacked = charts.histogram_stack(edges, counts, 8, 6)
    # per model: a name line and two rows of bars; the zero column (bin 4 starts at 0) marked where empty
    # shares a: .1 .2 .4 .2 .1 over a top of .4 in 16 eighths -> 4 8 16 8 4; b: .125 each -> 5
    assert stacked.lines == ["━ a", "    █   ", "  ▄███▄ ", "━ b", "    │   ", "▅▅▅▅▅▅▅▅", "-2  0  2"]
    assert charts.histogram_stack(edges, counts, 40, 6).lines[0] == "━ a  (peak 40.0% of pairs a bar)"
    assert stacked.owners[2][4] == 0 and stacked.owners[5][0] == 1 and stacked.owners[4][4] is None
    overlay = charts.histogram_overlay(edges, counts, 16, 4)
    assert overlay.names == ["a", "b", charts.ZERO]
    d = np.array([3.0, 2.0, -1.0, 0.5])
    reliability = charts.reliability_chart({"a": metrics.reliability(d), "b": metrics.reliability(-d)}, 16, 4)
    assert reliability.names == ["a", "b", charts.DIAGONAL]  # model i is series i on both plots
    assert charts.reliability_chart({"a": []}, 16, 4).lines == []
