"""Best-of-N runs in the workspace: a run's prompts, their candidates and their rewards.

A run is a set of prompts with N candidate responses each, sampled from one
policy (or imported from a file). Candidate `idx` is the sample's position:
sample 0 is the baseline of the win rate and best-of-N looks at the first N,
so positions are never renumbered. Every write is keyed (a prompt by its text
within a run, a candidate by (prompt, idx), a reward by (candidate, scorer,
checkpoint)), so importing, ingesting or scoring again adds nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from prefstudio.db import source_split_where, transaction
from prefstudio.errors import PrefstudioError

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Scorer:
    """A reward model that scored a run: a training job's checkpoint."""

    job_id: str
    checkpoint: str
    name: str | None = field(default=None, compare=False)  # the job's name, for people; job_id is the key

    @property
    def short(self) -> str:
        return self.name or self.job_id

    @property
    def label(self) -> str:
        return f"{self.short} ({self.checkpoint})"


@dataclass(frozen=True)
class Run:
    id: str
    origin: str  # hf, endpoint, file
    policy: str
    job_id: str | None
    created_at: datetime
    n_prompts: int
    n_candidates: int
    max_n: int
    scorers: tuple[Scorer, ...] = ()


@dataclass(frozen=True)
class PromptRow:
    """A prompt to sample for, with where it came from."""

    prompt: str
    pair_id: int | None = None
    source: str | None = None


@dataclass
class Candidate:
    idx: int
    response: str
    n_tokens: int | None
    finish: str | None
    rewards: dict[Scorer, float] = field(default_factory=dict)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise PrefstudioError(f"run name {run_id!r}: expected 1-64 letters, digits, '.', '_', ':' or '-', "
                              "starting with a letter or digit")
    return run_id


def fresh_run_id(policy: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(policy.rstrip("/")).name or "policy").strip("-.")[:32] or "policy"
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run(con, run_id: str, *, origin: str, policy: str, settings: dict | None = None,
               job_id: str | None = None) -> None:
    check_run_id(run_id)
    if con.execute("SELECT 1 FROM bon_runs WHERE id = ?", [run_id]).fetchone():
        raise PrefstudioError(f"best-of-N run {run_id!r} exists already; pick another name with --run")
    con.execute("INSERT INTO bon_runs (id, origin, policy, settings, job_id) VALUES (?, ?, ?, ?, ?)",
                [run_id, origin, policy, json.dumps(settings or {}), job_id])


def add_prompts(con, run_id: str, prompts: list[PromptRow]) -> list[int]:
    """The prompts' ids in the run, in the order given; prompts the run has already keep their id and place."""
    hashes = [prompt_hash(p.prompt) for p in prompts]
    # fetchall, not fetchone: DuckDB refuses register() while a result is not read to its end
    start = con.execute("SELECT coalesce(max(ord) + 1, 0) FROM bon_prompts WHERE run_id = ?", [run_id]).fetchall()[0][0]
    fresh, seen = [], set()
    for prompt, digest in zip(prompts, hashes):
        if digest not in seen:
            seen.add(digest)
            fresh.append((prompt, digest))
    table = pa.table({
        "ord": pa.array(range(len(fresh)), pa.int32()),
        "prompt": pa.array([p.prompt for p, _ in fresh], pa.string()),
        "prompt_hash": pa.array([d for _, d in fresh], pa.string()),
        "pair_id": pa.array([p.pair_id for p, _ in fresh], pa.int64()),
        "source": pa.array([p.source for p, _ in fresh], pa.string()),
    })
    con.register("_bon_prompts", table)
    try:
        con.execute("""INSERT INTO bon_prompts (run_id, ord, prompt, prompt_hash, pair_id, source)
                       SELECT ?, ? + row_number() OVER (ORDER BY ord) - 1, prompt, prompt_hash, pair_id, source
                       FROM _bon_prompts n
                       WHERE NOT EXISTS (SELECT 1 FROM bon_prompts o WHERE o.run_id = ? AND o.prompt_hash = n.prompt_hash)
                       ORDER BY ord""", [run_id, start, run_id])
        ids = dict(con.execute("SELECT prompt_hash, id FROM bon_prompts WHERE run_id = ? AND prompt_hash IN "
                               "(SELECT prompt_hash FROM _bon_prompts)", [run_id]).fetchall())
    finally:
        con.unregister("_bon_prompts")
    return [ids[d] for d in hashes]


def select_prompts(con, spec: str, limit: int | None = None) -> list[PromptRow]:
    """The distinct prompts of the pairs in `spec` ("SPLIT" or "SPLIT/SOURCE"), in the order of their first pair."""
    split, _, source = spec.partition("/")
    where, params = source_split_where(source or None, split, table="")
    rows = con.execute(
        f"""SELECT prompt, min(id), arg_min(source, id) FROM pairs
           WHERE {' AND '.join(where)} GROUP BY prompt ORDER BY min(id)"""
        + (f" LIMIT {int(limit)}" if limit else ""),
        params,
    ).fetchall()
    if not rows:
        known = [f"{s}/{src}" for s, src in con.execute(
            "SELECT DISTINCT split, source FROM pairs ORDER BY ALL").fetchall()]
        raise PrefstudioError(f"--prompts {spec}: no pairs there (split/source: {', '.join(known) or 'none'})")
    return [PromptRow(prompt, pair_id, src) for prompt, pair_id, src in rows]


# -- reading back -------------------------------------------------------------------------------------

def list_runs(con) -> list[Run]:
    rows = con.execute(
        """SELECT r.id, r.origin, r.policy, r.job_id, r.created_at,
                  (SELECT count(*) FROM bon_prompts p WHERE p.run_id = r.id),
                  (SELECT count(*) FROM bon_candidates c JOIN bon_prompts p ON p.id = c.prompt_id WHERE p.run_id = r.id),
                  (SELECT coalesce(max(c.idx) + 1, 0) FROM bon_candidates c JOIN bon_prompts p ON p.id = c.prompt_id
                   WHERE p.run_id = r.id)
           FROM bon_runs r ORDER BY r.created_at, r.id"""
    ).fetchall()
    return [Run(*row, scorers=tuple(scorers(con, row[0]))) for row in rows]


def get_run(con, run_id: str) -> Run:
    runs = list_runs(con)
    for run in runs:
        if run.id == run_id:
            return run
    raise PrefstudioError(f"no best-of-N run {run_id!r} (runs: {', '.join(r.id for r in runs) or 'none'}; "
                          "make one with `prefstudio bon sample` or `prefstudio bon import`)")


def scorers(con, run_id: str) -> list[Scorer]:
    """The reward models that scored some of the run's candidates, in the order they first did."""
    rows = con.execute(
        """SELECT s.scorer, s.checkpoint, any_value(j.name) FROM bon_scores s JOIN bon_prompts p ON p.id = s.prompt_id
           LEFT JOIN jobs j ON j.id = s.scorer
           WHERE p.run_id = ? GROUP BY s.scorer, s.checkpoint
           ORDER BY min(j.created_at) NULLS LAST, s.scorer,
                    try_cast(regexp_extract(s.checkpoint, '(\\d+)$', 1) AS BIGINT) NULLS FIRST""",
        [run_id],
    ).fetchall()
    return [Scorer(*row) for row in rows]


def find_scorer(con, run_id: str, name: str) -> Scorer:
    """A scorer a user named: "JOB" (its last scored checkpoint) or "JOB@step-N"."""
    job_id, _, checkpoint = name.partition("@")
    found = [s for s in scorers(con, run_id) if s.job_id == job_id and (not checkpoint or s.checkpoint == checkpoint)]
    if not found:
        known = ", ".join(f"{s.job_id}@{s.checkpoint}" for s in scorers(con, run_id)) or "none"
        raise PrefstudioError(f"run {run_id!r} has no rewards from {name!r} (scored by: {known}); "
                              f"score it with `prefstudio bon score WORKSPACE {run_id} --rm {job_id}`")
    return found[-1]


def prompt_ids(con, run_id: str) -> list[tuple[int, int, str]]:
    """(prompt_id, ord, prompt) of the run, in order."""
    return con.execute("SELECT id, ord, prompt FROM bon_prompts WHERE run_id = ? ORDER BY ord", [run_id]).fetchall()


def candidates(con, prompt_id: int, scored_by: list[Scorer]) -> list[Candidate]:
    """A prompt's candidates in sample order, with each scorer's reward where it has one."""
    found = {idx: Candidate(idx, response, n_tokens, finish) for idx, response, n_tokens, finish in con.execute(
        "SELECT idx, response, n_tokens, finish FROM bon_candidates WHERE prompt_id = ? ORDER BY idx",
        [prompt_id]).fetchall()}
    wanted = {(s.job_id, s.checkpoint): s for s in scored_by}
    for idx, job_id, checkpoint, reward in con.execute(
            "SELECT idx, scorer, checkpoint, reward FROM bon_scores WHERE prompt_id = ?", [prompt_id]).fetchall():
        scorer = wanted.get((job_id, checkpoint))
        if scorer is not None and idx in found:
            found[idx].rewards[scorer] = reward
    return list(found.values())


def rewards_by_prompt(con, run_id: str, scorer: Scorer) -> dict[int, list[float]]:
    """prompt_id -> the scorer's rewards of samples 0, 1, 2, ... up to the first one it has not scored."""
    out: dict[int, list[float]] = {}
    for pid, idx, reward in con.execute(
            """SELECT c.prompt_id, c.idx, s.reward FROM bon_candidates c
               JOIN bon_prompts p ON p.id = c.prompt_id
               LEFT JOIN bon_scores s ON s.prompt_id = c.prompt_id AND s.idx = c.idx
                                     AND s.scorer = ? AND s.checkpoint = ?
               WHERE p.run_id = ? ORDER BY p.ord, c.idx""",
            [scorer.job_id, scorer.checkpoint, run_id]).fetchall():
        rewards = out.setdefault(pid, [])
        if reward is not None and idx == len(rewards):
            rewards.append(reward)
    return out


def ranks(rewards: list[float | None]) -> list[int | None]:
    """1 for the highest reward; equal rewards rank by sample order (as best-of-N picks); None unscored."""
    order = sorted((i for i, r in enumerate(rewards) if r is not None), key=lambda i: (-rewards[i], i))
    out: list[int | None] = [None] * len(rewards)
    for rank, i in enumerate(order, start=1):
        out[i] = rank
    return out


# -- importing candidates from a file --------------------------------------------------------------------

@dataclass
class ImportSummary:
    run_id: str
    n_prompts: int  # prompts read
    n_new_prompts: int
    n_new_candidates: int


def _read_jsonl(path: Path) -> list[tuple[int, PromptRow, list[str]]]:
    """(line number, prompt, responses) of each record; any bad record is an error naming its line."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise PrefstudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    records, first_line_of = [], {}
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PrefstudioError(f"{where}: not JSON ({exc.msg}); expected "
                                          '{"prompt": "...", "responses": ["...", ...]}') from None
                if not isinstance(record, dict):
                    raise PrefstudioError(f"{where}: expected an object with 'prompt' and 'responses'")
                prompt, responses = record.get("prompt"), record.get("responses")
                if not isinstance(prompt, str):
                    raise PrefstudioError(f"{where}: field 'prompt' must be text")
                if not isinstance(responses, list) or not responses:
                    raise PrefstudioError(f"{where}: field 'responses' must be a non-empty list of texts")
                bad = next((i for i, r in enumerate(responses) if not isinstance(r, str)), None)
                if bad is not None:
                    raise PrefstudioError(f"{where}: responses[{bad}] is {type(responses[bad]).__name__}, expected text")
                source = record.get("source")
                if source is not None and not isinstance(source, str):
                    raise PrefstudioError(f"{where}: field 'source' must be text")
                digest = prompt_hash(prompt)
                if digest in first_line_of:
                    raise PrefstudioError(f"{where}: the same prompt as line {first_line_of[digest]}; "
                                          "give each prompt once, with all its responses")
                first_line_of[digest] = number
                records.append((number, PromptRow(prompt, None, source), responses))
        except UnicodeDecodeError as exc:
            raise PrefstudioError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not records:
        raise PrefstudioError(f"{path}: no records; expected one JSON object per line with 'prompt' and 'responses'")
    return records


def import_jsonl(con, path: str | Path, run_id: str | None = None) -> ImportSummary:
    """Candidates from a JSONL file (prompt, responses[]) into run `run_id` (default: the file's name).

    The run is made if it does not exist. Importing the same file again adds nothing; a file that
    has more responses for a prompt adds them after the ones stored; a different text at a stored
    position is an error (positions are sample order, which the win rate depends on). All or nothing.
    """
    path = Path(path)
    records = _read_jsonl(path)
    run_id = check_run_id(run_id or re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")[:64] or "imported")
    with transaction(con):
        existing = con.execute("SELECT origin FROM bon_runs WHERE id = ?", [run_id]).fetchone()
        if existing is None:
            create_run(con, run_id, origin="file", policy=str(path.resolve()), settings={"file": str(path.resolve())})
        elif existing[0] != "file":
            raise PrefstudioError(f"run {run_id!r} was sampled from a policy; import the file into a run of its own "
                                  "with --run NAME")
        before = con.execute("SELECT count(*) FROM bon_prompts WHERE run_id = ?", [run_id]).fetchone()[0]
        ids = add_prompts(con, run_id, [prompt for _, prompt, _ in records])
        n_new_prompts = con.execute("SELECT count(*) FROM bon_prompts WHERE run_id = ?", [run_id]).fetchall()[0][0] - before
        lines, pids, idxs, texts = [], [], [], []
        for (number, _, responses), pid in zip(records, ids):
            for idx, text in enumerate(responses):
                lines.append(number), pids.append(pid), idxs.append(idx), texts.append(text.replace("\x00", ""))
        table = pa.table({"line": pa.array(lines, pa.int64()), "prompt_id": pa.array(pids, pa.int64()),
                          "idx": pa.array(idxs, pa.int32()), "response": pa.array(texts, pa.string())})
        con.register("_bon_import", table)
        try:
            clash = con.execute("""SELECT n.line, n.idx FROM _bon_import n JOIN bon_candidates c
                                   ON c.prompt_id = n.prompt_id AND c.idx = n.idx AND c.response <> n.response
                                   ORDER BY n.line, n.idx LIMIT 1""").fetchall()  # (fetchone: see add_prompts)
            if clash:
                clash = clash[0]
                raise PrefstudioError(f"{path}:{clash[0]}: responses[{clash[1]}] differs from the one run {run_id!r} "
                                      "already has at that position; import into a new run with --run NAME")
            new = con.execute("""INSERT INTO bon_candidates (prompt_id, idx, response, finish)
                                 SELECT prompt_id, idx, response, 'imported' FROM _bon_import n
                                 WHERE NOT EXISTS (SELECT 1 FROM bon_candidates c
                                                   WHERE c.prompt_id = n.prompt_id AND c.idx = n.idx)""").fetchall()[0][0]
        finally:
            con.unregister("_bon_import")
    return ImportSummary(run_id, len(records), n_new_prompts, new)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-a of two reward models' rewards of the same candidates: 1 same order, -1 reversed.

    (concordant - discordant) / all pairs; a pair tied in either counts as neither.
    """
    n = len(x)
    if n < 2:
        return math.nan
    score = 0
    for i in range(n):
        for j in range(i + 1, n):
            product = (x[i] - x[j]) * (y[i] - y[j])
            score += (product > 0) - (product < 0)
    return score / (n * (n - 1) / 2)
