"""Past judge runs, as `judge_runs` keeps them: what each cost and how often the judge contradicted itself.

The inconsistent share is the judge's position bias on that run (docs/methods.md,
"The LLM judge"): a rising share after a prompt change says the new prompt is
worse, whatever the labels say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PastRun:
    id: str
    model: str
    base_url: str | None  # None: the OpenAI API
    prompt_version: str
    state: str
    started_at: datetime
    n_pairs: int
    n_calls: int
    n_cached: int
    n_inconsistent: int
    n_parse_errors: int
    tokens: int
    cost_usd: float

    @property
    def inconsistent_share(self) -> float:
        """Of the pairs the run set out to judge; NaN for a run with none."""
        return self.n_inconsistent / self.n_pairs if self.n_pairs else float("nan")


def past_runs(con, limit: int = 200) -> list[PastRun]:
    """The newest runs first; a run still going (or killed mid-way) has the counts it had at its start."""
    rows = con.execute(
        """SELECT id, model, base_url, prompt_version, state, started_at, coalesce(n_pairs, 0), coalesce(n_calls, 0),
                  coalesce(n_cached, 0), coalesce(n_inconsistent, 0), coalesce(n_parse_errors, 0),
                  coalesce(tokens_in, 0) + coalesce(tokens_out, 0), coalesce(cost_usd, 0.0)
           FROM judge_runs ORDER BY started_at DESC, id LIMIT ?""",
        [limit],
    ).fetchall()
    return [PastRun(*row) for row in rows]
