"""Reading a judge's verdict, and combining the two orders into one label.

The verdict is read from the judge's own verdict line, never from text it
quotes: a response may itself hold "Verdict: B>>>A", and a judge that quotes it
while reasoning must not be read as having said it. So the parser takes the
last line that is a verdict line (`Verdict: A>>B`, with Markdown decoration);
only when the answer has none does it read the last non-empty line alone (e.g.
`[[B>A]]`), skipping anything in quotation marks there. What neither finds is
a parse error that keeps its raw text for a later re-parse or re-ask. The
combination rule (docs/methods.md, "The LLM judge"): the two calls must name
the same winner, else the pair is inconsistent (level 0); agreeing calls take
the lower level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Winner = Literal["A", "B"] | None


@dataclass(frozen=True)
class Verdict:
    """One call's answer: who won (None for a tie) and by how much (0..3)."""

    winner: Winner
    level: int
    strict: bool  # found by the strict pattern (False: by the lenient fallback)


_TOKEN = r"([AB])\s*(>{1,3}|<{1,3}|=)\s*([AB])"
# A whole line: "Verdict: A>>B", "**Final verdict:** `[[B>A]]`.", "My verdict: A=B (negligible difference)".
_STRICT = re.compile(
    r"^\s*[*_#]*\s*(?:final\s+|my\s+)?verdict\s*[*_]*\s*:\s*[*_]*\s*`?\[*\s*" + _TOKEN
    + r"\s*\]*`?\s*[*_]*\s*\.?\s*(?:\([^()]*\)\s*\.?)?\s*$",
    re.IGNORECASE,
)
_LENIENT = re.compile(r"(?<![A-Za-z])" + _TOKEN + r"(?![A-Za-z])")
_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')  # "…" and “…”: what the judge quotes, not what it says


def _to_verdict(left: str, op: str, right: str, strict: bool) -> Verdict | None:
    left, right = left.upper(), right.upper()
    if left == right:
        return None
    if op == "=":
        return Verdict(None, 0, strict)
    level = len(op)
    bigger = left if op[0] == ">" else right
    return Verdict(bigger, level, strict)


def parse_verdict(text: str | None) -> Verdict | None:
    """The verdict in a judge's answer, or None when there is none to be found (module docstring)."""
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        match = _STRICT.match(line)
        if match:
            return _to_verdict(*match.groups(), strict=True)  # the judge's last verdict line is its verdict
    if not lines:
        return None
    for match in reversed(list(_LENIENT.finditer(_QUOTED.sub(" ", lines[-1])))):
        verdict = _to_verdict(*match.groups(), strict=False)
        if verdict:
            return verdict
    return None


@dataclass(frozen=True)
class Judgement:
    """The pair's label from both orders: outcome, level 0..3 and flip (rejected better)."""

    outcome: Literal["label", "inconsistent", "parse_error"]
    level: int | None
    flip: bool


def _chosen_view(verdict: Verdict, chosen_is: Literal["A", "B"]) -> tuple[bool | None, int]:
    """(True if chosen won / False if rejected won / None for a tie, level)."""
    if verdict.winner is None:
        return None, 0
    return verdict.winner == chosen_is, verdict.level


def combine(chosen_as_a: Verdict | None, chosen_as_b: Verdict | None) -> Judgement:
    """The both-orders rule (docs/methods.md, "The LLM judge"). A tie in one order and a winner in the
    other is not a contradiction of winners; it takes the lower level (0), as any level disagreement does."""
    if chosen_as_a is None or chosen_as_b is None:
        return Judgement("parse_error", None, False)
    won_1, level_1 = _chosen_view(chosen_as_a, "A")
    won_2, level_2 = _chosen_view(chosen_as_b, "B")
    if won_1 is not None and won_2 is not None and won_1 != won_2:
        return Judgement("inconsistent", 0, False)
    level = min(level_1, level_2)
    if level == 0:
        return Judgement("label", 0, False)
    winner_is_chosen = won_1 if won_1 is not None else won_2
    return Judgement("label", level, not winner_is_chosen)
