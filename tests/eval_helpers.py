"""Shared by the evaluation tests: a workspace with rewards stored as an ingested scoring job leaves them."""

from __future__ import annotations

import json

import numpy as np

from prefstudio.evaluate import predictions


def add_pairs(con, per_source: dict[str, int], split: str = "test") -> dict[str, list[int]]:
    """Plain pairs, `n` per source, in the given split; their ids per source."""
    start = con.execute("SELECT coalesce(max(id), 0) + 1 FROM pairs").fetchone()[0]
    ids: dict[str, list[int]] = {}
    next_id = start
    for source, n in per_source.items():
        for k in range(n):
            con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [next_id, source, split, f"{source} prompt {k}", f"good answer {k}", f"bad answer {k}",
                         f"h{next_id}"])
            ids.setdefault(source, []).append(next_id)
            next_id += 1
    return ids


def store_model(con, job_id: str, pair_ids: list[int], d: list[float] | np.ndarray, *, name: str | None = None,
                checkpoint: str = "step-10", split: str = "test", config: dict | None = None) -> None:
    """Rewards with these reward differences (r_rejected = 0), and their figures, as predictions.ingest stores them.

    `config`: the job's training config (TrainConfig fields; a backbone is added), which puts it in a cell."""
    if name is not None:
        config = None if config is None else {"backbone": "tiny", **config}
        con.execute("INSERT INTO jobs (id, kind, name, state, config) VALUES (?, 'train', ?, 'done', ?)",
                    [job_id, name, None if config is None else json.dumps(config)])
    con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, 0.0)",
                    [(job_id, checkpoint, int(pid), float(v)) for pid, v in zip(pair_ids, d)])
    predictions.store_metrics(con, job_id, checkpoint, split)
