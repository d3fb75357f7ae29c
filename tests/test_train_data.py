"""Pairs to token sequences and batches: the truncation rule, exhaustively on small lengths, and the batch plans.

Each test here fails on a known way to get it wrong: a prompt cut that it had room for, two sides of a
pair reading different prompts, the longest pairs always left out, copies of a pair in one batch,
length-grouped batches for an objective with a batch statistic, a margin that never reaches a batch.
"""

import itertools
import random
from collections import Counter

import pytest

from prefstudio.errors import PrefstudioError
from prefstudio.train.config import make_config
from prefstudio.train.data import EncodedPair, collate, encode_pairs, encode_responses, fit, plan_batches
from prefstudio.train.truncation import TruncationReport
from tests.tiny_models import MINILM


def _longest_fitting_suffix(prompt, responses, budget):
    """The rule as stated, computed by search: the longest suffix of the prompt that fits beside every kept response."""
    kept = [r[:budget] for r in responses]
    for length in range(len(prompt), -1, -1):
        suffix = prompt[len(prompt) - length:]
        if all(len(suffix) + len(r) <= budget for r in kept):
            return suffix, kept
    raise AssertionError("the empty prompt always fits")


def test_fit_keeps_the_longest_prompt_suffix_that_fits_exhaustively():
    for budget in range(1, 9):
        for lp, lc, lr in itertools.product(range(0, 10), range(0, 10), range(0, 10)):
            prompt = list(range(100, 100 + lp))
            chosen, rejected = list(range(200, 200 + lc)), list(range(300, 300 + lr))
            kept, (kc, kr) = fit(prompt, [chosen, rejected], budget)
            assert (kept, [kc, kr]) == _longest_fitting_suffix(prompt, [chosen, rejected], budget), (budget, lp, lc, lr)
            assert len(kept) + len(kc) <= budget and len(kept) + len(kr) <= budget
            if lc <= budget:
                assert kc == chosen  # a response that fits is never touched
            if lp + max(lc, lr) <= budget:
                assert kept == prompt  # nothing is cut when everything fits


def test_the_case_the_audit_found_keeps_the_whole_prompt():
    # budget 10, prompt 4, response 3: room for the whole prompt (the old code kept only its last 2 tokens)
    assert fit([1, 2, 3, 4], [[7, 8, 9]], 10) == ([1, 2, 3, 4], [[7, 8, 9]])
    assert fit([1, 2, 3, 4], [[7, 8, 9], [5] * 8], 10) == ([3, 4], [[7, 8, 9], [5] * 8])


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MINILM)


def _pair(pair_id, prompt, chosen, rejected, source="s", margin=0.0):
    return {"pair_id": pair_id, "source": source, "prompt": prompt, "chosen": chosen, "rejected": rejected,
            "margin": margin}


def test_both_sides_read_the_same_prompt_tokens_and_the_counts_say_what_was_cut(tokenizer):
    words = " ".join(f"word{i}" for i in range(40))
    rows = [
        _pair(1, "short question", "a short answer", "another short answer"),
        _pair(2, words, "yes", "no, and here is a much longer answer with many more tokens in it"),
        _pair(3, "q", words, "brief"),  # the chosen response alone is longer than the budget
        _pair(4, words, "same start " + "x " * 60 + "end one", "same start " + "x " * 60 + "end two"),
    ]
    pairs = encode_pairs(tokenizer, rows, max_length=48)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for pair, row in zip(pairs, rows):
        assert len(pair.chosen) <= 48 and len(pair.rejected) <= 48
        assert pair.chosen[0] == pair.rejected[0] == cls and pair.chosen[-1] == pair.rejected[-1] == sep
        c = tokenizer(row["chosen"], add_special_tokens=False)["input_ids"][:46]
        r = tokenizer(row["rejected"], add_special_tokens=False)["input_ids"][:46]
        prompt_c, prompt_r = pair.chosen[1:-1 - len(c)], pair.rejected[1:-1 - len(r)]
        assert prompt_c == prompt_r  # one prompt for both sides
        assert pair.chosen[-1 - len(c):-1] == c and pair.rejected[-1 - len(r):-1] == r
    assert pairs[0].prompt_lost == pairs[0].response_lost == 0
    assert pairs[1].prompt_lost > 0 and pairs[1].response_lost == 0
    assert pairs[2].response_lost > 0
    assert pairs[3].chosen == pairs[3].rejected  # the ends that differ were cut off
    report = TruncationReport.of(pairs)
    assert (report.pairs, report.prompt_cut, report.response_cut, report.identical) == (4, 3, 2, 1)
    assert "1 became identical" in report.line(48) and "3 of 4 pairs lost prompt tokens" in report.line(48)
    assert TruncationReport.of(pairs[:1]).line(48) == "max_length 48: all 1 pairs fit whole"


def test_a_single_response_is_cut_like_a_pair_with_one_side(tokenizer):
    words = " ".join(f"word{i}" for i in range(40))
    (seq,) = encode_responses(tokenizer, [words], ["a short answer"], max_length=32)
    (pair,) = encode_pairs(tokenizer, [_pair(1, words, "a short answer", "a short answer")], max_length=32)
    assert seq == pair.chosen and len(seq) == 32


def test_a_max_length_without_room_is_refused(tokenizer):
    with pytest.raises(PrefstudioError, match="max_length 2 leaves no room"):
        encode_pairs(tokenizer, [_pair(1, "q", "a", "b")], max_length=2)


def test_a_pairs_margin_reaches_the_batch(tokenizer):
    rows = [_pair(i, "q", f"answer {i}", "other", margin=m) for i, m in enumerate([1.0, 2 / 3, 1 / 3, 0.0, -1.0])]
    batch = collate(encode_pairs(tokenizer, rows, 32), tokenizer.pad_token_id)
    assert batch["margins"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0, -1.0])
    assert batch["pair_ids"].tolist() == [0, 1, 2, 3, 4]


def _encoded(n, source="s", length=lambda i: i % 13 + 1):
    return [EncodedPair(i, source, [1] * length(i), [2], 0.0) for i in range(n)]


def test_objectives_with_a_batch_statistic_draw_random_batches_by_default():
    grouped = {o: make_config({"backbone": "b", "objective": o, "sampling": "balanced"}).grouped
               for o in ("bt", "margin", "adaptive", "more")}
    assert grouped == {"bt": True, "margin": True, "adaptive": False, "more": False}
    assert make_config({"backbone": "b", "objective": "adaptive", "group_by_length": True}).grouped
    assert not make_config({"backbone": "b", "objective": "bt", "group_by_length": False}).grouped


def _within_batch_spread(batches):
    return sum(max(p.length for p in b) - min(p.length for p in b) for b in batches) / len(batches)


def test_random_batches_mix_lengths_and_grouped_ones_do_not():
    pairs = _encoded(800, length=lambda i: i % 100 + 1)
    random_batches = plan_batches(pairs, sampling="multitask", batch_size=16, seed=0, group_by_length=False)
    grouped = plan_batches(pairs, sampling="multitask", batch_size=16, seed=0, group_by_length=True)
    assert _within_batch_spread(random_batches) > 60  # a random batch of 16 spans most of 1..100
    assert _within_batch_spread(grouped) < 5


@pytest.mark.parametrize("group", [True, False])
def test_every_pair_is_seen_when_the_batches_divide_the_pairs(group):
    pairs = _encoded(640)
    batches = plan_batches(pairs, sampling="multitask", batch_size=16, seed=3, group_by_length=group)
    assert sorted(p.pair_id for b in batches for p in b) == list(range(640))


@pytest.mark.parametrize("group", [True, False])
def test_the_pairs_left_out_are_random_not_the_longest(group):
    pairs = _encoded(1000, length=lambda i: i + 1)  # pair i has length i + 1: unique lengths
    left_out = []
    for seed in range(40):
        seen = {p.pair_id for b in plan_batches(pairs, sampling="multitask", batch_size=64, seed=seed,
                                                 group_by_length=group) for p in b}
        left_out += [i for i in range(1000) if i not in seen]
    assert len(left_out) == 40 * (1000 % 64)
    mean_percentile = sum(left_out) / len(left_out) / 1000
    assert 0.35 < mean_percentile < 0.65  # the longest pairs were always left out before: 0.98


@pytest.mark.parametrize("group", [True, False])
def test_balanced_batches_keep_the_source_order_and_never_hold_a_pair_twice(group):
    pairs = _encoded(60, "alpha") + [EncodedPair(1000 + i, "beta", [1] * (i % 5 + 1), [2], 0.0) for i in range(7)]
    batches = plan_batches(pairs, sampling="balanced", batch_size=8, seed=1, group_by_length=group)
    assert len(batches) >= 60 // 4 - 2
    for batch in batches:
        assert [p.source for p in batch] == ["alpha"] * 4 + ["beta"] * 4
        assert len({p.pair_id for p in batch}) == 8  # beta is upsampled ~9x, yet no copy shares a batch
    beta_seen = Counter(p.pair_id for b in batches for p in b if p.source == "beta")
    assert set(beta_seen) == {1000 + i for i in range(7)}
    assert max(beta_seen.values()) - min(beta_seen.values()) <= 2  # repeated whole, not drawn at random


def test_plans_are_deterministic_for_a_seed():
    pairs = _encoded(300)
    plan = lambda seed: [[p.pair_id for p in b] for b in plan_batches(pairs, sampling="multitask",  # noqa: E731
                                                                      batch_size=10, seed=seed)]
    random.seed(1)
    first = plan(5)
    random.seed(2)  # the plan takes its own Random, not the global one
    assert plan(5) == first and plan(6) != first


def test_long_texts_raise_no_indexing_warning(capfd):
    """transformers warns '(n > 512) ... indexing errors' on long texts; the cut makes it wrong here, and alarming."""
    from transformers import AutoTokenizer

    fresh = AutoTokenizer.from_pretrained(MINILM)  # the warning is given once per tokenizer
    long = " ".join(f"word{i}" for i in range(700))
    (pair,) = encode_pairs(fresh, [_pair(1, long, long, "short")], max_length=128)
    assert len(pair.chosen) == 128
    assert "indexing errors" not in capfd.readouterr().err
