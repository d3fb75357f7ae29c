"""Pairs to batches: tokenising under a length budget, and the sampling schemes.

Truncation (docs/methods.md, "Truncation"): a pair's two texts share one
prompt. When a text does not fit `max_length`, each response keeps its start
(only a response longer than the whole budget loses its end) and the prompt
keeps its longest suffix that fits beside the *longer* response, so both
sides of a pair read exactly the same prompt tokens and the reward difference
compares the responses alone. Each encoded pair records what it lost, so a
job can say how many pairs were cut and how many became identical.

Batches (docs/methods.md, "Batches"): by default pairs of similar length are
batched together (sorted within a window of shuffled pairs, the batches then
shuffled), so little is padding. That changes nothing for a per-pair loss,
but it bends a batch statistic (adaptive's μ_B, MORE's λ) when d correlates
with length, so objectives with one draw random batches unless told
otherwise (`group_by_length`). Pairs that do not fill a last batch are a
random remainder, never the longest ones. Sampling:

- single: one source;
- multitask: all sources mixed uniformly at random (MORE's baseline);
- balanced: every batch is K equal sub-batches, one per source, in a fixed
  source order (what MORE needs). Each source is brought to a common quota,
  by default the largest source's size so no pair is dropped: repeated whole
  as often as it fits, then topped up by a random draw (a quota below a
  source's size draws a random subset). Two copies of one pair never share
  a batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from prefstudio.errors import PrefstudioError

DEFAULT_TEMPLATE = "{prompt}\n\nAssistant: {response}"
GROUP_WINDOW = 50  # batches' worth of pairs sorted by length together


@dataclass
class EncodedPair:
    pair_id: int
    source: str
    chosen: list[int]
    rejected: list[int]
    margin: float
    prompt_lost: int = 0  # prompt tokens cut from the left, the same on both sides
    response_lost: int = 0  # response tokens cut from the right, both sides together

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


def fit(prompt: list[int], responses: list[list[int]], budget: int) -> tuple[list[int], list[list[int]]]:
    """(kept prompt, kept responses) within `budget` tokens per text, one prompt shared by every response.

    Responses keep their start (cut only when one alone exceeds the budget); the prompt keeps its longest
    suffix that fits beside the longest kept response.
    """
    kept_responses = [r[:budget] for r in responses]
    room = budget - max((len(r) for r in kept_responses), default=0)
    kept_prompt = prompt[max(0, len(prompt) - room):] if room > 0 else []
    return kept_prompt, kept_responses


def _budget(tokenizer, max_length: int) -> tuple[list[int], list[int], int]:
    before, after = special_tokens_around(tokenizer)
    budget = max_length - len(before) - len(after)
    if budget < 1:
        raise PrefstudioError(f"max_length {max_length} leaves no room beside the tokenizer's {len(before) + len(after)} "
                         "special tokens")
    return before, after, budget


def _tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens; transformers' 'longer than the maximum length' warning is noise here."""
    from prefstudio.train.reward_model import transformers_errors_only

    with transformers_errors_only():
        return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _prompt_ids(tokenizer, prompts: list[str], template: str) -> list[list[int]]:
    return _tokenize(tokenizer, [prompt_prefix(template, p) for p in prompts])


def encode_pairs(tokenizer, rows: list[dict], max_length: int, template: str = DEFAULT_TEMPLATE,
                 render: str = "text") -> list[EncodedPair]:
    """rows: dicts with pair_id, source, prompt, chosen, rejected, margin (and prompt_turns, for chat rendering).

    render "chat": through the tokenizer's chat template (train/chat.py), the same truncation rule; "text" (or
    "auto", a job made before rendering was resolved at launch): `template` and the tokenizer's special tokens.
    """
    if render == "chat":
        from prefstudio.train.chat import ChatEncoder, prompt_messages

        chat = ChatEncoder(tokenizer, max_length).encode(
            [(prompt_messages(r["prompt"], r.get("prompt_turns")), [r["chosen"], r["rejected"]],
              f"pair {r['pair_id']}") for r in rows])
        return [EncodedPair(r["pair_id"], r["source"], *e.sequences, float(r.get("margin") or 0.0),
                            prompt_lost=e.prompt_lost, response_lost=e.response_lost) for r, e in zip(rows, chat)]
    before, after, budget = _budget(tokenizer, max_length)
    prompts = _prompt_ids(tokenizer, [r["prompt"] for r in rows], template)
    chosen = _tokenize(tokenizer, [r["chosen"] for r in rows])
    rejected = _tokenize(tokenizer, [r["rejected"] for r in rows])
    encoded = []
    for row, p, c, rj in zip(rows, prompts, chosen, rejected):
        kept, (kc, kr) = fit(p, [c, rj], budget)
        encoded.append(EncodedPair(row["pair_id"], row["source"], before + kept + kc + after,
                                   before + kept + kr + after, float(row.get("margin") or 0.0),
                                   prompt_lost=len(p) - len(kept), response_lost=len(c) - len(kc) + len(rj) - len(kr)))
    return encoded


def _cut(copies: list[list[EncodedPair]], size: int, rng: random.Random,
         group_by_length: bool) -> list[list[EncodedPair]]:
    """Batches of exactly `size` from repetitions of distinct pairs, in a shuffled order.

    Each repetition is cut on its own (so no pair appears twice in a batch) after a random remainder is set
    aside; the remainders of all repetitions are then batched together, and what still does not fill a batch
    is left out: random pairs, never the longest. With group_by_length, pairs are sorted by length within
    windows of GROUP_WINDOW batches.
    """
    batches, leftovers = [], []
    for copy in copies:
        copy = copy[:]
        rng.shuffle(copy)
        whole = len(copy) - len(copy) % size
        leftovers += copy[whole:]
        copy = copy[:whole]
        if group_by_length:
            window = size * GROUP_WINDOW
            copy = [p for start in range(0, whole, window) for p in sorted(copy[start:start + window],
                                                                           key=lambda p: p.length)]
        batches += [copy[i:i + size] for i in range(0, whole, size)]
    rng.shuffle(leftovers)
    if len({p.pair_id for p in leftovers}) >= size:
        batches += _distinct_batches(leftovers, size)
    elif not batches:  # fewer distinct pairs than a batch: repeats are unavoidable
        batches = [leftovers[i:i + size] for i in range(0, len(leftovers) - len(leftovers) % size, size)]
    rng.shuffle(batches)
    return batches


def _distinct_batches(ordered: list[EncodedPair], size: int) -> list[list[EncodedPair]]:
    """Consecutive batches with no pair twice in one: a repeat waits for a later batch."""
    waiting: list[EncodedPair] = []
    batches, current, ids = [], [], set()
    for pair in ordered:
        if pair.pair_id in ids:
            waiting.append(pair)
            continue
        current.append(pair)
        ids.add(pair.pair_id)
        while len(current) < size and (held := next((w for w in waiting if w.pair_id not in ids), None)):
            waiting.remove(held)
            current.append(held)
            ids.add(held.pair_id)
        if len(current) == size:
            batches.append(current)
            current, ids = [], set()
    return batches


def plan_batches(pairs: list[EncodedPair], *, sampling: str, batch_size: int, seed: int,
                 sources: list[str] | None = None, quota: int | None = None,
                 group_by_length: bool = True) -> list[list[EncodedPair]]:
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
        return _cut([by_source[names[0]]], batch_size, rng, group_by_length)
    if sampling == "multitask":
        if not quota:
            return _cut([[p for name in names for p in by_source[name]]], batch_size, rng, group_by_length)
        per_source = [_resample(by_source[name], quota, rng) for name in names]
        rounds = [[p for copies in per_source if k < len(copies) for p in copies[k]]
                  for k in range(max(len(copies) for copies in per_source))]
        return _cut(rounds, batch_size, rng, group_by_length)
    if sampling == "balanced":
        k = len(names)
        if batch_size % k:
            raise ValueError(f"balanced sampling needs a batch size divisible by the {k} sources; got {batch_size}")
        sub = batch_size // k
        target = quota or max(len(by_source[name]) for name in names)
        per_source = [_cut(_resample(by_source[name], target, rng), sub, rng, group_by_length) for name in names]
        steps = min(len(batches) for batches in per_source)
        return [[p for batches in per_source for p in batches[step]] for step in range(steps)]
    raise ValueError(f"sampling {sampling!r}: expected single, multitask or balanced")


def _resample(pairs: list[EncodedPair], quota: int, rng: random.Random) -> list[list[EncodedPair]]:
    """Exactly `quota` pairs as repetitions of distinct pairs: all of them as often as they fit, then a random
    draw."""
    whole, rest = divmod(quota, len(pairs))
    return [pairs] * whole + ([rng.sample(pairs, rest)] if rest else [])


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
                     template: str = DEFAULT_TEMPLATE, render: str = "text",
                     turns: list | None = None) -> list[list[int]]:
    """One sequence per (prompt, response), under the rule encode_pairs applies to a pair (one response here);
    `turns`: each prompt's stored turns (or None), for chat rendering."""
    if render == "chat":
        from prefstudio.train.chat import ChatEncoder, prompt_messages

        turns = turns or [None] * len(prompts)
        return [e.sequences[0] for e in ChatEncoder(tokenizer, max_length).encode(
            [(prompt_messages(p, t), [r], f"prompt {p[:60]!r}") for p, t, r in zip(prompts, turns, responses)])]
    before, after, budget = _budget(tokenizer, max_length)
    prompt_ids = _prompt_ids(tokenizer, prompts, template)
    response_ids = _tokenize(tokenizer, list(responses))
    sequences = []
    for p, r in zip(prompt_ids, response_ids):
        kept, (kr,) = fit(p, [r], budget)
        sequences.append(before + kept + kr + after)
    return sequences


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded on the right to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def collate_packed(batch: list[EncodedPair]) -> dict[str, torch.Tensor]:
    """The batch's 2B sequences (chosen then rejected, as collate orders them) in one row, no padding: position ids
    restart at 0 for each sequence, which is how attention keeps the sequences apart (flash-attention's varlen
    kernels; a block-diagonal mask on the others), and `ends` is each sequence's last token, where its reward is
    read. Padding-free batching (`padding_free`): no compute is spent on pad tokens."""
    sequences = [p.chosen for p in batch] + [p.rejected for p in batch]
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    ends = lengths.cumsum(0) - 1
    starts = ends - lengths + 1
    positions = torch.arange(int(lengths.sum())) - torch.repeat_interleave(starts, lengths)
    return {
        "input_ids": torch.tensor([t for s in sequences for t in s], dtype=torch.long).unsqueeze(0),
        "position_ids": positions.unsqueeze(0),
        "ends": ends,
        "margins": torch.tensor([p.margin for p in batch], dtype=torch.float32),
        "pair_ids": torch.tensor([p.pair_id for p in batch], dtype=torch.long),
    }


def padding_free_refusal(config, *, cuda: bool | None = None) -> str | None:
    """Why a job cannot batch without padding here (one line), or None: it needs flash-attention's varlen kernels,
    so a CUDA GPU, the flash_attn package, and half-precision activations (mixed_precision bf16 or fp16)."""
    import importlib.util

    if not config.padding_free:
        return None
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return "padding_free: packs pairs for flash-attention on a CUDA GPU, and there is none here; leave it off"
    if importlib.util.find_spec("flash_attn") is None:
        return "padding_free: needs the flash_attn package (pip install flash-attn); leave it off without it"
    if config.mixed_precision == "no":
        return "padding_free: flash-attention runs in half precision; set mixed_precision bf16 (or fp16)"
    return None
