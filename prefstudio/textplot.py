"""Line charts as plain text, in Unicode braille: training curves where only a terminal is.

Each character cell holds 2×4 braille dots, so a chart of W×H cells draws
2W×4H points: enough to see a loss fall or one source's weight rise over a
run. Plain lines of text, so the app, the CLI and reports draw the same chart;
colour is the caller's: `plot()` also says which series each character
belongs to, so a terminal can colour series apart (cells where several meet
go to the one drawn last). NaN and infinite values break a line rather than
bending the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Point = tuple[float, float]

# The braille bit of the dot at (column, row) of a cell: dots 1-2-3-7 down the left, 4-5-6-8 down the right.
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BRAILLE = 0x2800
LEGEND_MARK = "━"
MAX_GUTTER = 11  # the widest y label ("-1.235e-05") and the axis: lines are at most width + this wide


@dataclass(frozen=True)
class Chart:
    lines: list[str]
    """The plot rows (y labels on the left), the x range, then the legend; no lines when there is nothing to draw."""
    owners: list[list[int | None]]
    """For each line, for each character: the index of the series it draws, or None (labels, blanks)."""
    names: list[str]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e7 else f"{value:.4g}"


def _scale(value: float, low: float, high: float, dots: int) -> int:
    """The dot (0 .. dots-1) for `value` in [low, high]; a range of one value sits in the middle."""
    if high == low:
        return (dots - 1) // 2
    return round((value - low) / (high - low) * (dots - 1))


def _segment(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots of a straight line from (x0, y0) to (x1, y1), both ends included (Bresenham)."""
    dots = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    error = dx + dy
    while True:
        dots.append((x0, y0))
        if (x0, y0) == (x1, y1):
            return dots
        double = 2 * error
        if double >= dy:
            error += dy
            x0 += sx
        if double <= dx:
            error += dx
            y0 += sy


def thin(points: list[Point], max_points: int) -> list[Point]:
    """At most about `max_points` of `points`, evenly spaced, always keeping the last."""
    if len(points) <= max_points:
        return points
    step = math.ceil(len(points) / max_points)
    kept = points[::step]
    return kept if kept[-1] is points[-1] else kept + [points[-1]]


def plot(series: dict[str, list[Point]], width: int, height: int, *, legend_values: bool = True) -> Chart:
    """`series` (name -> (x, y) points in x order) on a `width`×`height` cell plot area, with labels and legend.

    The legend gives each series' last value (where a training curve ends) unless `legend_values` is off.
    """
    names = list(series)
    finite = [(x, y) for points in series.values() for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not finite or width < 1 or height < 1:
        return Chart([], [], names)
    x_low, x_high = min(x for x, _ in finite), max(x for x, _ in finite)
    y_low, y_high = min(y for _, y in finite), max(y for _, y in finite)
    bits = [[0] * width for _ in range(height)]
    owner: list[list[int | None]] = [[None] * width for _ in range(height)]

    def put(dot_x: int, dot_y: int, index: int) -> None:
        row, column = dot_y // 4, dot_x // 2
        bits[row][column] |= _DOT_BITS[dot_x % 2][dot_y % 4]
        owner[row][column] = index

    for index, points in enumerate(series.values()):
        previous = None
        for x, y in points:
            if not (math.isfinite(x) and math.isfinite(y)):
                previous = None  # a gap in the line
                continue
            dot = (_scale(x, x_low, x_high, 2 * width), 4 * height - 1 - _scale(y, y_low, y_high, 4 * height))
            for dot_x, dot_y in _segment(*(previous or dot), *dot):
                put(dot_x, dot_y, index)
            previous = dot

    top, bottom = _number(y_high), _number(y_low)
    gutter = max(len(top), len(bottom))
    labels = {height - 1: bottom, 0: top}  # one row: the top label
    if y_low == y_high:  # one value: labelled once, on the row that draws it
        labels = {(4 * height - 1 - _scale(y_low, y_low, y_high, 4 * height)) // 4: top}
    lines: list[str] = []
    owners: list[list[int | None]] = []
    for row in range(height):
        label = labels.get(row, "")
        axis = "┤" if label else "│"
        lines.append(f"{label:>{gutter}}{axis}" + "".join(chr(_BRAILLE + b) if b else " " for b in bits[row]))
        owners.append([None] * (gutter + 1) + [o if b else None for o, b in zip(owner[row], bits[row])])

    left, right = _number(x_low), _number(x_high)
    x_line = left if x_low == x_high else left + right.rjust(max(len(right) + 1, width - len(left)))
    lines.append(" " * (gutter + 1) + x_line)
    owners.append([None] * len(lines[-1]))

    # The legend: a mark in each series' colour, its name and its last value; wrapped to the chart's width.
    entries = []
    for index, (name, points) in enumerate(series.items()):
        last = next((y for x, y in reversed(points) if math.isfinite(x) and math.isfinite(y)), None)
        text = f"{LEGEND_MARK} {name}" + ("" if last is None or not legend_values else f" {_number(last)}")
        entries.append((text, [index] + [None] * (len(text) - 1)))
    line, line_owners = "", []
    for text, text_owners in entries:
        if line and len(line) + 2 + len(text) > gutter + 1 + width:
            lines.append(line)
            owners.append(line_owners)
            line, line_owners = "", []
        if line:
            line, line_owners = line + "  ", line_owners + [None, None]
        line, line_owners = line + text, line_owners + text_owners
    lines.append(line)
    owners.append(line_owners)
    return Chart(lines, owners, names)


def line_chart(series: dict[str, list[Point]], width: int, height: int) -> list[str]:
    """The lines of plot(): `height` plot rows, the x range, the legend; [] when no point is finite."""
    return plot(series, width, height).lines


_EIGHTHS = " ▁▂▃▄▅▆▇█"


def bars(values: list[float], height: int, top: float | None = None) -> list[str]:
    """One column of block characters per value, `height` rows, scaled to `top` (default: the largest value).

    Eighth blocks give 8 levels a row, so a histogram of 8 rows tells 64 heights apart;
    a value above zero always shows at least one eighth, so a bin with a few pairs is not lost.
    """
    top = max((v for v in values if math.isfinite(v)), default=0.0) if top is None else top
    levels = []
    for value in values:
        if not math.isfinite(value) or value <= 0 or top <= 0:
            levels.append(0)
        else:
            levels.append(max(1, min(8 * height, round(value / top * 8 * height))))
    rows = []
    for row in range(height):
        floor = 8 * (height - 1 - row)  # the eighths below this row
        rows.append("".join(_EIGHTHS[max(0, min(8, level - floor))] for level in levels))
    return rows
