"""A labelling run's limit counts the pairs of its chain: the run and the runs that continue it.

"limit 500", cancelled at 156, then asked again for the same: the new run judges the 344 that the limit
has left, and says so, rather than 500 new pairs (each run picks pairs this judge has not labelled, so a
fresh run would have gone well past what the person meant to spend). A run asked for exactly what the
newest labelling run of the same judge and pairs was asked for (model, prompt, source, split, limit)
continues that run's chain when that run did not end done and the chain has pairs left; anything else
(another limit, other pairs, a run that ended done) starts a fresh chain.

The chain's count comes from the labels its runs stored, not from the runs' own counters: a run killed
before it wrote its counts is counted right, and a pair whose answers a killed run paid for but never
labelled is labelled (from the cache, free) by the continuation, and counted there.
"""

from __future__ import annotations

from dataclasses import dataclass

LABEL = "label"  # annotate --judge and the app's Judge screen
RETRY_ERRORS = "retry_errors"  # annotate --retry-errors: never continued, never continues


@dataclass(frozen=True)
class Selection:
    """What a labelling run was asked for, as judge_runs keeps it (with its model and prompt)."""

    purpose: str | None  # LABEL, RETRY_ERRORS; None: a run that is not labelling (best-of-N's comparisons)
    source: str | None
    split: str | None
    limit: int | None


@dataclass(frozen=True)
class Continuation:
    """An unfinished chain that a new run goes on with."""

    chain: str  # the id of the chain's first run: one name for the chain, whichever of its runs stopped last
    judged: int  # pairs labelled by the chain's runs so far
    limit: int

    @property
    def left(self) -> int:
        return self.limit - self.judged

    def describe(self) -> str:
        return f"continuing run {self.chain}: {self.judged:,} of {self.limit:,} judged, {self.left:,} left"


def find_continuation(con, *, model: str, prompt_identity: str, selection: Selection) -> Continuation | None:
    """The chain a run asked for `selection` goes on with, or None when it starts fresh (module docstring)."""
    if selection.purpose != LABEL or selection.limit is None:
        return None  # without a limit every run takes all the pairs left: nothing to continue
    newest = con.execute(
        """SELECT state, pair_limit, coalesce(continues, id) FROM judge_runs
           WHERE purpose = ? AND model = ? AND prompt_version = ?
             AND source IS NOT DISTINCT FROM ? AND split IS NOT DISTINCT FROM ?
           ORDER BY started_at DESC LIMIT 1""",
        [LABEL, model, prompt_identity, selection.source, selection.split],
    ).fetchone()
    if newest is None:
        return None
    state, limit, chain = newest
    if state == "done" or limit != selection.limit:
        return None
    # DISTINCT: `annotate --reparse` adds a row with the run's id to a pair the run labelled
    judged = con.execute(
        """SELECT count(DISTINCT pair_id) FROM annotations WHERE annotator_kind = 'llm'
           AND run_id IN (SELECT id FROM judge_runs WHERE id = ? OR continues = ?)""",
        [chain, chain],
    ).fetchone()[0]
    if judged >= limit:
        return None  # stopped once every pair was judged: the chain is complete
    return Continuation(chain, judged, limit)
