"""Several judges on the same pairs, and the one label they give together (docs/methods.md, "A jury").

One judge's level carries its own quirks (a model that never says "distinctly
superior", one that favours the first answer shown). Several judges, each run
as its own annotator through the usual cached runner, are pooled into a jury
label with the median: one judge out of line does not move it. The jury label
is an annotation of its own (kind 'llm', id `jury:a+b`) computed from the
judges' stored labels alone, so it is recomputed for free whenever a judge's
labels change, and it is the llm label that counts for training
(labels.RESOLVED_LABELS_SQL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from prefstudio.config import MarginConfig
from prefstudio.db import source_split_where, transaction
from prefstudio.errors import PrefstudioError
from prefstudio.labels import signed_margin

JURY_PREFIX = "jury:"
_URL_MARK = ("@http://", "@https://")


@dataclass(frozen=True)
class JudgeSpec:
    """One judge of a jury: a model and, when it is not the run's endpoint, its own."""

    model: str
    base_url: str | None = None


def parse_judge(text: str, option: str = "--model") -> JudgeSpec:
    """`gpt-4o` or `Qwen/Qwen2.5-7B-Instruct@http://host:8000/v1`.

    Only an `@` followed by http:// or https:// starts an endpoint, so a model name that itself holds
    an `@` (Vertex's `claude-3-5-sonnet@20240620`) is read whole.
    """
    for mark in _URL_MARK:
        model, found, rest = text.partition(mark)
        if found:
            if not model.strip():
                raise PrefstudioError(f"{option} {text}: no model name before the endpoint; give MODEL@URL")
            return JudgeSpec(model.strip(), mark[1:] + rest.strip())
    return JudgeSpec(text)  # an empty name is refused where every model is (settings.judge_settings)


def parse_judges(texts: list[str], option: str = "--model") -> list[JudgeSpec]:
    """Each judge once: two judges with one name would be one annotator."""
    specs = [parse_judge(text, option) for text in texts]
    names = [spec.model for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PrefstudioError(f"{option} {twice[0]} is given twice; each judge of a jury is its own annotator, "
                              "so give each model once")
    return specs


def jury_id(models: list[str]) -> str:
    """The jury's annotator id: the same judges make the same jury, in whatever order they were given."""
    return JURY_PREFIX + "+".join(sorted(models))


@dataclass(frozen=True)
class Vote:
    """One judge's latest result on a pair: outcome 'label', 'inconsistent' or 'parse_error'."""

    outcome: str
    level: int | None = None
    flip: bool = False


@dataclass(frozen=True)
class JuryVerdict:
    outcome: Literal["label", "inconsistent"]
    level: int
    flip: bool
    consistent: int  # judges whose two orders agreed: the ones that voted


def jury_verdict(votes: list[Vote]) -> JuryVerdict | None:
    """The jury rule (docs/methods.md, "A jury").

    Only consistent judges (outcome 'label') vote. The direction is the one more of them name (a level-0
    vote names none); as many each way is level 0. The level is the median of the voters' levels, a voter
    who named the other winner counting as 0 (it backs no difference in the jury's direction); an even
    number of voters takes the lower of the two middle levels, as `combine` takes the lower of two orders.
    No voter: 'inconsistent' (level 0) if some judge was inconsistent, None (no label) if all failed to parse.
    """
    voters = [vote for vote in votes if vote.outcome == "label"]
    if not voters:
        return JuryVerdict("inconsistent", 0, False, 0) if any(v.outcome == "inconsistent" for v in votes) else None
    rejected = sum(1 for v in voters if v.level and v.flip)
    chosen = sum(1 for v in voters if v.level and not v.flip)
    if chosen == rejected:
        return JuryVerdict("label", 0, False, len(voters))
    flip = rejected > chosen
    levels = sorted(v.level if v.flip == flip else 0 for v in voters)
    level = levels[(len(levels) - 1) // 2]
    return JuryVerdict("label", level, flip and level > 0, len(voters))


_JUDGE_VOTES_SQL = """
    SELECT pair_id, annotator_id, outcome, level, flip FROM annotations
    WHERE annotator_kind = 'llm' AND list_contains(?, annotator_id) AND prompt_version = ?
      AND outcome IN ('label', 'inconsistent', 'parse_error')
    QUALIFY row_number() OVER (PARTITION BY pair_id, annotator_id ORDER BY id DESC) = 1
"""


@dataclass
class JuryResult:
    jury: str
    pairs: int = 0  # pairs every judge has answered
    written: int = 0  # new jury labels (a pair whose jury label is unchanged gets none)
    levels: list[int] | None = None  # jury labels per level 0..3, over `pairs`
    inconsistent: int = 0
    no_label: int = 0  # every judge's answers had no verdict

    def summary(self) -> str:
        levels = " · ".join(f"{level}: {n:,}" for level, n in enumerate(self.levels or [0] * 4))
        return (f"{self.jury}: {self.pairs:,} pairs judged by every judge, {self.written:,} new jury labels; "
                f"levels {levels}; no consistent judge on {self.inconsistent:,}, no verdict on {self.no_label:,}")


def compute_jury(con, models: list[str], prompt_identity: str, margins: MarginConfig, *,
                 source: str | None = None, split: str | None = None) -> JuryResult:
    """Write the jury label of every pair all `models` have answered (with this prompt); no API call.

    A pair's jury label is written only when it differs from the jury's latest one there, so running this
    again changes nothing, and a judge's new label (a reparse, a re-ask) shows up as one new jury row.
    """
    if len(models) < 2:
        raise PrefstudioError(f"a jury needs at least two judges, got {len(models)}")
    jury = jury_id(models)
    picked, params = source_split_where(source, split)
    where = f"WHERE {' AND '.join(picked)}" if picked else ""
    rows = con.execute(
        f"SELECT v.* FROM ({_JUDGE_VOTES_SQL}) v JOIN pairs p ON p.id = v.pair_id {where} ORDER BY v.pair_id",
        [models, prompt_identity, *params],
    ).fetchall()
    votes: dict[int, dict[str, Vote]] = {}
    for pair_id, model, outcome, level, flip in rows:
        votes.setdefault(pair_id, {})[model] = Vote(outcome, level, bool(flip))
    current = {
        pair_id: (outcome, level, bool(flip))
        for pair_id, outcome, level, flip in con.execute(
            "SELECT pair_id, outcome, level, flip FROM annotations WHERE annotator_kind = 'llm' AND annotator_id = ? "
            "AND prompt_version = ? QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY id DESC) = 1",
            [jury, prompt_identity],
        ).fetchall()
    }
    result = JuryResult(jury, levels=[0] * 4)
    new_rows = []
    for pair_id, by_model in votes.items():
        if len(by_model) < len(models):
            continue  # a judge has not answered yet: its vote could still change the median
        result.pairs += 1
        verdict = jury_verdict([by_model[m] for m in sorted(models)])
        if verdict is None:
            result.no_label += 1
            continue
        result.levels[verdict.level] += 1
        result.inconsistent += verdict.outcome == "inconsistent"
        if current.get(pair_id) == (verdict.outcome, verdict.level, verdict.flip):
            continue
        members = {m: [v.outcome, v.level, v.flip] for m, v in sorted(by_model.items())}
        new_rows.append([pair_id, jury, verdict.outcome, verdict.level, verdict.flip,
                         signed_margin(margins, verdict.level, verdict.flip), prompt_identity,
                         json.dumps({"jury": members, "voters": verdict.consistent})])
    if new_rows:
        with transaction(con):
            con.executemany(
                "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, "
                "prompt_version, tokens_in, tokens_out, cost_usd, extra) VALUES (?, 'llm', ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)",
                new_rows,
            )
    result.written = len(new_rows)
    return result


def jury_pair_ids(con, models: list[str], prompt_identity: str, *, source: str | None = None,
                  split: str | None = None, limit: int | None = None) -> list[int] | None:
    """The pairs a jury run gives every judge: the first `limit` that some judge has not answered.

    Judges picking their own unjudged pairs under a limit would judge different pairs (one that ran
    before would move on), and the jury labels only pairs all of them answered. None: no limit, each
    judge takes every pair it has not answered, which is the same set.
    """
    if limit is None:
        return None
    picked, params = source_split_where(source, split)
    missing = ("(SELECT count(DISTINCT annotator_id) FROM annotations a WHERE a.pair_id = p.id AND "
               "a.annotator_kind = 'llm' AND list_contains(?, a.annotator_id) AND a.prompt_version = ?) < ?")
    sql = (f"SELECT p.id FROM pairs p WHERE {' AND '.join([missing, *picked])} ORDER BY p.id LIMIT {int(limit)}")
    return [row[0] for row in con.execute(sql, [models, prompt_identity, len(models), *params]).fetchall()]


def plan_jury(ws, judges: list, *, con=None, source: str | None = None, split: str | None = None,
              limit: int | None = None, retry_errors: bool = False) -> list[tuple]:
    """Each judge's (settings, prompt, plan) over the same pairs (jury_pair_ids), before anything is spent.

    `judges`: their JudgeConfig, one per judge; `con`: a cursor (from a worker thread). The plans are run one
    after the other, then compute_jury.
    """
    from prefstudio.judge.journal import replay_journals
    from prefstudio.judge.prompts import load_prompt
    from prefstudio.judge.runner import prepare_run

    identity = load_prompt(judges[0].prompt, ws.path).identity
    con = con or ws.con
    replay_journals(con, ws.path)  # a killed run's answers count as answered before the pairs are picked
    models = [judge.model for judge in judges]
    pair_ids = None if retry_errors else jury_pair_ids(con, models, identity, source=source, split=split,
                                                       limit=limit)
    return [(judge, *prepare_run(ws, judge, con=con, source=source, split=split, limit=limit, pair_ids=pair_ids,
                                 retry_errors=retry_errors)) for judge in judges]
