"""Rewards in the workspace: ingesting a finished scoring job, reading them back for the figures.

`predictions` holds (job_id, checkpoint, pair_id, r_chosen, r_rejected): job_id
is the scored subject — a training job's id, or "raw:NAME" for an untrained
backbone — not the scoring job's. Scoring the same subject and checkpoint
again replaces its rows for those pairs, so ingesting twice changes nothing.
Reading back joins `pairs` for source and split and hands numpy arrays to
metrics.py: a million pairs come back in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import metrics
from prefstudio.evaluate.scoring_job import PARTS, load_config
from prefstudio.jobs.parts import part_files
from prefstudio.db import transaction


@dataclass(frozen=True)
class Scored:
    """One scored model on one split: a row of the papers' tables."""

    job_id: str
    checkpoint: str
    split: str
    n: int
    name: str  # the job's name, or job_id

    @property
    def label(self) -> str:
        return self.name if self.checkpoint in ("raw", "model") else f"{self.name} ({self.checkpoint})"


@dataclass(frozen=True)
class Rewards:
    pair_id: np.ndarray
    source_code: np.ndarray  # an index into source_names per pair
    source_names: list[str]
    r_chosen: np.ndarray
    r_rejected: np.ndarray

    @property
    def d(self) -> np.ndarray:
        return self.r_chosen - self.r_rejected

    @property
    def source(self) -> np.ndarray:
        """Each pair's source name."""
        return np.asarray(self.source_names, dtype=object)[self.source_code]

    def summaries(self, **options) -> dict[str, metrics.Summary]:
        """metrics.summarize_by_source on these rewards, without re-deriving the sources from strings."""
        return metrics.summarize_by_source(self.d, self.source_code, self.source_names, **options)


def ingest(ws, folder: Path, con) -> int:
    """Bring a done scoring job's rewards and figures into the workspace, in one transaction."""
    config = load_config(folder)
    parts = [str(p) for p in part_files(folder / PARTS)]
    if not parts:
        return 0
    with transaction(con):
        con.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM read_parquet(?)", [parts])
        con.execute("DELETE FROM predictions WHERE job_id = ? AND checkpoint = ? AND pair_id IN "
                    "(SELECT pair_id FROM incoming)", [config.subject, config.checkpoint_name])
        con.execute("INSERT INTO predictions SELECT ?, ?, pair_id, r_chosen, r_rejected FROM incoming",
                    [config.subject, config.checkpoint_name])
        n = con.execute("SELECT count(*) FROM incoming").fetchone()[0]
        con.execute("DROP TABLE incoming")
        store_metrics(con, config.subject, config.checkpoint_name, config.split)
    return n


METRIC_NAMES = ("n", "accuracy", "ties", *(f"ece_{b}" for b in metrics.ECE_BINS), "mean", "std", "skewness",
                "excess_kurtosis", "share_negative", "outliers_positive", "outliers_positive_mean",
                "outliers_negative", "outliers_negative_mean")


def metric_values(summary: metrics.Summary) -> dict[str, float]:
    """A summary as the flat (name -> value) rows of the `metrics` table.

    `ties` is a row like any other, so the table needs no new column; a workspace scored before it was added
    has no `ties` rows (and accuracy counting a tie as wrong) until that model is scored again. The app and
    the report never read these rows back: they recompute every figure from `predictions`.
    """
    dist, out = summary.distribution, summary.outliers
    return {"n": summary.n, "accuracy": summary.accuracy, "ties": summary.ties,
            **{f"ece_{b}": v for b, v in summary.ece.items()},
            "mean": dist.mean, "std": dist.std, "skewness": dist.skewness, "excess_kurtosis": dist.excess_kurtosis,
            "share_negative": dist.share_negative, "outliers_positive": out.n_positive,
            "outliers_positive_mean": out.mean_positive, "outliers_negative": out.n_negative,
            "outliers_negative_mean": out.mean_negative}


def store_metrics(con, job_id: str, checkpoint: str, split: str) -> None:
    """Recompute the figures of one scored model into `metrics`, for users who query the file with SQL."""
    rewards = load_rewards(con, job_id, checkpoint, split)
    con.execute("DELETE FROM metrics WHERE job_id = ? AND checkpoint = ? AND split = ?", [job_id, checkpoint, split])
    rows = [(job_id, checkpoint, split, source, name, None if value != value else float(value))
            for source, summary in rewards.summaries().items()
            for name, value in metric_values(summary).items()]
    if rows:
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)


def scored_models(con, split: str | None = None) -> list[Scored]:
    """Every (subject, checkpoint, split) with stored rewards, oldest job first, raw baselines first."""
    rows = con.execute(
        """SELECT p.job_id, p.checkpoint, s.split, count(*) AS n, any_value(coalesce(j.name, p.job_id))
           FROM predictions p JOIN pairs s ON s.id = p.pair_id LEFT JOIN jobs j ON j.id = p.job_id
           WHERE ? IS NULL OR s.split = ?
           GROUP BY p.job_id, p.checkpoint, s.split
           ORDER BY p.job_id NOT LIKE 'raw:%', min(j.created_at) NULLS FIRST, p.job_id,
                    try_cast(regexp_extract(p.checkpoint, '(\\d+)$', 1) AS BIGINT) NULLS FIRST, s.split""",
        [split, split],
    ).fetchall()
    return [Scored(*row) for row in rows]


def latest_per_job(models: list[Scored]) -> list[Scored]:
    """Of several checkpoints of one job on one split, the last (scored_models orders them by step)."""
    latest: dict[tuple[str, str], Scored] = {}
    for model in models:
        latest[(model.job_id, model.split)] = model
    return list(latest.values())


def load_rewards(con, job_id: str, checkpoint: str, split: str, sources: list[str] | None = None) -> Rewards:
    con.complete()  # a caller's finished-with but unread execute() would keep sql() from running
    rel = con.sql(
        """SELECT p.pair_id, s.source, p.r_chosen, p.r_rejected
           FROM predictions p JOIN pairs s ON s.id = p.pair_id
           WHERE p.job_id = ? AND p.checkpoint = ? AND s.split = ? AND (? IS NULL OR list_contains(?, s.source))
           ORDER BY p.pair_id""",
        params=[job_id, checkpoint, split, sources, sources],
    )
    table = rel.to_arrow_table()
    sources = table.column("source").combine_chunks().dictionary_encode()  # 5 names, not a million strings
    column = lambda name: table.column(name).to_numpy()  # noqa: E731
    return Rewards(np.asarray(column("pair_id"), dtype=np.int64),
                   np.asarray(sources.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                   sources.dictionary.to_pylist(), np.asarray(column("r_chosen"), dtype=np.float64),
                   np.asarray(column("r_rejected"), dtype=np.float64))


def find_model(con, job_id: str, split: str, checkpoint: str | None = None) -> Scored:
    """The scored model a user named: a job id (latest checkpoint unless one is given) on a split."""
    models = [m for m in scored_models(con, split) if m.job_id == job_id]
    if checkpoint is not None:
        models = [m for m in models if m.checkpoint == checkpoint]
    if not models:
        known = sorted({m.job_id for m in scored_models(con, split)})
        raise PrefstudioError(f"no rewards for {job_id!r}{f' {checkpoint}' if checkpoint else ''} on split "
                              f"{split!r}; score it with `prefstudio eval` (scored: {', '.join(known) or 'none'})")
    return models[-1]
