"""Dataset layouts: how a row of each known preference dataset becomes one pair.

Converters only reshape; ingest.validate() judges the resulting texts, so a
converter skips a row only for what validate cannot see (a tie, a bad label,
no turn to split at). A format whose rows carry a margin (SHP's score ratio,
WebGPT's scores, AlpacaEval's preference) attaches it as a DataLabel; a format
that needs the import's options (ties, thresholds) is bound to them first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from prefstudio.importers.conversations import (BadConversation, as_texts, split_hh, split_shared, transcript_turns,
                                                turns)
from prefstudio.config import MarginConfig
from prefstudio.importers.margins import level_of
from prefstudio.importers.winner import (
    ALPACA_FIELDS,
    MT_BENCH_FIELDS,
    AlpacaEvalReader,
    MtBenchReader,
    Ties,
    oriented,
)
from prefstudio.ingest import DataLabel, RawPair, Skip, not_text

MAX_META_TEXT = 2000
DEFAULT_LEVELS = {kind: MarginConfig().thresholds(kind) for kind in ("alpaca-eval", "shp", "webgpt")}
PAIR_FIELDS = ("prompt", "chosen", "rejected", "source", "split")
HH_HUMAN = "\n\nHuman:"

Converter = Callable[[dict, str], "RawPair | Skip"]


@dataclass(frozen=True)
class ReadOptions:
    """What an import asks of a format beyond the rows: ties, and the data margins' thresholds."""

    ties: Ties = "skip"
    margins: MarginConfig = field(default_factory=MarginConfig)
    margin_levels: tuple[float, float, float] | None = None  # --margin-levels, for this import's data margins

    def thresholds(self, kind: str) -> tuple[float, float, float] | None:
        return self.margin_levels or self.margins.thresholds(kind)


@dataclass(frozen=True)
class Format:
    name: str
    fields: tuple[str, ...]  # the columns a row must have
    convert: Converter
    dataset: str | None = None  # default source name; None: named after the file or dataset
    bind: Callable[[ReadOptions], Converter] | None = None  # the converter for an import's options
    takes_ties: bool = False  # whether --ties keep means something to it

    def converter(self, options: ReadOptions) -> Converter:
        return self.bind(options) if self.bind else self.convert

    def missing(self, row: dict) -> list[str]:
        needed = self.fields
        if self.name in ("pairs", "oasst1") and isinstance(row.get("chosen"), list):
            needed = ("chosen", "rejected")  # conversational: the prompt may be implicit
        return [name for name in needed if name not in row]


def scalar_meta(row: dict) -> dict | None:
    """The row's other short scalar columns, kept as pair metadata."""
    meta = {}
    for key, value in row.items():
        if key in PAIR_FIELDS or value is None:
            continue
        if isinstance(value, str):
            if value and len(value) <= MAX_META_TEXT:
                meta[key] = value
        elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            meta[key] = value
    return meta or None


def _compact(meta: dict) -> dict | None:
    """Meta without missing values; NaN and infinity are dropped too, they are not JSON."""
    meta = {
        key: value
        for key, value in meta.items()
        if value is not None and not (isinstance(value, float) and not math.isfinite(value))
    }
    return meta or None


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _not_text(row: dict, *names: str) -> str | None:
    for name in names:
        why = not_text(row.get(name), name)
        if why:
            return why
    return None


def convert_pairs(row: dict, location: str) -> RawPair | Skip:
    try:
        prompt, chosen, rejected, messages = as_texts(row.get("prompt"), row.get("chosen"), row.get("rejected"))
    except BadConversation as exc:
        return Skip(location, str(exc))
    return RawPair(prompt, chosen, rejected, location, row.get("source"), row.get("split"), scalar_meta(row),
                   turns=messages)


def convert_hh(row: dict, location: str) -> RawPair | Skip:
    why = _not_text(row, "chosen", "rejected")
    if why:
        return Skip(location, why)
    parts = split_hh(row["chosen"], row["rejected"])
    if parts is None:
        return Skip(location, "no shared '\\n\\nAssistant:' turn to split at")
    return RawPair(*parts, location, row.get("source"), row.get("split"), scalar_meta(row),
                   turns=transcript_turns(parts[0]))


def _webgpt_answer(answer: object, quotes: object) -> object:
    if not isinstance(answer, str) or not answer.strip() or not isinstance(quotes, dict):
        return answer
    titles, extracts = quotes.get("title") or [], quotes.get("extract") or []
    if not titles and not extracts:
        return answer
    references = "\n".join(
        f"[{number}] {title}\n{extract}"
        for number, (title, extract) in enumerate(zip(titles, extracts), start=1)
    )
    return f"{answer}\n\nReferences:\n{references}"


def convert_webgpt(row: dict, location: str, thresholds=DEFAULT_LEVELS["webgpt"]) -> RawPair | Skip:
    score_0, score_1 = row.get("score_0"), row.get("score_1")
    if not all(isinstance(score, (int, float)) and math.isfinite(score) for score in (score_0, score_1)):
        return Skip(location, f"score_0 and score_1 must be numbers, found {score_0!r} and {score_1!r}")
    if score_0 == score_1:
        return Skip(location, "tie (score_0 == score_1)")
    win, lose = ("0", "1") if score_0 > score_1 else ("1", "0")
    question = row.get("question")
    prompt = question.get("full_text") if isinstance(question, dict) else question
    difference = abs(float(score_0) - float(score_1))
    return RawPair(
        prompt,
        _webgpt_answer(row.get(f"answer_{win}"), row.get(f"quotes_{win}")),
        _webgpt_answer(row.get(f"answer_{lose}"), row.get(f"quotes_{lose}")),
        location,
        meta={"score_chosen": row[f"score_{win}"], "score_rejected": row[f"score_{lose}"]},
        label=DataLabel("webgpt/score", difference, level_of(difference, thresholds)),
    )


def convert_summarize(row: dict, location: str) -> RawPair | Skip:
    info, summaries, choice = row.get("info"), row.get("summaries"), row.get("choice")
    if type(choice) is not int or choice not in (0, 1):
        return Skip(location, f"choice is {choice!r}, expected 0 or 1")
    if not isinstance(info, dict):
        return Skip(location, f"field 'info' is {type(info).__name__}, expected an object")
    if not isinstance(summaries, list) or len(summaries) != 2 or not all(isinstance(s, dict) for s in summaries):
        return Skip(location, "field 'summaries' must hold two objects with 'text'")
    if info.get("post") is not None:
        prompt = f"SUBREDDIT: r/{info.get('subreddit')}\nTITLE: {info.get('title')}\nPOST: {info['post']}\n\nTL;DR:"
    elif info.get("article") is not None:
        prompt = f"ARTICLE: {info['article']}\n\nTL;DR:"
    else:
        return Skip(location, "field 'info' has neither a post nor an article")
    won, lost = summaries[choice], summaries[1 - choice]
    extra = row.get("extra")
    meta = {
        "chosen_policy": won.get("policy"),
        "rejected_policy": lost.get("policy"),
        "worker": row.get("worker"),
        "confidence": extra.get("confidence") if isinstance(extra, dict) else None,
    }
    return RawPair(prompt, _strip(won.get("text")), _strip(lost.get("text")), location, meta=_compact(meta))


def convert_shp(row: dict, location: str, thresholds=DEFAULT_LEVELS["shp"]) -> RawPair | Skip:
    label = row.get("labels")
    if type(label) is not int or label not in (0, 1):
        return Skip(location, f"labels is {label!r}, expected 1 (A preferred) or 0 (B preferred)")
    a, b = row.get("human_ref_A"), row.get("human_ref_B")
    chosen, rejected = (a, b) if label == 1 else (b, a)
    meta = {key: row.get(key) for key in ("domain", "post_id", "score_A", "score_B", "score_ratio")}
    meta["chosen_ref"] = "A" if label == 1 else "B"
    ratio = row.get("score_ratio")
    data = None
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio) and ratio > 0:
        doublings = abs(math.log2(ratio))  # the preferred comment's votes over the other's, in doublings
        data = DataLabel("shp/score_ratio", doublings, level_of(doublings, thresholds), extra={"score_ratio": ratio})
    return RawPair(row.get("history"), chosen, rejected, location, meta=_compact(meta), label=data)


def convert_arena(row: dict, location: str, ties: Ties = "skip") -> RawPair | Skip:
    winner = row.get("winner")
    if isinstance(winner, str) and winner.startswith("tie"):
        if ties == "skip":
            return Skip(location, winner)
        meta = {"model_a": row.get("model_a"), "model_b": row.get("model_b"), "language": row.get("language"),
                "judge": row.get("judge"), "turn": row.get("turn"), "winner": winner}
        return oriented(None, row.get("conversation_a"), row.get("conversation_b"), "tie", location, ties,
                        "chatbot-arena/winner", meta=_compact(meta))
    if winner not in ("model_a", "model_b"):
        return Skip(location, f"winner is {winner!r}, expected model_a, model_b or a tie")
    win, lose = ("a", "b") if winner == "model_a" else ("b", "a")
    try:
        prompt, chosen, rejected, messages = split_shared(
            turns(row.get(f"conversation_{win}"), f"conversation_{win}"),
            turns(row.get(f"conversation_{lose}"), f"conversation_{lose}"),
        )
    except BadConversation as exc:
        return Skip(location, str(exc))
    meta = {
        "chosen_model": row.get(f"model_{win}"),
        "rejected_model": row.get(f"model_{lose}"),
        "language": row.get("language"),
        "judge": row.get("judge"),
        "turn": row.get("turn"),
    }
    return RawPair(prompt, chosen, rejected, location, meta=_compact(meta), turns=messages)


PAIRS = Format("pairs", ("prompt", "chosen", "rejected"), convert_pairs)
# HH-RLHF ships as subsets (helpful-base/train.jsonl.gz, harmless-base/...) that researchers
# keep apart, so its pairs are named after the file, not the dataset.
HH_RLHF = Format("hh-rlhf", ("chosen", "rejected"), convert_hh)
OASST1 = Format("oasst1", ("prompt", "chosen", "rejected"), convert_pairs, "oasst1")
WEBGPT = Format("webgpt", ("question", "answer_0", "answer_1", "score_0", "score_1"), convert_webgpt, "webgpt",
                bind=lambda o: partial(convert_webgpt, thresholds=o.thresholds("webgpt")))
SUMMARIZE = Format("summarize", ("info", "summaries", "choice"), convert_summarize, "summarize")
SHP = Format("shp", ("history", "human_ref_A", "human_ref_B", "labels"), convert_shp, "shp",
             bind=lambda o: partial(convert_shp, thresholds=o.thresholds("shp")))
CHATBOT_ARENA = Format("chatbot-arena", ("conversation_a", "conversation_b", "winner"), convert_arena, "chatbot-arena",
                       bind=lambda o: partial(convert_arena, ties=o.ties), takes_ties=True)
ALPACA_EVAL = Format("alpaca-eval", ALPACA_FIELDS, AlpacaEvalReader("skip", DEFAULT_LEVELS["alpaca-eval"]).convert,
                     "alpaca-eval", bind=lambda o: AlpacaEvalReader(o.ties, o.thresholds("alpaca-eval")).convert,
                     takes_ties=True)
MT_BENCH = Format("mt-bench", MT_BENCH_FIELDS, MtBenchReader("skip").convert, "mt-bench",
                  bind=lambda o: MtBenchReader(o.ties).convert, takes_ties=True)

FORMATS = {f.name: f for f in (PAIRS, HH_RLHF, OASST1, WEBGPT, SUMMARIZE, SHP, CHATBOT_ARENA, ALPACA_EVAL, MT_BENCH)}


def detect(row: dict) -> Format | None:
    """The format of a row, from its fields; dataset layouts first, their fields are distinctive."""
    for fmt in (WEBGPT, SUMMARIZE, SHP, CHATBOT_ARENA, ALPACA_EVAL, MT_BENCH):
        if not fmt.missing(row):
            return fmt
    if "chosen" not in row or "rejected" not in row:
        return None
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" in row or (isinstance(chosen, list) and isinstance(rejected, list)):
        return PAIRS
    if isinstance(chosen, str) and isinstance(rejected, str) and HH_HUMAN in chosen and HH_HUMAN in rejected:
        return HH_RLHF
    return None
