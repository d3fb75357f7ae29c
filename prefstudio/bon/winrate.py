"""Win rate of best-of-N against the first sample, over N = 1, 2, 4, …, N_max (the margin paper's figure 3).

For a prompt with rewards r_0, r_1, … from a reward model, best-of-N is the
argmax of r_0..r_{N-1} (the earliest sample on equal rewards) and the baseline
is sample 0. Each prompt scores 1 (best-of-N wins), 0 (it loses) or 0.5, and
the win rate at N is the mean over the prompts that have N scored samples:

- LLM judge, both orders (docs/methods.md, "The LLM judge"): best-of-N is shown
  as A, then as B. The two calls agreeing on a winner at level ≥ 1 make a win
  or a loss; a tie in either order (level 0) or a disagreement (inconsistent) counts half. An
  answer that cannot be parsed leaves the prompt out of that point (counted
  as missing) rather than guessing.
- Evaluator reward model: a win when the evaluator's reward of best-of-N is
  higher than its reward of sample 0, a tie (half) when equal.
- When best-of-N *is* sample 0 (always at N = 1) the prompt counts as a tie,
  0.5, and no judge is asked: a response cannot beat itself, and a judge's
  answer would only measure its noise. The curve therefore starts at 0.5.

Judging reuses the judge's machinery and its cache: every call is keyed by
(model, prompt version, prompt, A, B) in judge_calls, so a comparison that any
earlier run (another reward model picking the same sample, a larger N) already
paid for costs nothing; the combined outcome goes into bon_judgements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from prefstudio.bon import runs
from prefstudio.errors import PrefstudioError
from prefstudio.judge.runner import JudgeRun, PairTask, RunPlan, call_key, plan_run
from prefstudio.judge.verdict import Judgement

BASELINE = 0
SCORE = {"win": 1.0, "loss": 0.0, "tie": 0.5, "inconsistent": 0.5, "parse_error": None}

Outcome = Callable[[int, int], "str | None"]  # (prompt_id, idx of best-of-N) -> win/loss/tie/..., None unknown


def sizes(n_max: int) -> list[int]:
    """1, 2, 4, … up to n_max, and n_max itself when it is not a power of two."""
    if n_max < 1:
        return []
    out = [1 << k for k in range(n_max.bit_length()) if 1 << k <= n_max]
    return out if out[-1] == n_max else out + [n_max]


def best_index(rewards: Sequence[float], n: int) -> int:
    """The best of the first n samples: the highest reward, the earliest sample among equals."""
    if not 1 <= n <= len(rewards):
        raise ValueError(f"best of {n} needs {n} rewards, got {len(rewards)}")
    return max(range(n), key=lambda i: (rewards[i], -i))


def judge_outcome(judgement: Judgement) -> str:
    """Best-of-N's result from a both-orders judgement in which it was the 'chosen' response."""
    if judgement.outcome != "label":
        return judgement.outcome  # inconsistent or parse_error
    if judgement.level == 0:
        return "tie"
    return "loss" if judgement.flip else "win"


def evaluator_outcome(best_reward: float, baseline_reward: float) -> str:
    if best_reward > baseline_reward:
        return "win"
    return "loss" if best_reward < baseline_reward else "tie"


@dataclass(frozen=True)
class Point:
    n: int
    win_rate: float  # nan when no prompt counts
    prompts: int  # prompts counted
    wins: int
    losses: int
    ties: int  # half points: judge ties, inconsistent judgements, and best-of-N = sample 0
    same: int  # of the ties: best-of-N was sample 0
    missing: int  # prompts with N samples but no usable judgement yet (not judged, or unparsable)
    stderr: float  # standard error of the mean of the per-prompt scores; nan under 2 prompts


def curve(rewards: Mapping[int, Sequence[float]], outcome: Outcome, ns: Sequence[int]) -> list[Point]:
    """The win rate at each N of `ns`; `rewards`: prompt_id -> rewards of samples 0, 1, … (a complete prefix)."""
    points = []
    for n in ns:
        scores, wins, losses, ties, same, missing = [], 0, 0, 0, 0, 0
        for pid, r in rewards.items():
            if len(r) < n:
                continue
            best = best_index(r, n)
            result = "tie" if best == BASELINE else outcome(pid, best)
            score = SCORE.get(result) if result is not None else None
            if score is None:
                missing += 1
                continue
            scores.append(score)
            wins += score == 1.0
            losses += score == 0.0
            ties += score == 0.5
            same += best == BASELINE
        k = len(scores)
        mean = sum(scores) / k if k else math.nan
        stderr = math.sqrt(sum((s - mean) ** 2 for s in scores) / (k - 1) / k) if k > 1 else math.nan
        points.append(Point(n, mean, k, wins, losses, ties, same, missing, stderr))
    return points


def comparisons(rewards: Mapping[int, Sequence[float]], ns: Sequence[int]) -> set[tuple[int, int]]:
    """(prompt_id, idx) of every best-of-N that is not sample 0: what a judge must compare with sample 0."""
    return {(pid, best) for n in ns for pid, r in rewards.items() if len(r) >= n
            for best in [best_index(r, n)] if best != BASELINE}


# -- outcomes from the workspace ---------------------------------------------------------------------

def evaluator_outcomes(con, run_id: str, evaluator: runs.Scorer) -> Outcome:
    scored = runs.rewards_by_prompt(con, run_id, evaluator)

    def outcome(pid: int, idx: int) -> str | None:
        r = scored.get(pid, [])
        return evaluator_outcome(r[idx], r[BASELINE]) if idx < len(r) else None

    return outcome


def judged_outcomes(con, run_id: str, model: str, prompt_identity: str) -> Outcome:
    stored = {(pid, idx): outcome for pid, idx, outcome in con.execute(
        """SELECT j.prompt_id, j.idx, j.outcome FROM bon_judgements j JOIN bon_prompts p ON p.id = j.prompt_id
           WHERE p.run_id = ? AND j.baseline_idx = ? AND j.model = ? AND j.prompt_version = ?""",
        [run_id, BASELINE, model, prompt_identity]).fetchall()}
    return lambda pid, idx: stored.get((pid, idx))


def curves(con, run_id: str, scorers: list[runs.Scorer], outcome: Outcome, n_max: int | None = None
           ) -> dict[runs.Scorer, list[Point]]:
    """Each reward model's win-rate curve over N = 1, 2, 4, … up to n_max (default: the run's largest N)."""
    rewards = {s: runs.rewards_by_prompt(con, run_id, s) for s in scorers}
    top = max((len(r) for by_prompt in rewards.values() for r in by_prompt.values()), default=0)
    ns = sizes(min(n_max, top) if n_max else top)
    return {s: curve(rewards[s], outcome, ns) for s in scorers}


# -- judging what is missing --------------------------------------------------------------------------

@dataclass
class JudgePlan:
    prompt: object  # JudgePrompt
    plan: RunPlan
    targets: dict[str, list[tuple[int, int]]]  # key of the A=best call -> the (prompt_id, idx) it decides

    @property
    def n_comparisons(self) -> int:
        return sum(len(t) for t in self.targets.values())


def plan_judging(ws, run_id: str, scorers: list[runs.Scorer], settings, *, n_max: int | None = None,
                 con=None) -> JudgePlan:
    """The comparisons best-of-N vs sample 0 the judge has not decided yet, and what they would cost.

    Identical texts share one comparison, and calls answered before (in any run) are free.
    """
    from prefstudio.judge.journal import replay_journals
    from prefstudio.judge.prompts import load_prompt

    con = con or ws.con
    prompt = load_prompt(settings.prompt, ws.path)
    replay_journals(con, ws.path)
    decided = judged_outcomes(con, run_id, settings.model, prompt.identity)
    wanted: set[tuple[int, int]] = set()
    for scorer in scorers:
        rewards = runs.rewards_by_prompt(con, run_id, scorer)
        top = max((len(r) for r in rewards.values()), default=0)
        wanted |= comparisons(rewards, sizes(min(n_max, top) if n_max else top))
    wanted = {c for c in wanted if decided(*c) is None}
    rows = _texts(con, sorted(wanted))
    targets: dict[str, list[tuple[int, int]]] = {}
    unique = []
    for pid, idx, text, best, baseline in rows:
        key = call_key(settings.model, prompt.identity, text, best, baseline)  # the key plan_run gives A = best
        if key not in targets:
            unique.append((None, text, best, baseline))
        targets.setdefault(key, []).append((pid, idx))
    return JudgePlan(prompt, plan_run(con, settings, prompt, unique), targets)


def _texts(con, wanted: list[tuple[int, int]]) -> list[tuple[int, int, str, str, str]]:
    """(prompt_id, idx, prompt, response idx, response of sample 0) for each wanted comparison."""
    import pyarrow as pa

    table = pa.table({"pid": pa.array([p for p, _ in wanted], pa.int64()),
                      "idx": pa.array([i for _, i in wanted], pa.int32())})
    con.register("_bon_wanted", table)
    try:
        return con.execute(
            """SELECT w.pid, w.idx, p.prompt, c.response, b.response FROM _bon_wanted w
               JOIN bon_prompts p ON p.id = w.pid
               JOIN bon_candidates c ON c.prompt_id = w.pid AND c.idx = w.idx
               JOIN bon_candidates b ON b.prompt_id = w.pid AND b.idx = ?
               ORDER BY p.ord, w.idx""", [BASELINE]).fetchall()
    finally:
        con.unregister("_bon_wanted")


class WinRateJudgeRun(JudgeRun):
    """A judge run over best-of-N comparisons: calls cached as every judge call is, outcomes into bon_judgements."""

    def __init__(self, *args, targets: dict[str, list[tuple[int, int]]], **kwargs):
        super().__init__(*args, **kwargs)
        self.targets = targets

    @classmethod
    def for_plan(cls, ws, settings, judging: JudgePlan, *, con=None, on_progress=None) -> "WinRateJudgeRun":
        return cls(con or ws.con, settings, judging.prompt, judging.plan, ws.config.margins, workspace=ws.path,
                   on_progress=on_progress, targets=judging.targets)

    def store(self, writer, task: PairTask, judgement: Judgement) -> None:
        outcome = judge_outcome(judgement)
        for pid, idx in self.targets.get(task.key_ab, []):
            writer.statement(
                """INSERT OR REPLACE INTO bon_judgements (prompt_id, idx, baseline_idx, model, prompt_version, outcome,
                   level, key_ab, key_ba, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [pid, idx, BASELINE, self.settings.model, self.prompt.identity, outcome, judgement.level,
                 task.key_ab, task.key_ba, self.stats.run_id])


def check_enough(points: dict[runs.Scorer, list[Point]]) -> None:
    if not any(p.prompts for curve_ in points.values() for p in curve_):
        raise PrefstudioError("no prompt has scored samples to compare; score the run first")
