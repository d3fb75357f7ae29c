"""Best-of-N as a background job: sample N candidates per prompt, then score them with reward models.

One job kind, "bon", does either or both: `prefstudio bon sample` samples a
run's prompts (and scores the samples when reward models are named), `bon
score` scores a run's stored candidates. Launch, in the process that holds the
database, writes the inputs into the job folder (prompts.parquet or
candidates.parquet); the job process never opens the database
(docs/methods.md, "Jobs and the workspace database") and writes samples and
rewards as numbered Parquet parts, so a cancelled or killed job resumes after
its last part. Once the job is done, `ingest` (run by
prefstudio.jobs.sync when the workspace is opened) brings the parts into
bon_candidates and bon_scores; keyed inserts make a second ingest change nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from prefstudio.bon import runs
from prefstudio.bon.sampling import Sample, SampleConfig
from prefstudio.errors import PrefstudioError
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import read_config
from prefstudio.jobs.parts import PartWriter, part_files
from prefstudio.db import transaction

PROMPTS = "prompts.parquet"
CANDIDATES = "candidates.parquet"
SAMPLES = "samples"
SCORES = "scores"
FLUSH_ROWS = 256  # samples or rewards per part file: what a kill can cost
FLUSH_SECONDS = 30.0


class ScorerConfig(BaseModel):
    """A training job's checkpoint, scored as the job scored its own pairs (template, length, pooling)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    checkpoint: str  # the folder
    checkpoint_name: str  # step-N
    template: str
    max_length: int
    pooling: str = "auto"
    render: str = "text"  # the training job's rendering (train/chat.py): best-of-N reads texts as it trained
    chat_template: str | None = None


class BonJobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = kinds.BON
    run_id: str
    sample: SampleConfig | None = None
    scorers: list[ScorerConfig] = []
    batch_size: int = 32  # texts per reward-model forward pass


def load_config(folder: Path) -> BonJobConfig:
    return BonJobConfig(**read_config(folder))


# -- launching (the database's holder) -------------------------------------------------------------------

def resolve_scorers(ws, names: list[str], batch_size: int = 32) -> list[ScorerConfig]:
    """Training jobs named "JOB" (latest checkpoint) or "JOB@step-N", checked before anything is written."""
    from prefstudio.evaluate.scoring_job import eval_config

    out = []
    for name in dict.fromkeys(names):
        job_id, _, checkpoint = name.partition("@")
        found = eval_config(ws, job_id, checkpoint=checkpoint or None, batch_size=batch_size)
        out.append(ScorerConfig(job_id=job_id, checkpoint=found.checkpoint, checkpoint_name=found.checkpoint_name,
                                template=found.template, max_length=found.max_length, pooling=found.pooling,
                                render=found.render, chat_template=found.chat_template))
    return out


def check_sample_config(config: SampleConfig) -> None:
    if config.n < 1:
        raise PrefstudioError(f"--n {config.n}: expected at least 1 sample per prompt")
    if config.temperature < 0:
        raise PrefstudioError(f"--temperature {config.temperature}: expected 0 (greedy) or more")
    if not 0 < config.top_p <= 1:
        raise PrefstudioError(f"--top-p {config.top_p}: expected a number in (0, 1]")
    if config.max_new_tokens < 1 or config.batch_size < 1:
        raise PrefstudioError("--max-new-tokens and --batch-size must be positive")
    if "{response}" not in config.template:
        raise PrefstudioError(f"--template {config.template!r}: must contain {{response}}")
    if config.origin == "endpoint":
        from prefstudio.judge.runner import api_key

        api_key(config.base_url)  # no key and no local server: say so now, not in the job's log
    elif Path(config.policy).expanduser().exists() and not (Path(config.policy).expanduser() / "config.json").is_file():
        raise PrefstudioError(f"{config.policy}: not a Hugging Face model folder (no config.json)")


def launch_sample(ws, run_id: str | None, prompts: list[runs.PromptRow], sample: SampleConfig,
                  scorers: list[str] = (), *, batch_size: int = 32, name: str | None = None, con=None):
    """A new run of `prompts` and a queued job that samples `sample.n` candidates for each (and scores them).

    Returns (run_id, job status); start it with jobs.start_next.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefstudio.jobs import new_job

    con = con or ws.cursor()
    check_sample_config(sample)
    if sample.origin == "hf" and Path(sample.policy).expanduser().exists():
        sample = sample.model_copy(update={"policy": str(Path(sample.policy).expanduser().resolve())})
    scorer_configs = resolve_scorers(ws, list(scorers), batch_size)
    run_id = run_id or runs.fresh_run_id(sample.policy)
    config = BonJobConfig(run_id=run_id, sample=sample, scorers=scorer_configs, batch_size=batch_size)
    with transaction(con):
        runs.create_run(con, run_id, origin=sample.origin, policy=sample.policy,
                        settings=sample.model_dump(exclude={"policy", "origin"}))
        ids = runs.add_prompts(con, run_id, prompts)

        def write_prompts(folder: Path) -> None:
            pq.write_table(pa.table({"prompt_id": pa.array(ids, pa.int64()),
                                     "prompt": pa.array([p.prompt for p in prompts], pa.string())}), folder / PROMPTS)

        job = new_job(ws, kinds.BON, config.model_dump(exclude_none=True), kinds.BON, write_prompts,
                           name=name or f"best-of-{sample.n} {run_id}", con=con)
        con.execute("UPDATE bon_runs SET job_id = ? WHERE id = ?", [job.id, run_id])
    return run_id, job


def launch_score(ws, run_id: str, scorers: list[str], *, batch_size: int = 32, name: str | None = None, con=None):
    """A queued job that scores the run's candidates some of `scorers` lack; None when none lack any."""
    from prefstudio.jobs import new_job

    con = con or ws.cursor()
    if not scorers:
        raise PrefstudioError("name at least one trained reward model with --rm JOB")
    runs.get_run(con, run_id)
    configs = resolve_scorers(ws, scorers, batch_size)
    wanted = [[c.job_id, c.checkpoint_name] for c in configs]
    where = """FROM bon_candidates c JOIN bon_prompts p ON p.id = c.prompt_id
               WHERE p.run_id = $run AND EXISTS (SELECT 1 FROM unnest($wanted) w(s) WHERE NOT EXISTS (
                   SELECT 1 FROM bon_scores x WHERE x.prompt_id = c.prompt_id AND x.idx = c.idx
                   AND x.scorer = s[1] AND x.checkpoint = s[2]))"""
    params = {"run": run_id, "wanted": wanted}
    if not con.execute(f"SELECT count(*) {where}", params).fetchone()[0]:
        return None

    def write_candidates(folder: Path) -> None:
        target = str(folder / CANDIDATES).replace("'", "''")
        con.execute(f"COPY (SELECT c.prompt_id, c.idx, p.prompt, c.response, (SELECT q.prompt_turns::VARCHAR FROM "
                    f"pairs q WHERE q.id = p.pair_id) AS prompt_turns {where} ORDER BY p.ord, c.idx) "
                    f"TO '{target}' (FORMAT parquet)", params)

    config = BonJobConfig(run_id=run_id, scorers=configs, batch_size=batch_size)
    return new_job(ws, kinds.BON, config.model_dump(exclude_none=True), "bon-score", write_candidates,
                        name=name or f"score {run_id} with {', '.join(c.job_id for c in configs)}", con=con)


# -- the job process ---------------------------------------------------------------------------------------

class _Parts:
    """Rows buffered, then written as numbered part files (jobs/parts.py) every FLUSH_ROWS rows or FLUSH_SECONDS."""

    def __init__(self, folder: Path, schema):
        self.folder, self.schema = folder, schema
        self.writer = PartWriter(folder)
        self.rows: list[dict] = []
        self.last = time.monotonic()

    def read(self) -> list[dict]:
        import pyarrow.parquet as pq

        return [r for p in part_files(self.folder) for r in pq.read_table(p).to_pylist()]

    def add(self, rows: list[dict]) -> bool:
        """Buffer rows; True when a part was written."""
        self.rows.extend(rows)
        if len(self.rows) >= FLUSH_ROWS or time.monotonic() - self.last >= FLUSH_SECONDS:
            return self.flush()
        return False

    def flush(self) -> bool:
        import pyarrow as pa

        self.last = time.monotonic()
        if not self.rows:
            return False
        self.writer.write(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows = []
        return True


def _sample_schema():
    import pyarrow as pa

    return pa.schema([("prompt_id", pa.int64()), ("idx", pa.int32()), ("response", pa.string()),
                      ("n_tokens", pa.int32()), ("finish", pa.string())])


def _score_schema():
    import pyarrow as pa

    return pa.schema([("prompt_id", pa.int64()), ("idx", pa.int32()), ("reward", pa.float64())])


def run(folder: Path, *, should_stop, on_progress) -> None:
    """The job process: sample what is missing, then score what is unscored, a part file at a time."""
    import pyarrow.parquet as pq

    from prefstudio.jobs.progress import Progress

    config = load_config(folder)
    if config.sample:
        prompts = pq.read_table(folder / PROMPTS).to_pylist()
        texts = {p["prompt_id"]: p["prompt"] for p in prompts}
        n_candidates = len(prompts) * config.sample.n
    else:
        candidates = pq.read_table(folder / CANDIDATES).to_pylist()
        n_candidates = len(candidates)
    total = n_candidates * ((config.sample is not None) + len(config.scorers))
    progress = {"step": 0}

    def advance(k: int) -> None:
        progress["step"] += k
        on_progress(Progress(progress["step"], total, None))

    if config.sample:
        parts = _Parts(folder / SAMPLES, _sample_schema())
        done = {(r["prompt_id"], r["idx"]) for r in parts.read()}
        advance(len(done))

        def emit(samples: list[Sample]) -> None:
            parts.add([s.__dict__ for s in samples])
            advance(len(samples))

        try:
            _sample(config.sample, prompts, done, emit, should_stop)
        finally:
            parts.flush()  # what was sampled before a cancel or an error is kept
        if should_stop():
            return
        candidates = [{**r, "prompt": texts[r["prompt_id"]]} for r in parts.read()]
    for number, scorer in enumerate(config.scorers):
        if should_stop():
            return
        _score(folder / SCORES / str(number), scorer, candidates, config.batch_size, should_stop, advance)


def _sample(config: SampleConfig, prompts: list[dict], done: set, emit, should_stop) -> None:
    from prefstudio.bon.sampling import sample_endpoint, sample_hf

    if config.origin == "endpoint":
        work = [(p["prompt_id"], p["prompt"], [i for i in range(config.n) if (p["prompt_id"], i) not in done])
                for p in prompts]
        sample_endpoint(config, [w for w in work if w[2]], emit, should_stop)
    else:
        work = [(p["prompt_id"], p["prompt"], i) for p in prompts for i in range(config.n)]
        sample_hf(config, work, done, emit, should_stop)


def _score(folder: Path, scorer: ScorerConfig, candidates: list[dict], batch_size: int, should_stop, advance) -> None:
    from prefstudio.evaluate import external_model  # a model:NAME scorer: its own head and chat template
    from prefstudio.train import scoring

    score_responses = scoring.score_responses
    rendering = {"render": scorer.render, "chat_template": scorer.chat_template}
    if external_model.is_model_subject(scorer.job_id):  # rendered as its own tokenizer says
        score_responses, rendering = external_model.score_responses, {}
    parts = _Parts(folder, _score_schema())
    done = {(r["prompt_id"], r["idx"]) for r in parts.read()}
    advance(len(done))
    rows = ({"key": (c["prompt_id"], c["idx"]), "prompt": c["prompt"], "response": c["response"],
             "prompt_turns": c.get("prompt_turns")} for c in candidates if (c["prompt_id"], c["idx"]) not in done)
    scored = 0
    try:
        for (pid, idx), reward in score_responses(scorer.checkpoint, rows, batch_size=batch_size,
                                                  max_length=scorer.max_length, template=scorer.template,
                                                  pooling=scorer.pooling, **rendering):
            parts.add([{"prompt_id": pid, "idx": idx, "reward": reward}])
            scored += 1
            if scored % batch_size == 0:
                advance(batch_size)
                if should_stop():
                    break
    finally:
        parts.flush()
    advance(scored % batch_size)


# -- ingesting (the database's holder) --------------------------------------------------------------------

def ingest(ws, folder: Path, con) -> int:
    """Bring a done job's samples and rewards into the workspace, in one transaction; returns rows added."""
    config = load_config(folder)
    samples = [str(p) for p in part_files(folder / SAMPLES)]
    added = 0
    with transaction(con):
        if samples:
            added += con.execute(
                """INSERT OR IGNORE INTO bon_candidates (prompt_id, idx, response, n_tokens, finish)
                   SELECT prompt_id, idx, response, n_tokens, finish FROM read_parquet(?)""", [samples]).fetchone()[0]
        for number, scorer in enumerate(config.scorers):
            parts = [str(p) for p in part_files(folder / SCORES / str(number))]
            if parts:
                added += con.execute(
                    """INSERT OR REPLACE INTO bon_scores (prompt_id, idx, scorer, checkpoint, reward)
                       SELECT prompt_id, idx, ?, ?, reward FROM read_parquet(?)""",
                    [scorer.job_id, scorer.checkpoint_name, parts]).fetchone()[0]
    return added
