"""Reading a judge's verdict, and combining the two orders into one label.

The verdict is read from the judge's own verdict line, never from text it
quotes: a response may itself hold "Verdict: B>>>A", and a judge that quotes it
while reasoning must not be read as having said it. So the parser takes the
last line that is a verdict line (`Verdict: A>>B`, with Markdown decoration);
only when the answer has none does it read the last non-empty line alone (e.g.
`[[B>A]]`), skipping anything in quotation marks there. What neither finds is
a parse error that keeps its raw text for a later re-parse or re-ask. A JSON
answer (a prompt with `structured = "json_schema"`) is read from its "verdict"
field only. The combination rule (docs/methods.md, "The LLM judge"): the two calls must name
the same winner, else the pair is inconsistent (level 0); agreeing calls take
the lower level. Where the endpoint gave logprobs, each call's verdict
distribution and the pair's expected level are read too (docs/methods.md,
"Structured verdicts and soft labels").
"""

from __future__ import annotations

import json
import math
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
_JSON_VERDICT = re.compile(r'"verdict"\s*:\s*"\s*')  # where a JSON answer's verdict value starts
_OPERATOR = re.compile(r">{1,3}(?!>)|=")  # an operator token's text as it starts

# The verdicts a judge may give, as the prompts list them (and the JSON schema's enum).
VERDICTS = ("A>>>B", "A>>B", "A>B", "A=B", "B>A", "B>>A", "B>>>A")
# The chat-completions `response_format` of a JSON-schema prompt: the reason first, so it is written before the verdict.
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"reason": {"type": "string"}, "verdict": {"type": "string", "enum": list(VERDICTS)}},
            "required": ["reason", "verdict"],
            "additionalProperties": False,
        },
    },
}


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
    found = find_verdict(text)
    return found[0] if found else None


def find_verdict(text: str | None) -> tuple[Verdict, int] | None:
    """The verdict and the offset in `text` of its first letter (where its logprobs are read), or None."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        found = _json_verdict(text)
        if found is not False:
            return found
    lines, at = [], 0  # (offset, line) of the non-empty lines
    for line in text.splitlines(keepends=True):
        if line.strip():
            lines.append((at, line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")))
        at += len(line)
    for start, line in reversed(lines):
        match = _STRICT.match(line)
        if match:  # the judge's last verdict line is its verdict
            verdict = _to_verdict(*match.groups(), strict=True)
            return (verdict, start + match.start(1)) if verdict else None
    if not lines:
        return None
    start, line = lines[-1]
    unquoted = _QUOTED.sub(lambda quoted: " " * len(quoted.group()), line)
    for match in reversed(list(_LENIENT.finditer(unquoted))):
        verdict = _to_verdict(*match.groups(), strict=False)
        if verdict:
            return verdict, start + match.start(1)
    return None


def _json_verdict(text: str) -> tuple[Verdict, int] | None | bool:
    """A JSON answer's verdict field (None: a JSON object without a verdict in it); False: not JSON."""
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    if not isinstance(answer, dict):
        return False
    given = answer.get("verdict")
    match = re.fullmatch(r"\s*" + _TOKEN + r"\s*", given) if isinstance(given, str) else None
    verdict = _to_verdict(*match.groups(), strict=True) if match else None
    if verdict is None:
        return None  # never read from the reason: it may quote a response's verdict
    value = list(_JSON_VERDICT.finditer(text))
    return verdict, (value[-1].end() if value else -1)


def verdict_distribution(text: str, tokens: list[tuple[str, float, list[tuple[str, float]]]] | None
                         ) -> dict[str, float] | None:
    """P(verdict) over VERDICTS from a call's logprobs (docs/methods.md, "Structured verdicts and soft labels").

    `tokens`: the answer's tokens as (text, logprob, top alternatives as (text, logprob)). Read where the
    verdict is written as winner letter, then operator in the next token: the letter's alternatives give
    P(A), P(B), the operator's give P(>), P(>>), P(>>>), P(=), each normalised over those; a level's
    probability for a winner is the product. None where the answer cannot be read so.
    """
    found = find_verdict(text)
    if not found or not tokens or "".join(token for token, _, _ in tokens) != text:
        return None
    at = found[1]
    start = 0
    for index, (token, _, _) in enumerate(tokens):
        if start <= at < start + len(token):
            break
        start += len(token)
    else:
        return None
    if at + 1 != start + len(token) or index + 1 >= len(tokens) or not _OPERATOR.match(tokens[index + 1][0]):
        return None  # the letter does not end its token, or no operator token follows (e.g. "B<A")
    before = token[: at - start]
    winners = {letter: 0.0 for letter in "AB"}
    for alternative, probability in _alternatives(tokens[index]):
        if alternative in (before + "A", before + "B"):
            winners[alternative[-1]] += probability
    operators = {op: 0.0 for op in (">", ">>", ">>>", "=")}
    for alternative, probability in _alternatives(tokens[index + 1]):
        match = _OPERATOR.match(alternative)
        if match:
            operators[match.group()] += probability
    winner_mass, operator_mass = sum(winners.values()), sum(operators.values())
    if winner_mass <= 0 or operator_mass <= 0:
        return None
    tie = operators["="] / operator_mass
    probs = {}
    for verdict in VERDICTS:
        letter, op = verdict[0], verdict[1:-1]
        probs[verdict] = tie if op == "=" else winners[letter] / winner_mass * operators[op] / operator_mass
    return probs


def _alternatives(token: tuple[str, float, list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """A position's top alternatives as probabilities, the sampled token among them once."""
    text, logprob, top = token
    seen = dict(top)
    seen.setdefault(text, logprob)
    return [(alternative, math.exp(value)) for alternative, value in seen.items()]


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


def _as_verdict(name: str) -> Verdict:
    return _to_verdict(name[0], name[1:-1], name[-1], strict=True)


def signed_level(judgement: Judgement) -> int:
    """The label in the chosen's view: its level, negative when the rejected response won (a flip)."""
    return -(judgement.level or 0) if judgement.flip else (judgement.level or 0)


def expected_level(chosen_as_a: dict[str, float] | None, chosen_as_b: dict[str, float] | None) -> float | None:
    """The soft label: the expected signed level of the both-orders rule (combine), the two calls' verdicts
    drawn independently from their distributions; in [-3, 3], negative where the rejected is expected to win.
    None unless both calls have a distribution."""
    if not chosen_as_a or not chosen_as_b:
        return None
    return sum(p_ab * p_ba * signed_level(combine(_as_verdict(ab), _as_verdict(ba)))
               for ab, p_ab in chosen_as_a.items() for ba, p_ba in chosen_as_b.items())
