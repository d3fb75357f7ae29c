"""How far annotators agree, and how consistent the judges are: the numbers behind a margin label.

Two annotators (people or judges, "kind:id") are compared on the pairs both
labelled (agreement.compare): where their levels meet in the confusion matrix,
the quadratic-weighted kappa, and, apart from the level, how often each one
flipped a pair. Below that, weighted kappa of every annotator against every
other (judges, a jury, people), each judge's consistency and position bias, and
the level mix per source. Everything is asked again each time the screen is shown, so labels
given on the other screens count at once.
"""

from __future__ import annotations

import math
from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from prefstudio import agreement
from prefstudio.agreement import Agreement
from prefstudio.config import LEVEL_NAMES
from prefstudio.labels import level_label
from prefstudio.tui.widgets import WorkspaceHeader, literal_text, visible
from prefstudio.tui.workers import ReportsFailedWorkers, query_work

BAR_WIDTH = 40
_EIGHTHS = " ▏▎▍▌▋▊▉"
NAME_WIDTH = max(len(level_label(level)) for level in range(len(LEVEL_NAMES)))


def format_kappa(kappa: float) -> str:
    return "n/a" if math.isnan(kappa) else f"{kappa:.3f}"


def _percent(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share:.1%}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar `fraction` of `width` cells long, to an eighth of a cell."""
    full, part = divmod(round(max(0.0, min(1.0, fraction)) * width * 8), 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def confusion_text(result: Agreement) -> Text:
    cell = max(7, len(f"{result.confusion.max():,}") + 2)
    text = Text(f"{'A ↓   B →':<{NAME_WIDTH}}", style="dim")
    text.append("".join(f"{level:>{cell}}" for level in range(len(LEVEL_NAMES))) + "\n", style="bold")
    for level, row in enumerate(result.confusion):
        text.append(f"{level_label(level):<{NAME_WIDTH}}", style="bold")
        for other, n in enumerate(row):
            text.append(f"{n:>{cell},}", style="bold green" if level == other and n else "")
        text.append("\n")
    text.rstrip()
    return text


def scores_text(result: Agreement) -> Text:
    if result.n == 0:
        return Text("no pair was labelled by both", style="dim")
    lines = [
        ("pairs labelled by both", f"{result.n:,}"),
        ("weighted kappa (quadratic)", format_kappa(result.kappa)),
        ("exact agreement", _percent(result.exact)),
        ("flip rate A", _percent(result.flip_rate_a)),
        ("flip rate B", _percent(result.flip_rate_b)),
        ("flipped by one only", f"{result.flip_disagreements:,}"),
    ]
    if result.value_by_level is not None:  # a data margin's own value, averaged per level of the other side
        holder, means = result.value_by_level
        mine, other = ("A", "B") if holder == result.a else ("B", "A")
        cells = " · ".join(f"{level}: {'–' if m is None else f'{m:.2f}'}" for level, m in enumerate(means))
        lines.append((f"{mine}'s value by {other}'s level", cells))
    text = Text()
    for name, value in lines:
        text.append(f"{name:<28}", style="dim")
        text.append(f"{value}\n", style="bold")
    text.rstrip()
    return text


def consistency_text(rows: list[tuple[str, str, int, int, float]], bias: list[agreement.PositionBias]) -> Text:
    """Each judge's inconsistency across the two orders beside its position bias (agreement.bias_table)."""
    lines = agreement.bias_table([(visible(m), visible(v), *rest) for m, v, *rest in rows],
                                 [replace(b, model=visible(b.model), prompt_version=visible(b.prompt_version))
                                  for b in bias])
    if not lines:
        return Text("no judge has labelled a pair yet", style="dim")
    text = Text(lines[0] + "\n", style="bold")
    text.append("\n".join(lines[1:]) + "\n")
    text.append(agreement.BIAS_NOTE, style="dim")
    return text


def matrix_text(names: list[str], matrix: list) -> Text:
    """Weighted kappa of every annotator against every other: a legend of numbered names, then the matrix."""
    lines = agreement.matrix_lines([visible(name) for name in names], matrix)
    if not lines:
        return Text("fewer than two annotators have labelled pairs", style="dim")
    text = Text("\n".join(lines[:len(names)]) + "\n")
    text.append(lines[len(names)] + "\n", style="bold")
    text.append("\n".join(lines[len(names) + 1:]))
    return text


def distribution_text(distribution: dict[str, list[int]]) -> Text:
    if not distribution:
        return Text("no labels yet", style="dim")
    text = Text()
    for source, counts in distribution.items():
        total = sum(counts)
        text.append(literal_text(source, style="bold"))
        text.append(f" · {total:,} labelled\n", style="dim")
        for level, n in enumerate(counts):
            share = n / total if total else 0.0
            text.append(f"  {level_label(level):<{NAME_WIDTH}} ")
            text.append(f"{bar(share):<{BAR_WIDTH}}", style="cyan")
            text.append(f" {n:>7,} {share:>6.1%}\n")
        text.append("\n")
    text.rstrip()
    return text


class OverviewLoaded(Message):
    def __init__(self, annotators: list[str], consistency: list, bias: list, matrix: tuple,
                 distribution: dict[str, list[int]]) -> None:
        super().__init__()
        self.annotators, self.consistency, self.distribution = annotators, consistency, distribution
        self.bias, self.matrix = bias, matrix


class ComparisonLoaded(Message):
    def __init__(self, result: Agreement) -> None:
        super().__init__()
        self.result = result


class AgreementScreen(ReportsFailedWorkers, Screen):
    CSS_PATH = "agreement_screen.tcss"
    PURPOSE = ("How far the labels agree: person with person, judge with person, the judge with itself in both "
               "orders, and the pairs they disagree on.")  # what `?` says first

    def compose(self) -> ComposeResult:
        yield WorkspaceHeader()
        with Horizontal(id="pickers"):
            yield Static("A (rows)")
            yield Select([], prompt="pick annotator A", compact=True, id="a")
            yield Static("B (columns)")
            yield Select([], prompt="pick annotator B", compact=True, id="b")
        with VerticalScroll(id="body"):
            with Horizontal(id="comparison"):
                yield Static(Text("pick two annotators", style="dim"), id="confusion")
                yield Static(id="scores")
            yield Static(id="matrix")
            yield Static(id="consistency")
            yield Static(id="distribution")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#confusion").border_title = "confusion · rows A's level · columns B's"
        self.query_one("#scores").border_title = "agreement"
        self.query_one("#matrix").border_title = "weighted kappa · everyone against everyone · (pairs labelled by both)"
        self.query_one("#consistency").border_title = "judge consistency and position bias across the two orders"
        self.query_one("#distribution").border_title = "levels per source · the labels that count"

    def on_screen_resume(self) -> None:
        self._load_overview()

    @query_work(group="agreement-overview", exclusive=True)
    def _load_overview(self) -> None:
        with self.app.cursor("agreement-overview") as con:
            names = [f"{kind}:{name}" for kind, name, _ in agreement.annotators(con)]
            loaded = OverviewLoaded(names, agreement.judge_consistency(con), agreement.position_bias(con),
                                    agreement.agreement_matrix(con), agreement.level_distribution(con))
        self.post_message(loaded)

    def on_overview_loaded(self, message: OverviewLoaded) -> None:
        self.query_one("#matrix", Static).update(matrix_text(*message.matrix))
        self.query_one("#consistency", Static).update(consistency_text(message.consistency, message.bias))
        self.query_one("#distribution", Static).update(distribution_text(message.distribution))
        options = [(literal_text(name), name) for name in message.annotators]
        defaults = iter(message.annotators)
        with self.prevent(Select.Changed):
            for select in self.query(Select):
                kept = select.selection
                select.set_options(options)
                pick = kept if kept in message.annotators else next(defaults, None)
                if pick is not None:
                    select.value = pick
        self._compare_picked()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._compare_picked()

    def _compare_picked(self) -> None:
        a, b = self.query_one("#a", Select).selection, self.query_one("#b", Select).selection
        if a is not None and b is not None:
            self._compare(a, b)

    @query_work(group="agreement-compare", exclusive=True)
    def _compare(self, a: str, b: str) -> None:
        with self.app.cursor("agreement-compare") as con:
            result = agreement.compare(con, a, b)
        self.post_message(ComparisonLoaded(result))

    def on_comparison_loaded(self, message: ComparisonLoaded) -> None:
        result = message.result
        if (result.a, result.b) != (self.query_one("#a", Select).selection, self.query_one("#b", Select).selection):
            return  # an older pick's answer
        self.query_one("#confusion", Static).update(confusion_text(result))
        self.query_one("#scores", Static).update(scores_text(result))
