"""The evaluation plots as text: reward-difference histograms and reliability diagrams for a terminal.

Drawn as textplot.Chart (lines, and which series owns each character) so the
app colours each model apart and a test reads the same lines a person sees.
`marks` (compare.text_mark of each model's slot) replace the legend's ━, so a
model is told apart where colour is not (a greyscale or colour-blind reading)
and looks the same as its marker in the report's PNGs.
Histograms show each model's share of pairs per bin (models may differ in size
only through a source filter, but shares keep the bars comparable), on the
shared range Comparison.histograms gives; "d = 0" is marked, since everything
left of it is a pair the model gets wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefstudio import textplot
from prefstudio.evaluate.metrics import ReliabilityBin

DIAGONAL = "calibrated"
ZERO = "d = 0"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _marked(chart: textplot.Chart, marks: list[str] | None) -> textplot.Chart:
    """The chart with series i's legend mark drawn as marks[i] (guide lines past the models keep ━)."""
    if not marks:
        return chart
    lines = ["".join(marks[owner] if ch == textplot.LEGEND_MARK and owner is not None and owner < len(marks)
                     else ch for ch, owner in zip(line, owners))
             for line, owners in zip(chart.lines, chart.owners)]
    return textplot.Chart(lines, chart.owners, chart.names)


def histogram_overlay(edges: np.ndarray, counts: dict[str, np.ndarray], width: int, height: int,
                      marks: list[str] | None = None) -> textplot.Chart:
    """Every model's histogram as a braille line of its share per bin, one over another, with d = 0 marked."""
    centres = (edges[:-1] + edges[1:]) / 2
    series: dict[str, list[textplot.Point]] = {}
    top = 0.0
    for label, c in counts.items():
        total = c.sum()
        shares = c / total if total else np.zeros_like(c, dtype=np.float64)
        top = max(top, float(shares.max(initial=0.0)))
        series[label] = list(zip(centres.tolist(), shares.tolist()))
    if edges[0] < 0 < edges[-1] and top > 0:
        series[ZERO] = [(0.0, 0.0), (0.0, top)]
    return _marked(textplot.plot(series, width, height, legend_values=False), marks) \
        if any(c.sum() for c in counts.values()) else textplot.Chart([], [], list(series))


def histogram_stack(edges: np.ndarray, counts: dict[str, np.ndarray], width: int, height: int,
                    marks: list[str] | None = None) -> textplot.Chart:
    """Each model's histogram in block bars, one under another on the same x scale and bar scale.

    `counts` should have `width` bins (one column each); `height` is shared out between the models,
    one line of each for its name.
    """
    labels = list(counts)
    if not labels or not any(c.sum() for c in counts.values()):
        return textplot.Chart([], [], labels)
    rows_each = max(1, height // len(labels) - 1)
    shares = {label: (c / c.sum() if c.sum() else np.zeros(len(c))) for label, c in counts.items()}
    top = max(float(s.max(initial=0.0)) for s in shares.values())
    zero_at = _column_of(0.0, edges) if edges[0] < 0 < edges[-1] else None
    lines: list[str] = []
    owners: list[list[int | None]] = []
    for index, label in enumerate(labels):
        share = shares[label]
        title = f"{textplot.LEGEND_MARK} {label}"
        peak = f"  (peak {top:.1%} of pairs a bar)"
        if index == 0 and len(title) + len(peak) <= width:
            title += peak
        lines.append(title)
        owners.append([index] + [None] * (len(lines[-1]) - 1))
        for row in textplot.bars(share.tolist(), rows_each, top):
            if zero_at is not None:  # the zero line shows through empty cells
                row = row[:zero_at] + ("│" if row[zero_at] == " " else row[zero_at]) + row[zero_at + 1:]
            lines.append(row)
            owners.append([index if ch not in " │" else None for ch in row])
    axis = _x_axis(edges, len(next(iter(counts.values()))), zero_at)
    lines.append(axis)
    owners.append([None] * len(axis))
    return _marked(textplot.Chart(lines, owners, labels), marks)


def _column_of(value: float, edges: np.ndarray) -> int:
    return int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2))


def _x_axis(edges: np.ndarray, width: int, zero_at: int | None) -> str:
    """The low and high ends of the range under the bars, and 0 under its column."""
    axis = [" "] * width
    left, right = _number(float(edges[0])), _number(float(edges[-1]))
    axis[: len(left)] = left
    if zero_at is not None and len(left) < zero_at < width - len(right) - 1:
        axis[zero_at] = "0"
    axis[max(len(left) + 1, width - len(right)):] = right
    return "".join(axis)[: max(width, len(left) + len(right) + 1)]


def reliability_chart(tables: dict[str, list[ReliabilityBin]], width: int, height: int,
                      marks: list[str] | None = None) -> textplot.Chart:
    """Accuracy against mean confidence per bin, one line per model, over the diagonal of a calibrated model.

    The diagonal comes last, so model i has series index i here as in the histograms: one colour per model.
    """
    series: dict[str, list[textplot.Point]] = {}
    for label, bins in tables.items():
        series[label] = [(b.confidence, b.accuracy) for b in bins if b.count]
    drawn = any(series.values())
    series[DIAGONAL] = [(0.5, 0.5), (1.0, 1.0)]
    if not drawn:
        return textplot.Chart([], [], list(series))
    return _marked(textplot.plot(series, width, height, legend_values=False), marks)


@dataclass(frozen=True)
class Whisker:
    """One row of the accuracy chart: a cell's (or a model's) mean over seeds and its 95 % half-width (NaN: none)."""

    label: str
    mean: float  # a fraction
    half_width: float


def accuracy_whiskers(rows: list[Whisker], width: int, height: int) -> textplot.Chart:
    """Each row's mean accuracy as ● with its interval as a whisker ├──●──┤, on one axis from chance (or lower) to
    the top; the numbers at the end. Row i is series i, so each takes its model's colour."""
    shown = [r for r in rows if r.mean == r.mean][: max(1, height - 1)]
    if not shown:
        return textplot.Chart([], [], [r.label for r in rows])
    hw = lambda r: r.half_width if r.half_width == r.half_width else 0.0  # noqa: E731
    low = min(0.5, min(max(0.0, r.mean - hw(r)) for r in shown))
    low = np.floor(low * 10) / 10
    high = 1.0
    name_width = min(max(len(r.label) for r in shown), max(8, width // 3))
    numbers = [f"{100 * r.mean:.1f}" + ("" if r.half_width != r.half_width else f" ± {100 * r.half_width:.1f}")
               for r in shown]
    number_width = max(len(n) for n in numbers)
    span = max(8, width - name_width - number_width - 2)

    def column(value: float) -> int:
        return int(round((min(max(value, low), high) - low) / (high - low) * (span - 1)))

    lines, owners = [], []
    chance = column(0.5)
    for index, (r, number) in enumerate(zip(shown, numbers)):
        axis = [" "] * span
        axis[chance] = "┆"
        if r.half_width == r.half_width and r.half_width > 0:
            left, right = column(r.mean - r.half_width), column(r.mean + r.half_width)
            for i in range(left, right + 1):
                axis[i] = "─"
            axis[left], axis[right] = "├", "┤"
        axis[column(r.mean)] = "●"
        label = r.label if len(r.label) <= name_width else r.label[: name_width - 1] + "…"
        line = f"{label.ljust(name_width)} {''.join(axis)} {number.rjust(number_width)}"
        lines.append(line)
        owners.append([None] * (name_width + 1) + [index if ch not in " ┆" else None for ch in axis]
                      + [None] * (number_width + 1))
    scale = [" "] * span
    taken = -1  # the last column a label used: a label that would touch it is left out
    for value in sorted({low, 0.5, high}):
        text = f"{100 * value:g}"
        at = min(column(value), span - len(text))
        if at > taken + 1 or taken < 0:
            scale[at:at + len(text)] = text
            taken = at + len(text) - 1
    lines.append(" " * (name_width + 1) + "".join(scale))
    owners.append([None] * len(lines[-1]))
    return textplot.Chart(lines, owners, [r.label for r in shown])
