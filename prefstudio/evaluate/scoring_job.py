"""Scoring a split's pairs with a reward model, as a background job.

Launch (in the process that holds the database) writes the split's pairs into
the job folder; the job process reads them one batch at a time, so scoring a
million pairs holds one batch of texts, and writes rewards as numbered Parquet
parts — a cancelled or killed job resumes after the last part. When the job is
done, the database's holder ingests the parts into `predictions` and the
figures of docs/methods.md, "Evaluation", into `metrics` (see predictions.py).

What is scored is a *subject*: a training job (its latest or a named
checkpoint, scored with the job's own template and max length, so the test
pairs look like the training pairs did) or an untrained backbone, "raw:NAME",
with a freshly initialised head — the papers' baseline row — or a reward model
someone else trained, "model:NAME", with its own head and chat template
(external_model.py).

A scoring job made before its training job is done (a sweep's: train/sweep.py)
runs after it (the queue's `after`) and takes the checkpoint that is latest
when it starts, not when it was made; it records it in its config then.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from prefstudio.errors import PrefstudioError
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import CHECKPOINTS, CONFIG, PAIRS, is_job, latest_checkpoint, read_config
from prefstudio.jobs.parts import part_files

PARTS = "predictions"  # the folder of reward parts, in the job folder
PART_SIZE = 2048  # pairs per part file: what a kill can cost


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = kinds.EVAL
    subject: str  # a training job's id, "raw:NAME" or "model:NAME"
    checkpoint: str = ""  # the model folder scored; "" until a job made to run after its training job starts
    checkpoint_name: str = ""  # "step-N", or "raw"
    split: str = "test"
    batch_size: int = 32
    max_length: int = 512
    template: str = "{prompt}\n\nAssistant: {response}"
    render: str = "text"  # a training job's: "chat" renders through chat_template, exactly as the job trained
    chat_template: str | None = None
    pooling: str = "auto"
    seed: int = 0  # a raw backbone's head is initialised from it
    sweep: str | None = None  # the sweep whose training job this scores (train/sweep.py)

    @property
    def resolved(self) -> bool:
        """The checkpoint is chosen (a job made to score its training job's latest chooses it when it starts)."""
        return bool(self.checkpoint)


def _training_config(job_folder: Path) -> dict:
    try:
        return read_config(job_folder)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PrefstudioError(f"{job_folder / CONFIG}: not a readable training config ({exc})") from None


def load_config(folder: Path) -> EvalConfig:
    return EvalConfig(**read_config(folder))


def eval_config(ws, job_id: str | None = None, *, raw_backbone: str | None = None, checkpoint: str | None = None,
                split: str = "test", batch_size: int = 32, max_length: int | None = None,
                raw_name: str | None = None, when_done: bool = False) -> EvalConfig:
    """The settings that score `job_id` (or a raw backbone) on `split`; checked before anything is written.

    A raw backbone is named raw:`raw_name`, by default raw:<its folder's name> (a folder called `model`
    says little: give a name). `when_done`: score the job's latest checkpoint once the job is done (the
    scoring job is made to run after it), so a job without a checkpoint yet is fine.
    """
    if (job_id or "").startswith("model:"):  # a reward model scored before (external_model.py): a split, best-of-N
        from prefstudio.evaluate import external_model

        return external_model.known_config(ws, job_id, checkpoint=checkpoint, split=split, batch_size=batch_size,
                                           max_length=max_length)
    if (job_id is None) == (raw_backbone is None):
        raise PrefstudioError("name a training job to score, --raw BACKBONE for an untrained baseline, "
                              "or --model PATH for an existing reward model")
    if raw_backbone is not None:
        path = Path(raw_backbone).expanduser()
        if not (path / "config.json").is_file():
            raise PrefstudioError(f"{raw_backbone}: not a Hugging Face model folder (no config.json)")
        name = (raw_name or path.resolve().name).strip()
        if not name or any(ch.isspace() or ch == ":" for ch in name):
            raise PrefstudioError(f"--name {name!r}: expected one word without spaces or ':', e.g. minilm-l6")
        positions = _positions(path)
        if max_length and positions and max_length > positions:
            raise PrefstudioError(f"--max-length {max_length}: {raw_backbone} takes at most {positions} tokens "
                                  f"(config.json); give {positions} or less")
        return EvalConfig(subject=f"raw:{name}", checkpoint=str(path.resolve()), checkpoint_name="raw",
                          split=split, batch_size=batch_size, max_length=max_length or min(512, positions or 512))
    folder = ws.jobs_dir / job_id
    if not is_job(folder):
        known = sorted(p.name for p in ws.jobs_dir.iterdir() if is_job(p))
        raise PrefstudioError(f"no job {job_id!r} in {ws.path} (jobs: {', '.join(known) or 'none'})")
    trained = _training_config(folder)
    if trained.get("kind", kinds.TRAIN) != kinds.TRAIN or "backbone" not in trained:
        raise PrefstudioError(f"job {job_id} is not a training job; only trained reward models can be scored")
    if checkpoint:
        chosen = Path(checkpoint) if Path(checkpoint).is_absolute() else folder / CHECKPOINTS / checkpoint
        if not chosen.is_dir():
            raise PrefstudioError(f"job {job_id} has no checkpoint {checkpoint!r} (look in {folder / CHECKPOINTS})")
    elif when_done:
        chosen = None  # the latest when the scoring job starts, after the training job is done
    else:
        chosen = latest_checkpoint(folder)
        if chosen is None:
            raise PrefstudioError(f"job {job_id} has no checkpoint yet; score it when it has saved one")
    return EvalConfig(subject=job_id, checkpoint=str(chosen.resolve()) if chosen else "",
                      checkpoint_name=chosen.name if chosen else "", split=split,
                      batch_size=batch_size, max_length=max_length or int(trained.get("max_length", 512)),
                      template=trained.get("template", EvalConfig.model_fields["template"].default),
                      **trained_rendering(trained),
                      pooling=trained.get("pooling", "auto"), sweep=trained.get("sweep"))


def trained_rendering(trained: dict) -> dict:
    """How a training job rendered its texts (render, chat_template), so its scoring renders them alike; a job made
    before rendering was settled at launch rendered text."""
    if trained.get("render") == "chat":
        return {"render": "chat", "chat_template": trained.get("chat_template")}
    return {"render": "text"}


def resolve_checkpoint(folder: Path, config: EvalConfig) -> EvalConfig:
    """The config of a scoring job made to score its training job's latest checkpoint, with that checkpoint
    chosen now and recorded in the job's config (a resume scores the same one); refused while the training
    job is not done, so a job run by hand cannot score a checkpoint from half-way."""
    from prefstudio.jobs.layout import write_config
    from prefstudio.jobs.status import read_status

    if config.resolved:
        return config
    trained = folder.parent / config.subject
    state = read_status(trained).state if is_job(trained) else "gone"
    if state != "done":
        raise PrefstudioError(f"job {config.subject} is {state}: this scoring job scores its latest checkpoint "
                              "once it is done; resume it when it is")
    chosen = latest_checkpoint(trained)
    if chosen is None:
        raise PrefstudioError(f"job {config.subject} is done but has no checkpoint in {trained / CHECKPOINTS}")
    config = config.model_copy(update={"checkpoint": str(chosen.resolve()), "checkpoint_name": chosen.name})
    write_config(folder, config.model_dump(exclude_none=True))
    return config


def create_eval_job(ws, config: EvalConfig, *, name: str | None = None, con=None, after: str | None = None,
                    held: bool = False):
    """A queued job that scores `config.split`'s pairs; the pairs are written into its folder now.
    `after`: the training job it waits for (a config made `when_done`); held: kept out of the local queue."""
    from prefstudio.jobs import new_job

    con = con or ws.cursor()
    n = con.execute("SELECT count(*) FROM pairs WHERE split = ?", [config.split]).fetchone()[0]
    if not n:
        splits = [r[0] for r in con.execute("SELECT DISTINCT split FROM pairs ORDER BY 1").fetchall()]
        raise PrefstudioError(f"no pairs in split {config.split!r} to score (splits: {', '.join(splits) or 'none'})")

    def write_pairs(folder: Path) -> None:
        # Streamed out of DuckDB, in row groups of one batch: the job reads one batch of texts at a time.
        import pyarrow.parquet as pq

        reader = con.cursor().sql("SELECT id AS pair_id, source, prompt, chosen, rejected, prompt_turns::VARCHAR AS "
                                  "prompt_turns FROM pairs WHERE split = ? ORDER BY id",
                                  params=[config.split]).to_arrow_reader(config.batch_size)
        with pq.ParquetWriter(folder / PAIRS, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch, row_group_size=config.batch_size)

    if not config.resolved and after != config.subject:
        raise PrefstudioError(f"scoring {config.subject}'s latest checkpoint needs the job made to run after it")
    return new_job(ws, kinds.EVAL, config.model_dump(exclude_none=True), kinds.EVAL, write_pairs,
                   name=name or f"eval {config.subject} {config.checkpoint_name or 'latest'} on {config.split}",
                   con=con, after=after, held=held)


def scored_ids(folder: Path) -> set[int]:
    import pyarrow.parquet as pq

    done: set[int] = set()
    for part in part_files(folder / PARTS):
        done.update(pq.read_table(part, columns=["pair_id"]).column("pair_id").to_pylist())
    return done


def run(folder: Path, *, should_stop, on_progress) -> None:
    """The job process: score the pairs not scored yet, a part file at a time, saying so after each batch.

    Parts of PART_SIZE pairs bound what a kill can cost; progress is per batch, so a scoring run shorter
    than a part (a 974-pair test split) still shows it moving rather than 0% until the end.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from prefstudio.jobs.parts import PartWriter
    from prefstudio.jobs.progress import Progress
    from prefstudio.train import scoring

    config = resolve_checkpoint(folder, load_config(folder))
    parts = PartWriter(folder / PARTS)
    done = scored_ids(folder)
    source = pq.ParquetFile(folder / PAIRS)
    total = source.metadata.num_rows
    on_progress(Progress(len(done), total, None))

    def rows():
        for batch in source.iter_batches(batch_size=config.batch_size):
            for row in batch.to_pylist():
                if row["pair_id"] not in done:
                    yield row

    buffer: list[tuple[int, float, float]] = []

    def flush() -> None:
        nonlocal buffer
        if not buffer:
            return
        ids, chosen, rejected = zip(*buffer)
        parts.write(pa.table({"pair_id": pa.array(ids, pa.int64()), "r_chosen": pa.array(chosen, pa.float64()),
                              "r_rejected": pa.array(rejected, pa.float64())}))
        done.update(ids)
        buffer = []
        on_progress(Progress(len(done), total, None))

    torch.manual_seed(config.seed)  # a raw backbone's fresh head: the same every time
    from prefstudio.evaluate import external_model  # model:NAME is scored as it is: its own head and chat template

    score_pairs, rendering = scoring.score_pairs, {"render": config.render, "chat_template": config.chat_template}
    if external_model.is_model_subject(config.subject):  # rendered as its own tokenizer says, not as a job trained
        score_pairs, rendering = external_model.score_pairs, {}
    scored_now = 0  # in this run: score_pairs cuts its batches from the same count, so this says where one ends
    for scored in score_pairs(config.checkpoint, rows(), batch_size=config.batch_size, max_length=config.max_length,
                              template=config.template, pooling=config.pooling, **rendering):
        buffer.append(scored)
        scored_now += 1
        batch_done = scored_now % config.batch_size == 0
        if len(buffer) >= PART_SIZE:
            flush()
        elif batch_done:
            on_progress(Progress(len(done) + len(buffer), total, None))
        if batch_done and should_stop():
            break  # what was scored is kept; a resume goes on from here
    flush()


POSITION_KEYS = ("max_position_embeddings", "n_positions")


def stated_positions(values: dict) -> int | None:
    """The fewest positions among a model's config values (None where none is stated; a tokenizer's 1e30 is none)."""
    found = [int(n) for n in values.values() if isinstance(n, int) and 0 < n < 1_000_000]
    return min(found) if found else None


def _positions(model: Path) -> int | None:
    """The most tokens a backbone takes, as its config.json says (None where it does not say)."""
    try:
        config = json.loads((model / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return stated_positions({key: config.get(key) for key in POSITION_KEYS}) if isinstance(config, dict) else None
