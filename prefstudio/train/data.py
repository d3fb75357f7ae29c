"""Pairs to batches: tokenising with the prompt cut from the left, and the sampling schemes.

A pair's two texts are `template` filled with the prompt and each response. When
they are too long, tokens go from the *left of the prompt*: the responses are
what is being judged. Batches hold pairs of similar length (sorted within a
window of shuffled pairs, the batches then shuffled), so little is padding:
the main speed difference to a trainer that pads to the longest of a random
batch. Sampling (SPEC §3):

- single: one source;
- multitask: all sources mixed uniformly at random (MORE's baseline);
- balanced: every batch is K equal sub-batches, one per source, in a fixed
  source order (what MORE needs). Each source is brought to a common quota,
  by default the largest source's size so no pair is dropped: repeated whole
  as often as it fits, then topped up by a random draw (a quota below a
  source's size draws a random subset).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

DEFAULT_TEMPLATE = "{prompt}\n\nAssistant: {response}"
GROUP_WINDOW = 50  # batches' worth of pairs sorted by length together


@dataclass
class EncodedPair:
    pair_id: int
    source: str
    chosen: list[int]
    rejected: list[int]
    margin: float

    @property
    def length(self) -> int:
        return max(len(self.chosen), len(self.rejected))


def prompt_prefix(template: str, prompt: str) -> str:
    """The text before the response: what the reward model reads first, and what a policy continues."""
    head, _, _ = template.partition("{response}")
    return head.replace("{prompt}", prompt) if prompt else head.replace("{prompt}", "").lstrip()


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text ([CLS] ... [SEP], <s> ..., or none)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


def _joiner(tokenizer, max_length: int):
    """join(prompt_ids, response_ids) -> one sequence of at most max_length, the prompt cut from the left."""
    before, after = special_tokens_around(tokenizer)
    budget = max_length - len(before) - len(after)

    def join(prompt: list[int], response: list[int]) -> list[int]:
        response = response[:budget]
        room = budget - len(response)
        kept = prompt[len(prompt) - room:] if room > 0 else []
        return before + kept + response + after

    return join


def _prompt_ids(tokenizer, prompts: list[str], template: str) -> list[list[int]]:
    return tokenizer([prompt_prefix(template, p) for p in prompts], add_special_tokens=False)["input_ids"]


def encode_pairs(tokenizer, rows: list[dict], max_length: int, template: str = DEFAULT_TEMPLATE) -> list[EncodedPair]:
    """rows: dicts with pair_id, source, prompt, chosen, rejected, margin."""
    join = _joiner(tokenizer, max_length)
    prompts = _prompt_ids(tokenizer, [r["prompt"] for r in rows], template)
    chosen = tokenizer([r["chosen"] for r in rows], add_special_tokens=False)["input_ids"]
    rejected = tokenizer([r["rejected"] for r in rows], add_special_tokens=False)["input_ids"]
    return [
        EncodedPair(r["pair_id"], r["source"], join(p, c), join(p, rj), float(r.get("margin") or 0.0))
        for r, p, c, rj in zip(rows, prompts, chosen, rejected)
    ]


def _grouped(pairs: list[EncodedPair], size: int, rng: random.Random) -> list[list[EncodedPair]]:
    """Shuffled pairs cut into batches of `size` with similar lengths; the batches shuffled."""
    pairs = pairs[:]
    rng.shuffle(pairs)
    batches = []
    window = size * GROUP_WINDOW
    for start in range(0, len(pairs), window):
        chunk = sorted(pairs[start:start + window], key=lambda p: p.length)
        batches.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
    rng.shuffle(batches)
    return [b for b in batches if len(b) == size]  # a short last batch would skew MORE's sub-batches


def plan_batches(pairs: list[EncodedPair], *, sampling: str, batch_size: int, seed: int,
                 sources: list[str] | None = None, quota: int | None = None) -> list[list[EncodedPair]]:
    """The epoch's batches, deterministic for a seed (so a resumed job sees the same order)."""
    rng = random.Random(seed)
    by_source: dict[str, list[EncodedPair]] = {}
    for pair in pairs:
        by_source.setdefault(pair.source, []).append(pair)
    names = sorted(sources) if sources else sorted(by_source)
    missing = [s for s in names if s not in by_source]
    if missing:
        raise ValueError(f"no training pairs for source(s) {', '.join(missing)}; sources present: {', '.join(sorted(by_source))}")
    if sampling == "single":
        if len(names) != 1:
            raise ValueError("single sampling trains on one source: name it with --source")
        return _grouped(by_source[names[0]], batch_size, rng)
    if sampling == "multitask":
        pool = [p for name in names for p in by_source[name]]
        if quota:
            pool = [p for name in names for p in _resample(by_source[name], quota, rng)]
        return _grouped(pool, batch_size, rng)
    if sampling == "balanced":
        k = len(names)
        if batch_size % k:
            raise ValueError(f"balanced sampling needs a batch size divisible by the {k} sources; got {batch_size}")
        sub = batch_size // k
        target = quota or max(len(by_source[name]) for name in names)
        per_source = [_grouped(_resample(by_source[name], target, rng), sub, rng) for name in names]
        steps = min(len(batches) for batches in per_source)
        return [[p for batches in per_source for p in batches[step]] for step in range(steps)]
    raise ValueError(f"sampling {sampling!r}: expected single, multitask or balanced")


def _resample(pairs: list[EncodedPair], quota: int, rng: random.Random) -> list[EncodedPair]:
    """Exactly `quota` pairs: all of them, repeated whole as often as they fit, plus a random draw."""
    whole, rest = divmod(quota, len(pairs))
    return pairs * whole + rng.sample(pairs, rest)


def collate(batch: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """One tensor of 2B rows, chosen then rejected, padded on the right to the batch's longest."""
    ids, mask = pad_right([p.chosen for p in batch] + [p.rejected for p in batch], pad_id)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "margins": torch.tensor([p.margin for p in batch], dtype=torch.float32),
        "pair_ids": torch.tensor([p.pair_id for p in batch], dtype=torch.long),
    }


def encode_responses(tokenizer, prompts: list[str], responses: list[str], max_length: int,
                     template: str = DEFAULT_TEMPLATE) -> list[list[int]]:
    """One sequence per (prompt, response), tokenised exactly as encode_pairs does a pair's two sides."""
    join = _joiner(tokenizer, max_length)
    prompt_ids = _prompt_ids(tokenizer, prompts, template)
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [join(p, r) for p, r in zip(prompt_ids, response_ids)]


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded on the right to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
