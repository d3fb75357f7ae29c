"""Labels on pairs: writing them by hand, the queues a person walks, and which label counts.

Annotations are append-only: a correction is a new row and the latest row
counts, so nothing a person or a judge said is lost. The one exception is
undo, which removes the row the person just made — that is what undo means.

Which label a pair's margin comes from (`resolved_labels`) is one rule, used by
training and export alike: the latest human label, else the latest jury label
(judge/jury.py), else the latest LLM-judge label (an inconsistent judge result
counts as level 0), else the margin that
came with the data (kind 'data': AlpacaEval's preference, SHP's score ratio,
--margin-from), else none. A person or a judge looked at this pair; the data's
margin was made for the dataset, so it is the fallback. Skips and parse errors
are not labels.

A label's direction is stored as `flip` (the rejected response is the better
one), whatever the screen showed: in blind mode the two responses are A and B
in an order fixed per pair by a seeded hash (`chosen_shown_as`), and
`stored_flip` / `better_side` translate between what was on screen and what
is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from prefstudio.config import LEVEL_NAMES, MarginConfig
from prefstudio.db import source_split_where
from prefstudio.errors import PrefstudioError

# A demo pair's ground truth (prefstudio/demo.py writes it into meta): here, beside the labels it would give
# away, so that the screens hiding it need not import the demo's tables.
GROUND_TRUTH_KEYS = ("gt_level", "gt_flip")  # what the screens hide while a person labels


def ground_truth(meta: dict) -> tuple[int, bool] | None:
    """A demo pair's true (level, flip) from its meta, or None for a pair that carries none.

    Shown only on request: a person who saw it would label the answer, not the pair.
    """
    level = meta.get("gt_level")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 3:
        return None
    return level, meta.get("gt_flip") is True


# The queues a person walks: by pair id, then the queues that learn (evaluate/model_queues.py), each in its own order.
QueueName = Literal["unlabelled", "mine", "skipped", "disagreements", "uncertain", "models_disagree",
                    "judge_inconsistent", "human_judge_flips", "agreed_outliers", "likely_noise"]
QUEUES: tuple[QueueName, ...] = ("unlabelled", "mine", "skipped", "disagreements", "uncertain", "models_disagree",
                                 "judge_inconsistent", "human_judge_flips", "agreed_outliers", "likely_noise")
ID_ORDERED: tuple[QueueName, ...] = QUEUES[:4]  # queue_page's; the others are model_queues.queue_page's


def level_label(level: int) -> str:
    """A level as every screen and command names it: "3 · Distinctly superior" (the stored level, 0..3).

    The label screen's keys are 1-4, one above the level; they are shown as keys,
    never as the level's number, so no two places number the same level apart.
    """
    return f"{level} · {LEVEL_NAMES[level]}"


def signed_margin(margins: MarginConfig, level: int, flip: bool) -> float:
    """The margin for (chosen, rejected) as stored: negative when the annotator flipped the pair."""
    margin = margins.margin(level)
    return -margin if flip else margin


def chosen_shown_as(seed: int, pair_id: int) -> str:
    """Where blind mode shows a pair's chosen response, 'A' (left) or 'B' (right), fixed by (seed, pair)."""
    return "A" if hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[0] % 2 == 0 else "B"


def stored_flip(level: int, right_better: bool, blind_side: str | None) -> bool:
    """The flip a label stores: whether the response said to be better is the rejected one.

    `blind_side` is where blind mode shows the chosen response, None in normal
    mode (chosen on the left). Level 0 says the two are as good: no direction.
    """
    if level == 0:
        return False
    return right_better != (blind_side == "B")


def better_side(flip: bool, blind_side: str | None) -> str:
    """The side on screen a stored label says is better: left/right, or A/B in blind mode."""
    if blind_side is None:
        return "right" if flip else "left"
    return blind_side if not flip else ("B" if blind_side == "A" else "A")


def add_label(con, pair_id: int, annotator: str, level: int, flip: bool, margins: MarginConfig,
              *, extra: str | None = None) -> int:
    if level not in (0, 1, 2, 3):
        raise PrefstudioError(f"level must be 0, 1, 2 or 3, got {level!r}")
    return con.execute(
        "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, extra) "
        "VALUES (?, 'human', ?, 'label', ?, ?, ?, ?) RETURNING id",
        [pair_id, annotator, level, flip, signed_margin(margins, level, flip), extra],
    ).fetchone()[0]


def add_skip(con, pair_id: int, annotator: str) -> int:
    return con.execute(
        "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome) VALUES (?, 'human', ?, 'skip') RETURNING id",
        [pair_id, annotator],
    ).fetchone()[0]


def undo(con, annotation_id: int) -> None:
    """Remove a person's own decision (labels and skips only; judge results are never removed)."""
    con.execute("DELETE FROM annotations WHERE id = ? AND annotator_kind = 'human'", [annotation_id])


@dataclass(frozen=True)
class HumanDecision:
    annotation_id: int
    pair_id: int
    outcome: str  # 'label' or 'skip'
    level: int | None
    flip: bool


def latest_decision(con, pair_id: int, annotator: str) -> HumanDecision | None:
    row = con.execute(
        "SELECT id, pair_id, outcome, level, flip FROM annotations WHERE pair_id = ? AND annotator_kind = 'human' "
        "AND annotator_id = ? AND outcome IN ('label', 'skip') ORDER BY id DESC LIMIT 1",
        [pair_id, annotator],
    ).fetchone()
    return HumanDecision(*row) if row else None


def pair_labels(con, pair_id: int) -> list[tuple[str, int, bool]]:
    """Every annotator's latest label on one pair, as ("kind:id", level, flip): what a disagreement is made of."""
    rows = con.execute(
        f"SELECT annotator_kind || ':' || annotator_id, level, flip FROM ({LATEST_LABELS_SQL}) WHERE pair_id = ? "
        "ORDER BY CASE annotator_kind WHEN 'human' THEN 0 WHEN 'llm' THEN 1 ELSE 2 END, id DESC",
        [pair_id],
    ).fetchall()
    return [(who, level, bool(flip)) for who, level, flip in rows]


def recent_decisions(con, annotator: str, limit: int = 20) -> list[HumanDecision]:
    rows = con.execute(
        "SELECT id, pair_id, outcome, level, flip FROM annotations WHERE annotator_kind = 'human' "
        "AND annotator_id = ? AND outcome IN ('label', 'skip') ORDER BY id DESC LIMIT ?",
        [annotator, limit],
    ).fetchall()
    return [HumanDecision(*r) for r in rows]


MY_LATEST_SQL = """
    SELECT pair_id, outcome FROM annotations
    WHERE annotator_kind = 'human' AND annotator_id = ? AND outcome IN ('label', 'skip')
    QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY id DESC) = 1
"""

# Each annotator's latest label per pair, as (level, flip) and, for data labels, the continuous value;
# a judge's inconsistent result is level 0.
LATEST_LABELS_SQL = """
    SELECT pair_id, annotator_kind, annotator_id, coalesce(level, 0) AS level, flip, id, value
    FROM annotations WHERE outcome IN ('label', 'inconsistent')
    QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_kind, annotator_id ORDER BY id DESC) = 1
"""


def queue_page(con, annotator: str, queue: QueueName, *, source: str | None = None, split: str | None = None,
               after_id: int = 0, limit: int = 50) -> list[int]:
    """Pair ids of a labelling queue after `after_id`, in id order.

    unlabelled: nothing decided by this annotator yet; mine: labelled by them;
    skipped: their latest decision was a skip; disagreements: annotators' latest
    labels differ in level or direction. (The queues that learn: model_queues.queue_page.)
    """
    where, params = _queue_where(annotator, queue)
    picked, picked_params = source_split_where(source, split)
    clauses, rest = [where, "p.id > ?", *picked], [after_id, *picked_params]
    rows = con.execute(
        f"SELECT p.id FROM pairs p WHERE {' AND '.join(clauses)} ORDER BY p.id LIMIT ?", params + rest + [limit]
    ).fetchall()
    return [r[0] for r in rows]


def queue_size(con, annotator: str, queue: QueueName, *, source: str | None = None, split: str | None = None) -> int:
    """How many pairs a queue walked by id holds (the queue picker shows it)."""
    where, params = _queue_where(annotator, queue)
    picked, picked_params = source_split_where(source, split)
    return con.execute(f"SELECT count(*) FROM pairs p WHERE {' AND '.join([where, *picked])}",
                       params + picked_params).fetchone()[0]


def _queue_where(annotator: str, queue: QueueName) -> tuple[str, list]:
    """The condition on `pairs p` of a queue walked by id, and its parameters."""
    if queue not in ID_ORDERED:
        raise ValueError(f"{queue!r} is a queue that learns: model_queues.queue_page walks it")
    params: list = []
    if queue == "disagreements":
        where = f"p.id IN (SELECT pair_id FROM ({LATEST_LABELS_SQL}) GROUP BY pair_id HAVING count(DISTINCT (level, flip)) > 1)"
    else:
        params.append(annotator)
        if queue == "unlabelled":
            where = f"p.id NOT IN (SELECT pair_id FROM ({MY_LATEST_SQL}))"
        else:
            outcome = "label" if queue == "mine" else "skip"
            where = f"p.id IN (SELECT pair_id FROM ({MY_LATEST_SQL}) WHERE outcome = '{outcome}')"
    return where, params


def queue_counts(con, annotator: str, *, source: str | None = None, split: str | None = None) -> dict[str, int]:
    """Pairs done (labelled by this annotator), skipped and left, for the progress bar."""
    picked, picked_params = source_split_where(source, split)
    clauses, params = ["TRUE", *picked], [annotator, *picked_params]
    done, skipped, total = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE m.outcome = 'label'), count(*) FILTER (WHERE m.outcome = 'skip'), count(*)
        FROM pairs p LEFT JOIN ({MY_LATEST_SQL}) m ON m.pair_id = p.id WHERE {' AND '.join(clauses)}
        """,
        params,
    ).fetchone()
    return {"done": done, "skipped": skipped, "left": total - done - skipped, "total": total}


@dataclass(frozen=True)
class QueueFilter:
    """The queue a person walks, narrowed to a source and a split (None: all)."""

    queue: QueueName = "unlabelled"
    source: str | None = None
    split: str | None = None


def next_in_queue(con, annotator: str, f: QueueFilter, after: int, *, including: bool = False,
                  models: list | None = None) -> int | None:
    """The first pair of the queue after pair `after` (or at it, `including`), wrapping round to its start;
    None if it is empty. A queue that learns walks in its own order (model_queues.queue_page), not by id;
    `models`: model_queues.scored_models, where the caller has read them already."""
    if f.queue in ID_ORDERED:
        def page(start: int, at: bool) -> list[int]:
            return queue_page(con, annotator, f.queue, source=f.source, split=f.split,
                              after_id=start - 1 if at else start, limit=1)
    else:
        from prefstudio.evaluate import model_queues  # it builds on this module's SQL: imported where it is needed

        models = model_queues.scored_models(con) if models is None else models

        def page(start: int, at: bool) -> list[int]:
            return model_queues.queue_page(con, annotator, f.queue, source=f.source, split=f.split, after=start,
                                           including=at, limit=1, models=models)
    ids = page(after, including)
    if not ids and after > 0:
        ids = page(0, False)
    return ids[0] if ids else None


# The order in which kinds of label count (module docstring): human, then LLM judge, then data.
LABEL_PRECEDENCE = ("human", "llm", "data")

RESOLVED_LABELS_SQL = f"""
    SELECT pair_id, annotator_kind, annotator_id, level, flip, value
    FROM ({LATEST_LABELS_SQL}) WHERE annotator_kind IN ('human', 'llm', 'data')
    QUALIFY row_number() OVER (
        PARTITION BY pair_id ORDER BY CASE annotator_kind WHEN 'human' THEN 0 WHEN 'llm' THEN 1 ELSE 2 END,
                                      starts_with(annotator_id, 'jury:') DESC, id DESC  -- a jury over its judges
    ) = 1
"""


def resolved_labels(con) -> dict[int, tuple[int, bool]]:
    """pair id -> (level, flip) of the label that counts (module docstring)."""
    return {pid: (level, flip) for pid, _, _, level, flip, _ in con.execute(RESOLVED_LABELS_SQL).fetchall()}
