"""Queues that learn: the pairs the trained models and the judges say are worth a person's look, and why.

docs/methods.md, "Queues that learn", states each rule. A *model* is a scored subject other than an
untrained backbone (raw:NAME): a training job, or a reward model scored as model:NAME, each at its
latest scored checkpoint (the highest step). The *latest model* is the last of them in the order the
Evaluate screen lists models (jobs by creation). `d` is r_chosen − r_rejected, as Evaluate measures it:
below 0, the model prefers the dataset's rejected response.

Every queue is one SQL query over `predictions` and `annotations` giving (pair_id, k1, k2): a pair's
place is (k1, k2, pair_id), ascending, so walking on from a pair is a comparison with its key, and a
million pairs stay in DuckDB. Except human–judge flips (a review queue, like disagreements), a queue
holds only the pairs this annotator has not decided yet: a decided pair leaves it.

A queue says why a pair is in it (`Reason`); beside the pair, the judges' and the models' opinions
(`Opinions`) are pre-labels. Neither may tell a person in blind mode which response is the dataset's
chosen one: a reason in blind mode drops every sign of d (membership of 'likely noise' already says the
model prefers the rejected one, so a side would give the chosen one away), and labels' sides are said in
the blind display's A/B. The screen hides the models' pre-labels in blind mode altogether.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from prefstudio import labels
from prefstudio.db import source_split_where

LearnedQueue = Literal["uncertain", "models_disagree", "judge_inconsistent", "human_judge_flips",
                       "agreed_outliers", "likely_noise"]
LEARNED_QUEUES: tuple[LearnedQueue, ...] = ("uncertain", "models_disagree", "judge_inconsistent",
                                            "human_judge_flips", "agreed_outliers", "likely_noise")
REVIEW_QUEUES = ("human_judge_flips",)  # they keep a pair this annotator decided: deciding is what they ask for
AGREED_MODELS = 2  # agreed outliers: at least this many models put the pair below their low fence
TUKEY_K = 1.5  # the low fence, Q1 − 1.5·IQR of a model's d: Evaluate's outlier rule (metrics.tukey_outliers)
NOISE_STDS = 2.0  # likely noise: the latest model's d below −2 standard deviations of its d


@dataclass(frozen=True)
class Model:
    job_id: str
    checkpoint: str
    name: str  # the job's name, else its id


def scored_models(con) -> list[Model]:
    """Each model's latest scored checkpoint, in the order Evaluate lists them: the latest model is the last."""
    rows = con.execute(
        r"""SELECT c.job_id, arg_max(c.checkpoint, coalesce(try_cast(regexp_extract(c.checkpoint, '(\d+)$', 1)
                   AS BIGINT), -1)), any_value(coalesce(nullif(j.name, ''), c.job_id))
            FROM (SELECT DISTINCT job_id, checkpoint FROM predictions WHERE job_id NOT LIKE 'raw:%') c
            LEFT JOIN jobs j ON j.id = c.job_id
            GROUP BY c.job_id ORDER BY min(j.created_at) NULLS FIRST, c.job_id"""
    ).fetchall()
    return [Model(*row) for row in rows]


# Each queue as (pair_id, k1, k2), over model_d and latest_d.
_QUEUE_SQL: dict[str, str] = {
    "uncertain": "SELECT pair_id, abs(d) AS k1, 0.0 AS k2 FROM latest_d",
    # the strongest disagreement first: the weaker of the most positive and the most negative d
    "models_disagree": """SELECT pair_id, -least(max(d), -min(d)) AS k1, 0.0 AS k2 FROM model_d
                          GROUP BY pair_id HAVING min(d) < 0 AND max(d) > 0""",
    "judge_inconsistent": """SELECT DISTINCT pair_id, 0.0 AS k1, 0.0 AS k2 FROM (
                                 SELECT pair_id, outcome FROM annotations
                                 WHERE annotator_kind = 'llm' AND outcome IN ('label', 'inconsistent')
                                 QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_id ORDER BY id DESC) = 1
                             ) WHERE outcome = 'inconsistent'""",
    "human_judge_flips": f"""SELECT DISTINCT h.pair_id, 0.0 AS k1, 0.0 AS k2
                             FROM ({labels.LATEST_LABELS_SQL}) h JOIN ({labels.LATEST_LABELS_SQL}) j
                                  ON j.pair_id = h.pair_id AND j.annotator_kind = 'llm'
                             WHERE h.annotator_kind = 'human' AND h.level > 0 AND j.level > 0
                                   AND h.flip <> j.flip""",
    # more models agreeing first, then the lowest mean d among them
    "agreed_outliers": f"""SELECT m.pair_id, -count(*)::DOUBLE AS k1, avg(m.d) AS k2
                           FROM model_d m JOIN fences f ON f.job_id = m.job_id
                           WHERE m.d < 0 AND m.d < f.low GROUP BY m.pair_id HAVING count(*) >= {AGREED_MODELS}""",
    "likely_noise": f"""SELECT pair_id, d AS k1, 0.0 AS k2 FROM latest_d
                        WHERE d < -{NOISE_STDS} * (SELECT nullif(stddev_pop(d), 0) FROM latest_d)""",
}
_FENCES = f"""SELECT job_id, quantile_cont(d, 0.25) - {TUKEY_K} * (quantile_cont(d, 0.75) - quantile_cont(d, 0.25))
              AS low FROM model_d GROUP BY job_id"""


def _with(models: list[Model]) -> tuple[str, list]:
    """The tables the queues read, and their parameters: model_d (each model's d per pair), latest_d (the latest
    model's), fences (each model's low Tukey fence). A filter per model, not a join: DuckDB skips by zone maps."""
    picked = " OR ".join("(job_id = ? AND checkpoint = ?)" for _ in models) or "FALSE"
    latest = models[-1] if models else Model("", "", "")
    d = "SELECT job_id, pair_id, r_chosen - r_rejected AS d FROM predictions"
    sql = f"""WITH model_d AS ({d} WHERE {picked}), latest_d AS ({d} WHERE job_id = ? AND checkpoint = ?),
              fences AS ({_FENCES})"""
    return sql, [*(x for m in models for x in (m.job_id, m.checkpoint)), latest.job_id, latest.checkpoint]


def _kept(queue: str, annotator: str, source: str | None, split: str | None) -> tuple[list[str], list]:
    """The conditions on `pairs p` a queue's pair must meet: the filters, and undecided by `annotator`."""
    clauses, params = source_split_where(source, split)
    if queue not in REVIEW_QUEUES:
        clauses = [f"p.id NOT IN (SELECT pair_id FROM ({labels.MY_LATEST_SQL}))", *clauses]
        params = [annotator, *params]
    return clauses or ["TRUE"], params


def queue_page(con, annotator: str, queue: LearnedQueue, *, source: str | None = None, split: str | None = None,
               after: int = 0, including: bool = False, limit: int = 50,
               models: list[Model] | None = None) -> list[int]:
    """Pair ids of a queue in its order, from the one after pair `after` (at it, `including`); from the start
    when `after` is not in the queue."""
    models = scored_models(con) if models is None else models
    head, params = _with(models)
    queue_sql = _QUEUE_SQL[queue]
    # the cursor's key first: a filter on one pair that DuckDB pushes down to its rows
    key = con.execute(f"{head} SELECT k1, k2 FROM ({queue_sql}) q WHERE pair_id = ?", [*params, after]).fetchone()
    kept, kept_params = _kept(queue, annotator, source, split)
    if key is not None:
        kept.append(f"(q.k1, q.k2, q.pair_id) {'>=' if including else '>'} (?, ?, ?)")
        kept_params += [*key, after]
    rows = con.execute(
        f"""{head} SELECT q.pair_id FROM ({queue_sql}) q JOIN pairs p ON p.id = q.pair_id WHERE {' AND '.join(kept)}
            ORDER BY q.k1, q.k2, q.pair_id LIMIT ?""",
        [*params, *kept_params, limit],
    ).fetchall()
    return [r[0] for r in rows]


def queue_sizes(con, annotator: str, *, source: str | None = None, split: str | None = None,
                models: list[Model] | None = None) -> dict[str, int]:
    """How many pairs each queue holds now: one query for all six (the models' d is read once)."""
    models = scored_models(con) if models is None else models
    head, params = _with(models)
    parts, part_params = [], []
    for queue, sql in _QUEUE_SQL.items():
        kept, kept_params = _kept(queue, annotator, source, split)
        parts.append(f"SELECT '{queue}' AS queue, count(*) AS n FROM ({sql}) q JOIN pairs p ON p.id = q.pair_id "
                     f"WHERE {' AND '.join(kept)}")
        part_params += kept_params
    counts = dict(con.execute(f"{head} {' UNION ALL '.join(parts)}", [*params, *part_params]).fetchall())
    return {queue: counts.get(queue, 0) for queue in LEARNED_QUEUES}


# -- what the models and judges say about one pair ---------------------------------------------------------

@dataclass(frozen=True)
class ModelOpinion:
    job_id: str
    name: str
    d: float


@dataclass(frozen=True)
class LabelOpinion:
    """An annotator's latest word on a pair: a label, or (a judge) inconsistent."""

    kind: str  # 'human' or 'llm'
    annotator: str
    outcome: str  # 'label' or 'inconsistent'
    level: int | None
    flip: bool
    expected_level: float | None = None  # a judge's soft level, where its endpoint gave logprobs

    def text(self, blind_side: str | None) -> str:
        who = f"{'judge' if self.kind == 'llm' else 'human'} {self.annotator}"
        if self.outcome == "inconsistent":
            return f"{who}: inconsistent"
        side = "" if not self.level else f", {labels.better_side(self.flip, blind_side)} better"
        expected = "" if self.expected_level is None else f" (expected {self.expected_level:.1f})"
        return f"{who}: {labels.level_label(self.level)}{side}{expected}"


@dataclass(frozen=True)
class Opinions:
    """The pre-labels of one pair: the models' d (latest model last) and the judges' and humans' latest words."""

    models: tuple[ModelOpinion, ...] = ()
    judges: tuple[LabelOpinion, ...] = ()
    humans: tuple[LabelOpinion, ...] = ()

    def text(self, blind_side: str | None) -> str:
        """The pre-labels line: in blind mode the judges' sides in A/B and no model (see the module docstring)."""
        parts = [j.text(blind_side) for j in self.judges] or ["no judge label"]
        if blind_side is not None:
            parts.append("models hidden in blind mode")
        elif self.models:
            parts.append("models " + " · ".join(f"{m.name} d = {m.d:+.2f} ({'left' if m.d >= 0 else 'right'})"
                                                for m in self.models))
        else:
            parts.append("no scored model")
        return "  │  ".join(parts)


def opinions(con, pair_id: int, models: list[Model] | None = None) -> Opinions:
    models = scored_models(con) if models is None else models
    d = dict(con.execute(
        "SELECT p.job_id, p.r_chosen - p.r_rejected FROM predictions p "
        "JOIN (SELECT unnest(?::VARCHAR[]) AS job_id, unnest(?::VARCHAR[]) AS checkpoint) m "
        "ON m.job_id = p.job_id AND m.checkpoint = p.checkpoint WHERE p.pair_id = ?",
        [[m.job_id for m in models], [m.checkpoint for m in models], pair_id],
    ).fetchall())
    rows = con.execute(
        "SELECT annotator_kind, annotator_id, outcome, level, flip, expected_level FROM annotations "
        "WHERE pair_id = ? AND annotator_kind IN ('human', 'llm') AND outcome IN ('label', 'inconsistent') "
        "QUALIFY row_number() OVER (PARTITION BY annotator_kind, annotator_id ORDER BY id DESC) = 1 ORDER BY id",
        [pair_id],
    ).fetchall()
    said = [LabelOpinion(kind, who, outcome, level, bool(flip), expected) for kind, who, outcome, level, flip, expected
            in rows]
    return Opinions(tuple(ModelOpinion(m.job_id, m.name, d[m.job_id]) for m in models if m.job_id in d),
                    tuple(o for o in said if o.kind == "llm"), tuple(o for o in said if o.kind == "human"))


# -- why a pair is in a queue ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reason:
    """Why a pair is in a queue, with the figures that say so (one pair's worth; `text` words it)."""

    queue: str
    opinions: Opinions
    latest: ModelOpinion | None = None  # the latest model's d on this pair
    rank: int = 0  # uncertain: 1 for the smallest |d| among the latest model's scored pairs (within the filters)
    of: int = 0  # ... of this many
    std: float = math.nan  # likely noise: the standard deviation of the latest model's d
    below_fence: tuple[ModelOpinion, ...] = field(default=())  # agreed outliers: the models that put it there

    def text(self, blind_side: str | None = None) -> str:
        """One line; in blind mode (`blind_side` 'A' or 'B') without a sign of d, sides in A/B."""
        blind = blind_side is not None

        def said(m: ModelOpinion) -> str:
            return f"{m.name} |d| = {abs(m.d):.2f}" if blind else f"{m.name} d = {m.d:+.2f}"

        latest, models = self.latest, self.opinions.models
        if self.queue == "uncertain" and latest is not None:
            return f"latest model {said(latest)} ({ordinal(self.rank)} most uncertain of {self.of:,})"
        if self.queue == "models_disagree":
            if blind:
                ups, downs = sum(m.d > 0 for m in models), sum(m.d < 0 for m in models)
                return f"models disagree: {ups} prefer one response, {downs} the other (signs hidden in blind mode)"
            return "models disagree: " + " · ".join(said(m) for m in models)
        if self.queue == "judge_inconsistent":
            judges = ", ".join(j.annotator for j in self.opinions.judges if j.outcome == "inconsistent")
            return f"judge {judges}: inconsistent, its verdict changed when the two responses swapped places"
        if self.queue == "human_judge_flips":
            sides = [o.text(blind_side) for o in (*self.opinions.humans, *self.opinions.judges) if o.level]
            return "a human and a judge disagree on the better response: " + " · ".join(sides)
        if self.queue == "agreed_outliers":
            return (f"{len(self.below_fence)} models put it far below their usual d (Tukey's low fence): "
                    + " · ".join(said(m) for m in self.below_fence))
        if self.queue == "likely_noise" and latest is not None:
            return (f"latest model {said(latest)}, {abs(latest.d) / self.std:.1f} std (std {self.std:.2f}) "
                    "against the dataset's order: the label may be noise")
        return ""


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def reason(con, queue: LearnedQueue, pair_id: int, *, source: str | None = None, split: str | None = None,
           models: list[Model] | None = None, said: Opinions | None = None) -> Reason:
    """Why `pair_id` is in `queue`, with the figures the queue's rule looked at."""
    models = scored_models(con) if models is None else models
    said = opinions(con, pair_id, models) if said is None else said
    latest = next((m for m in said.models if m.job_id == models[-1].job_id), None) if models else None
    if queue == "uncertain" and latest is not None:
        clauses, params = source_split_where(source, split)
        rank, of = con.execute(
            f"""SELECT count(*) FILTER (WHERE (abs(x.r_chosen - x.r_rejected), x.pair_id) <= (?, ?)), count(*)
                FROM predictions x JOIN pairs p ON p.id = x.pair_id
                WHERE x.job_id = ? AND x.checkpoint = ? AND {' AND '.join(clauses or ['TRUE'])}""",
            [abs(latest.d), pair_id, models[-1].job_id, models[-1].checkpoint, *params],
        ).fetchone()
        return Reason(queue, said, latest, rank=rank, of=of)
    if queue == "likely_noise" and latest is not None:
        std = con.execute("SELECT stddev_pop(r_chosen - r_rejected) FROM predictions WHERE job_id = ? AND "
                          "checkpoint = ?", [models[-1].job_id, models[-1].checkpoint]).fetchone()[0]
        return Reason(queue, said, latest, std=std)
    if queue == "agreed_outliers" and models:
        head, params = _with(models)
        below = {row[0] for row in con.execute(
            f"{head} SELECT m.job_id FROM model_d m JOIN fences f ON f.job_id = m.job_id "
            "WHERE m.pair_id = ? AND m.d < 0 AND m.d < f.low", [*params, pair_id]).fetchall()}
        return Reason(queue, said, latest, below_fence=tuple(m for m in said.models if m.job_id in below))
    return Reason(queue, said, latest)
