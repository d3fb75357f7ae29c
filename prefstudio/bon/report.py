"""The win-rate curve as text (a braille chart over log₂ N, a table) and as files: winrate.csv, .md and .png.

One function draws for the terminal, the app and the Markdown file alike, so
the three never disagree. The chart's x axis is log₂ N with the N values
written under it (the paper's figure 3 is drawn the same way); a flat 50% line
marks "no better than sample 0".
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from prefstudio import textplot
from prefstudio.bon.winrate import Point

EVEN = "50% (sample 0)"


def plot(curves: dict[str, list[Point]], width: int = 60, height: int = 12) -> textplot.Chart:
    """The curves as a chart (x: N on a log scale, with a flat 50% line); no lines when there is no point."""
    series = {label: [(math.log2(p.n), p.win_rate) for p in points] for label, points in curves.items()}
    xs = sorted({p.n for points in curves.values() for p in points})
    if not xs or all(math.isnan(y) for points in series.values() for _, y in points):
        return textplot.Chart([], [], list(series))
    series[EVEN] = [(0.0, 0.5), (math.log2(xs[-1]), 0.5)]
    chart = textplot.plot(series, width, height)
    x_range = chart.lines[height]  # the y labels' width, then the x range: the N values go there instead
    chart.lines[height] = " " * (len(x_range) - len(x_range.lstrip(" "))) + _ticks(xs, width) + "  N"
    chart.owners[height] = [None] * len(chart.lines[height])
    return chart


def chart(curves: dict[str, list[Point]], width: int = 60, height: int = 12) -> list[str]:
    """The lines of plot(), for a terminal or a file."""
    return plot(curves, width, height).lines


def _ticks(xs: list[int], width: int) -> str:
    """N values placed under their log₂ positions; a label that would overlap its left neighbour is left out."""
    axis = [" "] * (width + 8)
    span = math.log2(xs[-1]) or 1.0
    end = -1
    for n in xs:
        text = str(n)
        at = round(math.log2(n) / span * (width - 1)) if len(xs) > 1 else 0
        at = min(at, width + 8 - len(text))
        if at > end:
            axis[at:at + len(text)] = text
            end = at + len(text)
    return "".join(axis).rstrip()


def table(curves: dict[str, list[Point]]) -> list[str]:
    lines = [f"{'reward model':<36} {'N':>5} {'win rate':>9} {'± s.e.':>7} {'prompts':>8} {'win':>5} {'tie':>5} "
             f"{'loss':>5} {'missing':>8}"]
    for label, points in curves.items():
        for p in points:
            rate = "-" if math.isnan(p.win_rate) else f"{p.win_rate:.1%}"
            se = "-" if math.isnan(p.stderr) else f"{p.stderr:.1%}"
            lines.append(f"{_cut(label, 36):<36} {p.n:>5} {rate:>9} {se:>7} {p.prompts:>8} {p.wins:>5} {p.ties:>5} "
                         f"{p.losses:>5} {p.missing:>8}")
    return lines


def write(folder: str | Path, run_id: str, judged_by: str, curves: dict[str, list[Point]],
          slots: list[int] | None = None) -> list[Path]:
    """winrate.csv (one row per model and N), winrate.md (the chart and the table) and winrate.png in `folder`;
    `slots`: each curve's colour slot (evaluate.compare.colour_slots), so a model has its report colour."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "winrate.csv", folder / "winrate.md"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["run", "judged_by", "reward_model", "n", "win_rate", "stderr", "prompts", "wins", "ties",
                      "same_as_baseline", "losses", "missing"])
        for label, points in curves.items():
            for p in points:
                out.writerow([run_id, judged_by, label, p.n, _cell(p.win_rate), _cell(p.stderr), p.prompts, p.wins,
                              p.ties, p.same, p.losses, p.missing])
    text = [f"# Best-of-N win rate: {run_id}", "",
            f"Best-of-N (chosen by each reward model) against sample 0, judged by {judged_by}; "
            "ties and best-of-N = sample 0 count half.", "", "```", *chart(curves), "```", "", "```",
            *table(curves), "```", ""]
    md_path.write_text("\n".join(text), encoding="utf-8")
    return [csv_path, md_path, plot_png(folder / "winrate.png", run_id, judged_by, curves, slots)]


def plot_png(path: Path, run_id: str, judged_by: str, curves: dict[str, list[Point]],
             slots: list[int] | None = None) -> Path:
    """The curve for a paper: win rate against N on a log₂ axis (as the margin paper's figure 3), ± one s.e."""
    from prefstudio.evaluate.report import colours, figure, markers, save_png

    fig = figure(7, 4.8)
    ax = fig.add_subplot()
    ns = sorted({p.n for points in curves.values() for p in points})
    anything = False
    slots = slots or list(range(len(curves)))  # a model's colour and marker are its report's (evaluate.report)
    for (label, points), colour, mark in zip(curves.items(), colours(slots), markers(slots)):
        drawn = [p for p in points if not math.isnan(p.win_rate)]
        if not drawn:
            continue
        anything = True
        x, y = [p.n for p in drawn], [100 * p.win_rate for p in drawn]
        ax.plot(x, y, marker=mark, color=colour, label=label)
        se = [0.0 if math.isnan(p.stderr) else 100 * p.stderr for p in drawn]
        ax.fill_between(x, [a - b for a, b in zip(y, se)], [a + b for a, b in zip(y, se)], color=colour, alpha=0.15)
    ax.axhline(50.0, color="0.4", linestyle="--", linewidth=1, label=EVEN)
    ax.set_xscale("log", base=2)
    if ns:
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlim(ns[0] / 1.2, ns[-1] * 1.2)
        ax.minorticks_off()
    if not anything:
        ax.text(0.5, 0.6, "no judged prompts yet", transform=ax.transAxes, ha="center", color="0.4")
    ax.set_ylim(0, 100)
    ax.set_xlabel("N (samples the reward model picks its best from)")
    ax.set_ylabel("win rate against sample 0 (%), ± 1 s.e.")
    ax.set_title(f"Best-of-N win rate, run {run_id}, judged by {judged_by}", fontsize="medium")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(3, len(curves) + 1), fontsize="small", frameon=False)
    return save_png(fig, path)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"
