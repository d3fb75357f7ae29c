"""How far annotators agree: confusion matrix, quadratic-weighted kappa, flips, judge consistency.

Levels are compared on the four-level scale (0..3) over the pairs both
annotators labelled; direction is compared separately as the flip rate and the
number of pairs only one of them flipped, so a flip is never mistaken for
agreement on level. A judge's inconsistent result counts as level 0, the level
it stands for. A margin that came with the data (kind 'data', e.g.
data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo) is compared like any
annotator; its continuous value is also averaged per level of the other side,
which shows whether the data's margin grows with the judge's or a person's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefstudio.errors import PrefstudioError
from prefstudio.labels import LATEST_LABELS_SQL, RESOLVED_LABELS_SQL

N_LEVELS = 4


def quadratic_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights w_ij = (i - j)^2 / (k - 1)^2."""
    confusion = np.asarray(confusion, dtype=float)
    n = confusion.sum()
    if n == 0:
        return float("nan")
    k = confusion.shape[0]
    i, j = np.indices((k, k))
    weights = (i - j) ** 2 / (k - 1) ** 2
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / n
    denominator = (weights * expected).sum()
    if denominator == 0:  # both annotators used one and the same level throughout
        return 1.0
    return float(1.0 - (weights * confusion).sum() / denominator)


@dataclass
class Agreement:
    a: str
    b: str
    confusion: np.ndarray  # rows: a's level, columns: b's level
    kappa: float
    exact: float  # share of pairs with the same level
    flip_rate_a: float
    flip_rate_b: float
    flip_disagreements: int  # pairs exactly one of them flipped
    n: int
    # a data annotator's mean continuous value at each level 0..3 of the other (None: no pair at that level);
    # (which side holds the values, the means), or None when neither side has values
    value_by_level: tuple[str, list[float | None]] | None = None


def annotators(con) -> list[tuple[str, str, int]]:
    """(kind, id, pairs labelled) of everyone who labelled something."""
    return con.execute(
        f"SELECT annotator_kind, annotator_id, count(*) FROM ({LATEST_LABELS_SQL}) GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()


def check_known(con, who: str, option: str) -> None:
    """Refuse an annotator who labelled nothing, naming those who did: a typo must not read as "0 pairs"."""
    known = annotators(con)
    kind, sep, name = who.partition(":")
    if any((k, n) == (kind, name) if sep else n == who for k, n, _ in known):
        return
    listed = ", ".join(f"{k}:{n} ({count:,} pairs)" for k, n, count in known) or "none yet"
    raise PrefstudioError(f"{option} {who}: no labels by this annotator; annotators with labels: {listed}")


def _labels(con, who: str) -> dict[int, tuple[int, bool, float | None]]:
    """`who` is 'kind:id' (e.g. human:ana, llm:gpt-4o, data:shp/score_ratio) or a bare id."""
    kind, sep, name = who.partition(":")
    columns = "pair_id, level, flip, value"
    if sep:
        sql, params = f"SELECT {columns} FROM ({LATEST_LABELS_SQL}) WHERE annotator_kind = ? AND annotator_id = ?", [kind, name]
    else:
        sql, params = f"SELECT {columns} FROM ({LATEST_LABELS_SQL}) WHERE annotator_id = ?", [who]
    return {pid: (level, flip, value) for pid, level, flip, value in con.execute(sql, params).fetchall()}


def compare(con, a: str, b: str) -> Agreement:
    la, lb = _labels(con, a), _labels(con, b)
    shared = sorted(la.keys() & lb.keys())
    confusion = np.zeros((N_LEVELS, N_LEVELS), dtype=int)
    flips_a = flips_b = flip_disagreements = 0
    for pid in shared:
        (level_a, flip_a, _), (level_b, flip_b, _) = la[pid], lb[pid]
        confusion[level_a, level_b] += 1
        flips_a += flip_a
        flips_b += flip_b
        flip_disagreements += flip_a != flip_b
    n = len(shared)
    return Agreement(
        a, b, confusion, quadratic_kappa(confusion),
        float(np.trace(confusion) / n) if n else float("nan"),
        flips_a / n if n else float("nan"), flips_b / n if n else float("nan"), flip_disagreements, n,
        _value_by_level(shared, (a, la), (b, lb)),
    )


def _value_by_level(shared: list[int], *sides) -> tuple[str, list[float | None]] | None:
    """The first side with continuous values: their mean at each level of the other side."""
    for (name, mine), (_, other) in (sides, sides[::-1]):
        if any(mine[pid][2] is not None for pid in shared):
            sums, counts = [0.0] * N_LEVELS, [0] * N_LEVELS
            for pid in shared:
                value = mine[pid][2]
                if value is not None:
                    sums[other[pid][0]] += value
                    counts[other[pid][0]] += 1
            return name, [total / k if k else None for total, k in zip(sums, counts)]
    return None


def judge_consistency(con) -> list[tuple[str, str, int, int, float]]:
    """(model, prompt version, judged pairs, inconsistent, rate) per judge: its position bias."""
    rows = con.execute(
        """
        WITH latest AS (
            SELECT annotator_id, prompt_version, outcome FROM annotations WHERE annotator_kind = 'llm'
            QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_id, prompt_version ORDER BY id DESC) = 1
        )
        SELECT annotator_id, prompt_version, count(*) FILTER (WHERE outcome IN ('label', 'inconsistent')),
               count(*) FILTER (WHERE outcome = 'inconsistent')
        FROM latest GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    return [(m, v, n, k, k / n if n else 0.0) for m, v, n, k in rows]


def level_distribution(con, who: str | None = None) -> dict[str, list[int]]:
    """source -> counts of levels 0..3 among resolved labels (or one annotator's)."""
    if who is None:
        sql, params = RESOLVED_LABELS_SQL, []
    else:
        kind, sep, name = who.partition(":")
        cond = "annotator_kind = ? AND annotator_id = ?" if sep else "annotator_id = ?"
        sql, params = f"SELECT pair_id, level FROM ({LATEST_LABELS_SQL}) WHERE {cond}", ([kind, name] if sep else [who])
    rows = con.execute(
        f"SELECT p.source, l.level, count(*) FROM ({sql}) l JOIN pairs p ON p.id = l.pair_id GROUP BY ALL", params
    ).fetchall()
    out: dict[str, list[int]] = {}
    for source, level, n in rows:
        out.setdefault(source, [0] * N_LEVELS)[level] = n
    return dict(sorted(out.items()))
