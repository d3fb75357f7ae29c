"""Rewards for pairs (or single responses) from a checkpoint, batch by batch.

Texts are tokenised one batch at a time (the same way training did, prompt cut
from the left), so scoring any number of pairs holds one batch of texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import torch

from prefstudio.train.data import DEFAULT_TEMPLATE, collate, encode_pairs, encode_responses, pad_right
from prefstudio.train.reward_model import RewardModel, load_tokenizer


def batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """`rows` in lists of `size`, the last one shorter: one forward pass each, never all rows in memory."""
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
                template: str = DEFAULT_TEMPLATE, device: str | None = None, pooling: str = "auto",
                render: str = "text", chat_template: str | None = None) -> Iterator[tuple[int, float, float]]:
    """Yields (pair_id, r_chosen, r_rejected) for rows with pair_id, prompt, chosen, rejected (and prompt_turns);
    `render`, `chat_template`: the training job's, so the pairs are read as it read them (train/chat.py)."""
    tokenizer, model, device = _load(checkpoint, pooling, device, chat_template)
    for batch in batches(rows, batch_size):
        encoded = encode_pairs(tokenizer, [{**r, "source": "", "margin": 0.0} for r in batch], max_length, template,
                               render=render)
        tensors = collate(encoded, tokenizer.pad_token_id)
        rewards = model(tensors["input_ids"].to(device), tensors["attention_mask"].to(device)).float().cpu()
        n = len(batch)
        for row, rc, rr in zip(batch, rewards[:n].tolist(), rewards[n:].tolist()):
            yield row["pair_id"], rc, rr


def _load(checkpoint: str | Path, pooling: str, device: str | None, chat_template: str | None = None):
    """(tokenizer, reward model in eval mode on `device`, device); the GPU when there is one. `chat_template`: the
    one the job froze (its checkpoints' tokenizers hold it too)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(checkpoint)
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer, RewardModel.from_pretrained(checkpoint, pooling=pooling).to(device).eval(), device


@torch.no_grad()
def score_responses(checkpoint: str | Path, rows: Iterable[dict], *, batch_size: int = 32, max_length: int = 512,
                    template: str = DEFAULT_TEMPLATE, device: str | None = None, pooling: str = "auto",
                    render: str = "text", chat_template: str | None = None) -> Iterator[tuple[object, float]]:
    """Yields (key, reward) for rows with key, prompt, response: one text per row, as one side of a pair is scored.

    Best-of-N scores candidates one by one; a pair's two sides would double the work for nothing.
    """
    tokenizer, model, device = _load(checkpoint, pooling, device, chat_template)
    for batch in batches(rows, batch_size):
        sequences = encode_responses(tokenizer, [r["prompt"] for r in batch], [r["response"] for r in batch],
                                     max_length, template, render=render, turns=[r.get("prompt_turns") for r in batch])
        ids, mask = pad_right(sequences, tokenizer.pad_token_id)
        rewards = model(ids.to(device), mask.to(device)).float().cpu().tolist()
        for row, reward in zip(batch, rewards):
            yield row["key"], reward
