"""How far annotators agree: confusion matrix, quadratic-weighted kappa, flips, judge consistency and
position bias.

Levels are compared on the four-level scale (0..3) over the pairs both
annotators labelled; direction is compared separately as the flip rate and the
number of pairs only one of them flipped, so a flip is never mistaken for
agreement on level. A judge's inconsistent result counts as level 0, the level
it stands for. A margin that came with the data (kind 'data', e.g.
data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo) is compared like any
annotator; its continuous value is also averaged per level of the other side,
which shows whether the data's margin grows with the judge's or a person's.
A jury (judge/jury.py) is an annotator like any other here, but it has no two
orders of its own, so it has no consistency or position bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefstudio.errors import PrefstudioError
from prefstudio.judge.verdict import parse_verdict
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


ANNOTATOR_KINDS = ("human", "llm", "model", "data")  # the annotations.annotator_kind values


def _who(who: str) -> tuple[str | None, str]:
    """(kind or None for any, id) of 'kind:id' (human:ana, llm:gpt-4o, data:shp/score_ratio) or a bare id; a
    prefix that is no kind is part of the id, so a jury reads as `jury:a+b` as well as `llm:jury:a+b`."""
    kind, sep, name = who.partition(":")
    return (kind, name) if sep and kind in ANNOTATOR_KINDS else (None, who)


def check_known(con, who: str, option: str) -> None:
    """Refuse an annotator who labelled nothing, naming those who did: a typo must not read as "0 pairs"."""
    known = annotators(con)
    kind, name = _who(who)
    if any(n == name and kind in (None, k) for k, n, _ in known):
        return
    listed = ", ".join(f"{k}:{n} ({count:,} pairs)" for k, n, count in known) or "none yet"
    raise PrefstudioError(f"{option} {who}: no labels by this annotator; annotators with labels: {listed}")


def _labels(con, who: str) -> dict[int, tuple[int, bool, float | None]]:
    """`who` as _who reads it."""
    kind, name = _who(who)
    sql = (f"SELECT pair_id, level, flip, value FROM ({LATEST_LABELS_SQL}) WHERE annotator_id = ? "
           f"AND (? IS NULL OR annotator_kind = ?)")
    return {pid: (level, flip, value) for pid, level, flip, value in con.execute(sql, [name, kind, kind]).fetchall()}


def compare(con, a: str, b: str) -> Agreement:
    return _agreement(a, b, _labels(con, a), _labels(con, b))


def _agreement(a: str, b: str, la: dict, lb: dict) -> Agreement:
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
              AND NOT starts_with(annotator_id, 'jury:')  -- a jury has no two orders of its own
            QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_id, prompt_version ORDER BY id DESC) = 1
        )
        SELECT annotator_id, prompt_version, count(*) FILTER (WHERE outcome IN ('label', 'inconsistent')),
               count(*) FILTER (WHERE outcome = 'inconsistent')
        FROM latest GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    return [(m, v, n, k, k / n if n else 0.0) for m, v, n, k in rows]


def agreement_matrix(con) -> tuple[list[str], list[list[Agreement | None]]]:
    """Every annotator ("kind:id") against every other, each pair of them compared once (None on the diagonal).

    The labels are read once for all: k annotators cost one query, not k².
    """
    labels: dict[str, dict[int, tuple[int, bool, float | None]]] = {}
    for pid, kind, name, level, flip, value in con.execute(
        f"SELECT pair_id, annotator_kind, annotator_id, level, flip, value FROM ({LATEST_LABELS_SQL}) ORDER BY 2, 3"
    ).fetchall():
        labels.setdefault(f"{kind}:{name}", {})[pid] = (level, flip, value)
    names = list(labels)
    matrix: list[list[Agreement | None]] = [[None] * len(names) for _ in names]
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            matrix[i][j] = matrix[j][i] = _agreement(a, names[j], labels[a], labels[names[j]])
    return names, matrix


@dataclass(frozen=True)
class PositionBias:
    """How a judge leans towards the answer shown first (docs/methods.md, "A jury").

    Every pair is asked in both orders, so an unbiased judge names the first-shown answer in exactly half
    of its answers that name a winner (`first_share` 0.5). Of the pairs whose two orders name different
    winners, the judge picked the same *position* both times: `bias_rate` is the share where that position
    was the first (1.0: every inconsistency is first-shown bias; 0.0: all second-shown).
    """

    model: str
    prompt_version: str
    judged: int  # pairs with a verdict in both orders
    inconsistent: int
    first_both: int  # inconsistent pairs where the first-shown answer won both times
    answers_with_winner: int
    first_wins: int  # of those answers, the ones naming the first shown (A)

    @property
    def bias_rate(self) -> float:
        return self.first_both / self.inconsistent if self.inconsistent else float("nan")

    @property
    def first_share(self) -> float:
        return self.first_wins / self.answers_with_winner if self.answers_with_winner else float("nan")


def position_bias(con) -> list[PositionBias]:
    """Each judge's (model, prompt version) position bias, read from the raw answers of its latest labels
    with the judge's own parser, so what is shown is what the labels were made of."""
    rows = con.execute(
        """
        SELECT annotator_id, prompt_version, outcome, raw_response_ab, raw_response_ba FROM annotations
        WHERE annotator_kind = 'llm' AND NOT starts_with(annotator_id, 'jury:')
        QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_id, prompt_version ORDER BY id DESC) = 1
              AND outcome IN ('label', 'inconsistent')
        ORDER BY 1, 2
        """
    ).fetchall()
    counts: dict[tuple[str, str], list[int]] = {}
    for model, version, outcome, raw_ab, raw_ba in rows:
        tally = counts.setdefault((model, version), [0, 0, 0, 0, 0])
        verdicts = [parse_verdict(raw_ab), parse_verdict(raw_ba)]
        if any(v is None for v in verdicts):  # a label without its raw answers (e.g. imported): no positions
            continue
        tally[0] += 1
        firsts = [v.winner == "A" for v in verdicts if v.winner is not None]
        tally[3] += len(firsts)
        tally[4] += sum(firsts)
        if outcome == "inconsistent":
            tally[1] += 1
            tally[2] += verdicts[0].winner == verdicts[1].winner == "A"
    return [PositionBias(model, version, *tally) for (model, version), tally in counts.items()]


def _share(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share:.1%}"


def matrix_lines(names: list[str], matrix: list[list[Agreement | None]]) -> list[str]:
    """The kappa matrix as text, for the command line and the app alike: annotators numbered in a legend,
    each cell "kappa (pairs both labelled)", so long names do not widen the columns."""
    if len(names) < 2:
        return []
    cells = [[("—" if cell is None else "–" if cell.n == 0 else
               f"{'n/a' if math.isnan(cell.kappa) else f'{cell.kappa:.2f}'} ({cell.n:,})") for cell in row]
             for row in matrix]
    width = max(6, *(len(cell) for row in cells for cell in row)) + 2
    number = len(str(len(names)))
    lines = [f"{i + 1:>{number}}  {name}" for i, name in enumerate(names)]
    lines.append(" " * number + "".join(f"{i + 1:>{width}}" for i in range(len(names))))
    lines += [f"{i + 1:>{number}}" + "".join(f"{cell:>{width}}" for cell in row) for i, row in enumerate(cells)]
    return lines


BIAS_HEADER = ("model", "prompt", "judged", "inconsistent", "rate", "first won", "bias")
BIAS_NOTE = ("first won: the judge's answers naming the response shown first (50% if unbiased) · "
             "bias: of the inconsistent pairs, those where the first shown won in both orders")


def bias_table(consistency: list[tuple[str, str, int, int, float]], bias: list[PositionBias]) -> list[str]:
    """Each judge's consistency (judge_consistency) beside its position bias (position_bias), as aligned lines
    under a header line; no line when no judge has labelled a pair."""
    if not consistency:
        return []
    by_judge = {(b.model, b.prompt_version): b for b in bias}
    rows = [BIAS_HEADER]
    for model, version, n, k, rate in consistency:
        found = by_judge.get((model, version))
        first = _share(found.first_share) if found else "n/a"
        to_first = _share(found.bias_rate) if found else "n/a"
        rows.append((model, version, f"{n:,}", f"{k:,}", f"{rate:.1%}", first, to_first))
    widths = [max(len(row[i]) for row in rows) for i in range(len(BIAS_HEADER))]
    return ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


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
