"""Shared by the best-of-N tests: a reward model "trained" in no time, and a run with known rewards."""

from __future__ import annotations

import json

from prefstudio.bon import runs
from prefstudio.jobs.layout import CHECKPOINTS, STATUS, TRAINER_STATE
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job


def fake_trained_job(ws, backbone, seed: int, name: str) -> str:
    """A done training job whose checkpoint is the backbone with a head drawn from `seed`: a reward model
    with its own (random) preferences, made without training."""
    import torch

    from prefstudio.train.reward_model import RewardModel, load_tokenizer

    job = create_training_job(ws, make_config({"backbone": str(backbone), "batch_size": 8, "max_length": 64}), name=name)
    torch.manual_seed(seed)
    checkpoint = job.folder / CHECKPOINTS / "step-5"
    RewardModel.from_pretrained(backbone).save(checkpoint, load_tokenizer(backbone))
    (checkpoint / TRAINER_STATE).write_bytes(b"")  # marks the checkpoint complete
    status = json.loads((job.folder / STATUS).read_text())
    (job.folder / STATUS).write_text(json.dumps({**status, "state": "done"}))
    return job.id


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def store_rewards(con, run_id: str, scorer: str, rewards: dict[str, list[float]]) -> runs.Scorer:
    """Rewards by prompt text, written straight into bon_scores as a scoring job's ingest would."""
    ids = {text: pid for pid, _, text in runs.prompt_ids(con, run_id)}
    for text, values in rewards.items():
        for idx, reward in enumerate(values):
            con.execute("INSERT OR REPLACE INTO bon_scores VALUES (?, ?, ?, 'step-1', ?)", [ids[text], idx, scorer, reward])
    return runs.Scorer(scorer, "step-1")
