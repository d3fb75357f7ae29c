"""Rewards for pairs from a checkpoint, batch by batch.

Texts are tokenised one batch at a time (the same way training did, prompt cut
from the left), so scoring any number of pairs holds one batch of texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import torch

from prefstudio.train.data import DEFAULT_TEMPLATE, collate, encode_pairs
from prefstudio.train.reward_model import RewardModel, load_tokenizer


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def score_pairs(checkpoint: str | Path, rows: Iterable[dict], *, batch_size: int = 32, max_length: int = 512,
                template: str = DEFAULT_TEMPLATE, device: str | None = None,
                pooling: str = "auto") -> Iterator[tuple[int, float, float]]:
    """Yields (pair_id, r_chosen, r_rejected) for rows with pair_id, prompt, chosen, rejected."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(checkpoint)
    model = RewardModel.from_pretrained(checkpoint, pooling=pooling).to(device).eval()
    for batch in _batches(rows, batch_size):
        encoded = encode_pairs(tokenizer, [{**r, "source": "", "margin": 0.0} for r in batch], max_length, template)
        tensors = collate(encoded, tokenizer.pad_token_id)
        rewards = model(tensors["input_ids"].to(device), tensors["attention_mask"].to(device)).float().cpu()
        n = len(batch)
        for row, rc, rr in zip(batch, rewards[:n].tolist(), rewards[n:].tolist()):
            yield row["pair_id"], rc, rr
