"""Pairs oriented by a winner column: AlpacaEval annotations, MT-bench judgements, `--winner COL`.

Judge outputs and arena logs hold two responses in the order they were shown
and a preference, not chosen/rejected. Taking the first response as chosen
reverses every pair the second one won, so these readers orient each pair by
its preference, skip ties (counted, or kept at level 0 with --ties keep) and
never guess what a number means: a numeric winner column needs a value map.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from prefstudio.errors import PrefstudioError
from prefstudio.importers.conversations import BadConversation, as_texts, split_shared
from prefstudio.importers.margins import level_of, number
from prefstudio.ingest import DataLabel, RawPair, Skip

Side = Literal["a", "b", "tie"]
Ties = Literal["skip", "keep"]
TIES: tuple[Ties, ...] = ("skip", "keep")

# Columns that hold a preference; a file with one of these must not be imported by --map chosen=/rejected=.
WINNER_COLUMNS = ("preference", "winner", "g1_winner", "g2_winner", "choice", "preferred", "label", "labels",
                  "better", "winner_model")
# The two responses of a winner-oriented file, in the order the file shows them.
RESPONSE_PAIRS = (("output_1", "output_2"), ("response_a", "response_b"), ("response_1", "response_2"),
                  ("answer_a", "answer_b"), ("answer_1", "answer_2"), ("completion_a", "completion_b"),
                  ("completion_1", "completion_2"), ("conversation_a", "conversation_b"), ("text_a", "text_b"))
PROMPT_COLUMNS = ("prompt", "instruction", "question")
# Without --winner-values only these (case-insensitive) are read; numbers are never guessed.
DEFAULT_VALUES: dict[str, Side] = {
    "a": "a", "model_a": "a", "response_a": "a", "model_1": "a", "output_1": "a",
    "b": "b", "model_b": "b", "response_b": "b", "model_2": "b", "output_2": "b",
    "tie": "tie", "draw": "tie", "c": "tie", "equal": "tie", "both_bad": "tie", "bothbad": "tie",
}
TIE_REASON = "tie (--ties keep keeps ties at level 0)"


def winner_column(row: dict) -> str | None:
    """The column of a row that looks like a preference, for messages."""
    lowered = {key.lower(): key for key in row}
    return next((lowered[name] for name in WINNER_COLUMNS if name in lowered), None)


def response_columns(row: dict) -> tuple[str, str] | None:
    return next(((a, b) for a, b in RESPONSE_PAIRS if a in row and b in row), None)


# -- the value map -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueMap:
    """What each value of a winner column means: the first response (a), the second (b), or a tie.

    Numbers are matched exactly first; if the map names one number for a and
    one for b, any other number goes to the nearer of the two, and the midpoint
    is a tie (AlpacaEval's 1=a,2=b: 1.2 is a, 1.5 a tie).
    """

    text: dict[str, Side]
    numbers: tuple[tuple[float, Side], ...] = ()
    spec: str = ""

    def side(self, value: object) -> Side | None:
        x = number(value)
        if x is not None and self.numbers:
            for key, side in self.numbers:
                if math.isclose(x, key, rel_tol=0, abs_tol=1e-9):
                    return side
            anchors = {side: key for key, side in self.numbers if side != "tie"}
            if set(anchors) == {"a", "b"} and len(anchors) == 2:
                da, db = abs(x - anchors["a"]), abs(x - anchors["b"])
                if math.isclose(da, db, rel_tol=0, abs_tol=1e-9):
                    return "tie"
                lo, hi = sorted(anchors.values())
                if lo <= x <= hi:
                    return "a" if da < db else "b"
            return None
        if isinstance(value, str):
            key = value.strip().lower()
            if key in self.text:
                return self.text[key]
            if not self.numbers and key.startswith("tie"):  # Arena's "tie (bothbad)"
                return "tie"
        return None

    @classmethod
    def parse(cls, spec: str | None) -> "ValueMap":
        """--winner-values '1=a,2=b,1.5=tie' or 'model_a=a,model_b=b,tie=tie'; None: the default names."""
        if spec is None:
            return cls(dict(DEFAULT_VALUES), spec="a/b, model_a/model_b, tie")
        text: dict[str, Side] = {}
        numbers: list[tuple[float, Side]] = []
        for item in spec.split(","):
            key, sep, side = (part.strip() for part in item.partition("="))
            if not sep or not key or side.lower() not in ("a", "b", "tie"):
                raise PrefstudioError(
                    f"--winner-values {spec!r}: expected VALUE=a, VALUE=b or VALUE=tie, comma-separated, "
                    "e.g. 1=a,2=b,1.5=tie"
                )
            x = number(key)
            if x is not None:
                numbers.append((x, side.lower()))
            else:
                text[key.lower()] = side.lower()
        sides = {side for side in (*text.values(), *(s for _, s in numbers))}
        if not {"a", "b"} <= sides:
            raise PrefstudioError(f"--winner-values {spec!r}: say which value means the first response (=a) "
                                  "and which the second (=b)")
        return cls(text, tuple(numbers), spec)


# -- --winner COL: any file ----------------------------------------------------------------------


@dataclass(frozen=True)
class WinnerReader:
    """Converts rows with fields prompt, a, b (after --map) and a winner column into oriented pairs."""

    column: str
    values: ValueMap
    ties: Ties
    dataset: str

    def check(self, row: dict, label: str) -> None:
        """Refuse at once what would fail on every row: a number without a value map, an unknown value."""
        value = row.get(self.column)
        if self.values.side(value) is not None or value is None:
            return
        if number(value) is not None and not self.values.numbers:
            raise PrefstudioError(
                f"{label}: --winner {self.column}: its values are numbers ({value!r}); say which means which "
                "response with --winner-values, e.g. 1=a,2=b,1.5=tie"
            )
        raise PrefstudioError(
            f"{label}: --winner {self.column}: value {value!r} is not in the value map ({self.values.spec}); "
            "give --winner-values VALUE=a,VALUE=b[,VALUE=tie]"
        )

    def convert(self, row: dict, location: str) -> RawPair | Skip:
        value = row.get(self.column)
        if value is None:
            return Skip(location, f"no winner ('{self.column}' is null)")
        side = self.values.side(value)
        if side is None:
            return Skip(location, f"'{self.column}' value not in the value map ({self.values.spec})")
        return oriented(row.get("prompt"), row.get("a"), row.get("b"), side, location, self.ties,
                        f"{self.dataset}/{self.column}", row.get("source"), row.get("split"),
                        {"winner": value if isinstance(value, (str, int, float)) else str(value)})


def oriented(prompt: object, a: object, b: object, side: Side, location: str, ties: Ties, tie_annotator: str,
             source: object = None, split: object = None, meta: dict | None = None,
             label: DataLabel | None = None, turns: list[dict] | None = None) -> RawPair | Skip:
    """The pair with the winner as chosen; message lists become a shared prompt and two responses (`turns`: the
    prompt's, where the caller split them already)."""
    if side == "tie":
        if ties == "skip":
            return Skip(location, TIE_REASON)
        label = label or DataLabel(tie_annotator, None, 0, False, {"tie": True})
    swapped = side == "b"
    chosen, rejected = (b, a) if swapped else (a, b)
    try:
        prompt, chosen, rejected, found = as_texts(prompt, chosen, rejected)
    except BadConversation as exc:
        return Skip(location, str(exc))
    meta = dict(meta or {})
    meta["chosen_was"] = "b" if swapped else "a"
    if side == "tie":
        meta["tie"] = True
    return RawPair(prompt, chosen, rejected, location, source, split, meta, label, swapped, turns or found)


# -- AlpacaEval annotations ----------------------------------------------------------------------

ALPACA_FIELDS = ("instruction", "output_1", "output_2", "preference")


@dataclass(frozen=True)
class AlpacaEvalReader:
    """AlpacaEval's annotations.json: preference p in [1, 2], 1 = output_1 better, 2 = output_2, 1.5 no preference.

    The winner is output_1 below 1.5 and output_2 above; the soft margin is
    2·|p − 1.5| in [0, 1], a level by the 'alpaca-eval' thresholds. 0 is an old
    encoding of a draw. The instruction's `dataset` names the source.
    """

    ties: Ties
    thresholds: tuple[float, float, float]

    def convert(self, row: dict, location: str) -> RawPair | Skip:
        raw = row.get("preference")
        if raw is None:
            return Skip(location, "no preference (null)")
        p = number(raw)
        if p is None or not (p == 0 or 1 <= p <= 2):
            return Skip(location, "preference is not a number in [1, 2]")
        if p == 0:
            p = 1.5
        side: Side = "tie" if p == 1.5 else "a" if p < 1.5 else "b"
        value = abs(p - 1.5) * 2
        annotator = f"alpaca-eval/{row.get('annotator') or 'preference'}"
        label = DataLabel(annotator, value, level_of(value, self.thresholds), False, {"preference": p})
        if side == "tie" and self.ties == "skip":
            return Skip(location, "tie: preference 1.5 (--ties keep keeps ties at level 0)")
        win, lose = ("2", "1") if side == "b" else ("1", "2")
        meta = {
            "chosen_model": row.get(f"generator_{win}"),
            "rejected_model": row.get(f"generator_{lose}"),
            "preference": p,
            "annotator": row.get("annotator"),
        }
        meta = {key: value for key, value in meta.items() if value is not None}
        return oriented(row.get("instruction"), row.get("output_1"), row.get("output_2"), side, location,
                        self.ties, annotator, row.get("dataset"), row.get("split"), meta, label)


# -- MT-bench pairwise judgements ----------------------------------------------------------------

MT_BENCH_FIELDS = ("question_id", "model_1", "model_2", "g1_winner", "g2_winner", "g1_user_prompt")
_REFERENCE = r"(?:\[The Start of Reference Answer\]\n.*?\n\[The End of Reference Answer\]\n\n)?"
_SINGLE = re.compile(
    r"\[User Question\]\n(?P<q>.*?)\n\n" + _REFERENCE
    + r"\[The Start of Assistant A's Answer\]\n(?P<a>.*)\n\[The End of Assistant A's Answer\]\n\n"
    r"\[The Start of Assistant B's Answer\]\n(?P<b>.*)\n\[The End of Assistant B's Answer\]\s*\Z",
    re.DOTALL,
)
_CONVERSATION = re.compile(
    r"<\|The Start of Assistant (?P<who>[AB])'s Conversation with User\|>\n\n(?P<body>.*?)"
    r"\n\n<\|The End of Assistant (?P=who)'s Conversation with User\|>",
    re.DOTALL,
)
_TURN = re.compile(r"### (User|Assistant [AB]):\n")


def _conversation(body: str) -> list[tuple[str, str]]:
    parts = _TURN.split(body)
    if parts[0].strip():
        raise BadConversation("g1_user_prompt: text before the first '### User:' turn")
    return [("Human" if who == "User" else "Assistant", text.strip()) for who, text in zip(parts[1::2], parts[2::2])]


def mt_bench_turns(user_prompt: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The conversations of assistant A and B that a FastChat pairwise judge prompt shows."""
    found = _SINGLE.search(user_prompt)
    if found:
        question = [("Human", found["q"].strip())]
        return question + [("Assistant", found["a"].strip())], question + [("Assistant", found["b"].strip())]
    conversations = {m["who"]: m["body"] for m in _CONVERSATION.finditer(user_prompt)}
    if set(conversations) != {"A", "B"}:
        raise BadConversation("g1_user_prompt: not a FastChat pairwise judge prompt (no Assistant A and B answers)")
    return _conversation(conversations["A"]), _conversation(conversations["B"])


@dataclass(frozen=True)
class MtBenchReader:
    """FastChat's model_judgment/*_pair.jsonl: one question, two models, the judge's verdict in both orders.

    The answers are read from the first game's judge prompt (model_1 shown as
    A); the turns shared by both become the prompt. g1_winner / g2_winner name
    model_1, model_2 or a tie; a winner counts only when both orders agree, as
    in FastChat's own tables: a disagreement is the judge's position bias and
    counts as a tie. 'error' verdicts are skipped.
    """

    ties: Ties

    def convert(self, row: dict, location: str) -> RawPair | Skip:
        g1, g2 = row.get("g1_winner"), row.get("g2_winner")
        if "error" in (g1, g2):
            return Skip(location, "judge error in one of the two orders")
        if g1 not in ("model_1", "model_2", "tie") or g2 not in ("model_1", "model_2", "tie"):
            return Skip(location, "g1_winner / g2_winner must be model_1, model_2 or tie")
        judge = row.get("judge")
        judge_name = "/".join(str(part) for part in judge) if isinstance(judge, list) else str(judge or "judge")
        if g1 == g2 and g1 != "tie":
            side: Side = "a" if g1 == "model_1" else "b"
        elif g1 != g2 and "tie" not in (g1, g2):
            if self.ties == "skip":
                return Skip(location, "tie: the judge's two orders disagree (--ties keep keeps ties at level 0)")
            side = "tie"
        else:
            side = "tie"
        user_prompt = row.get("g1_user_prompt")
        if not isinstance(user_prompt, str):
            return Skip(location, "field 'g1_user_prompt' is not text")
        try:
            turns_a, turns_b = mt_bench_turns(user_prompt)
            prompt, response_a, response_b, messages = split_shared(turns_a, turns_b)
        except BadConversation as exc:
            return Skip(location, str(exc))
        win, lose = ("2", "1") if side == "b" else ("1", "2")
        meta = {
            "question_id": row.get("question_id"),
            "turn": row.get("turn"),
            "judge": judge_name,
            "chosen_model": row.get(f"model_{win}"),
            "rejected_model": row.get(f"model_{lose}"),
            "g1_winner": g1,
            "g2_winner": g2,
        }
        meta = {key: value for key, value in meta.items() if value is not None}
        return oriented(prompt, response_a, response_b, side, location, self.ties, f"mt-bench/{judge_name}",
                        row.get("source"), row.get("split"), meta, turns=messages)
