"""Intervals over seeds, the paired bootstrap over test pairs, its p-value and the power note, by hand."""

import itertools
import math

import numpy as np
import pytest

from prefstudio.evaluate import metrics, uncertainty
from prefstudio.evaluate.uncertainty import ACCURACY_ALL, ACCURACY_AVG, ECE


def test_the_t_interval_of_three_values_by_hand():
    got = uncertainty.mean_interval([0.60, 0.64, 0.68])
    # mean 0.64; s = 0.04 (n − 1 = 2 df); t(0.975, 2) = 4.302653; 4.302653 · 0.04 / √3 = 0.0993655
    assert (got.mean, got.n) == (pytest.approx(0.64), 3)
    assert got.half_width == pytest.approx(0.0993655, abs=1e-7)
    assert (got.low, got.high) == (pytest.approx(0.64 - 0.0993655, abs=1e-7), pytest.approx(0.64 + 0.0993655, abs=1e-7))
    one = uncertainty.mean_interval([0.7])
    assert (one.mean, one.n, math.isnan(one.half_width)) == (0.7, 1, True)  # one seed: no spread to speak of
    assert uncertainty.mean_interval([]).n == 0 and uncertainty.mean_interval([0.5, 0.5]).half_width == 0.0


def test_t_quantiles_match_student_t():
    assert uncertainty.t_975(1) == 12.706204736 and uncertainty.t_975(30) == 2.042272456
    assert math.isnan(uncertainty.t_975(0))
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 80), 120, 1000, 100000]:
        assert uncertainty.t_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-7), df


def test_p_value_edge_cases():
    p = uncertainty.p_value
    assert p(np.zeros(10)) == 1.0  # every draw a tie: 2·min(1, 1), capped at 1
    assert p(np.full(10, 0.2)) == pytest.approx(1 / 11)  # none at or below 0: floored at 1/(B + 1)
    assert p(np.full(10, -0.2)) == pytest.approx(1 / 11)
    assert p(np.array([-1.0, 1.0])) == 1.0
    assert p(np.array([-1.0, 1.0, 2.0, 3.0])) == 0.5  # 2 · 1/4
    assert p(np.array([0.0, 1.0, 2.0, 3.0])) == 0.5  # a zero counts on both sides: 2 · min(1/4, 4/4)
    assert p(np.array([1e-15, 1.0, 2.0, 3.0])) == 0.5  # rounding noise is a zero, not a sign
    assert math.isnan(p(np.array([]))) and math.isnan(p(np.array([np.nan, np.nan])))


def test_the_percentile_interval_interpolates_linearly():
    assert uncertainty.percentile_interval(np.arange(41.0)) == (1.0, 39.0)  # positions 0.025·40 and 0.975·40
    assert uncertainty.percentile_interval(np.arange(5.0)) == (pytest.approx(0.1), pytest.approx(3.9))


# four pairs, two seeds per cell; the last pair of B's first seed is a tie
A = np.array([[1.0, 1.0, -1.0, 1.0], [1.0, -1.0, 1.0, 1.0]])
B = np.array([[-1.0, 1.0, -1.0, 0.0], [1.0, -1.0, -1.0, -1.0]])
CODES = np.array([0, 0, 1, 1])


def test_an_exhaustive_bootstrap_over_all_4_to_the_4_resamples():
    every = list(itertools.product(range(4), repeat=4))
    counts = np.array([np.bincount(idx, minlength=4) for idx in every])
    draws_a, draws_b = uncertainty.bootstrap_figures([A, B], CODES, 2, ece_bins=10, resamples=[counts])
    diffs = draws_a[ACCURACY_ALL] - draws_b[ACCURACY_ALL]
    # by hand: per pair, (A's credits summed over seeds − B's) / 2 seeds = ([2,1,1,2] − [1,1,0,½]) / 2
    x = np.array([0.5, 0.0, 0.5, 0.75])
    exact = sorted(float(np.mean(x[list(idx)])) for idx in every)
    assert sorted(diffs.tolist()) == pytest.approx(exact)
    assert diffs.mean() == pytest.approx(0.4375)  # the mean over every resample is the observed difference
    assert (diffs.min(), diffs.max()) == (0.0, 0.75)  # pair 1 four times; pair 3 four times
    assert uncertainty.p_value(diffs) == 2 / 256  # only the all-pair-1 resample is ≤ 0 (a tie)
    # ECE per resample: the mean over seeds of metrics.ece on the resampled d, the same bins
    for idx, a, b in zip(every, draws_a[ECE], draws_b[ECE]):
        assert a == pytest.approx(np.mean([metrics.ece(row[list(idx)], 10) for row in A]))
        assert b == pytest.approx(np.mean([metrics.ece(row[list(idx)], 10) for row in B]))
    # avg over the sources a resample holds: (0, 0, 0, 0) has only source 0 → A's seeds score pair 0 right twice
    assert draws_a[ACCURACY_AVG][0] == 1.0 and draws_b[ACCURACY_AVG][0] == 0.5


def test_the_difference_holds_hand_values():
    figures_a = uncertainty.cell_figures(A, CODES, 2, 10)
    figures_b = uncertainty.cell_figures(B, CODES, 2, 10)
    assert figures_a[ACCURACY_ALL].tolist() == [0.75, 0.75] and figures_b[ACCURACY_ALL].tolist() == [0.375, 0.25]
    # avg: A seed 1 (1 + ½)/2, seed 2 (½ + 1)/2; B seed 1 (½ + ¼)/2, seed 2 (½ + 0)/2
    assert figures_a[ACCURACY_AVG].tolist() == [0.75, 0.75] and figures_b[ACCURACY_AVG].tolist() == [0.375, 0.25]
    draws = uncertainty.bootstrap_figures([A, B], CODES, 2, ece_bins=10, bootstrap=200, seed=3)
    diff = uncertainty.difference(ACCURACY_ALL, figures_a[ACCURACY_ALL], figures_b[ACCURACY_ALL],
                                  draws[0][ACCURACY_ALL], draws[1][ACCURACY_ALL], 4)
    assert (diff.a, diff.b, diff.difference) == (0.75, 0.3125, 0.4375)
    # Cohen's d: seed variances 0 and 0.0078125 pooled over 1 + 1 df → sd 0.0625; 0.4375 / 0.0625
    assert diff.effect_size == pytest.approx(7.0)


def _loop_bootstrap(cells, codes, bins, bootstrap, seed):
    """The bootstrap written plainly: one resample at a time, every figure from metrics on the resampled d."""
    rng = np.random.default_rng(seed)
    n = codes.size
    out = [{ACCURACY_ALL: [], ACCURACY_AVG: [], ECE: []} for _ in cells]
    for _ in range(bootstrap):
        idx = rng.integers(0, n, size=n)
        for d, figures in zip(cells, out):
            accs, avgs, eces = [], [], []
            for row in d:
                sample, sample_codes = row[idx], codes[idx]
                accs.append(metrics.accuracy(sample))
                avgs.append(np.mean([metrics.accuracy(sample[sample_codes == j]) for j in np.unique(sample_codes)]))
                eces.append(metrics.ece(sample, bins))
            figures[ACCURACY_ALL].append(np.mean(accs))
            figures[ACCURACY_AVG].append(np.mean(avgs))
            figures[ECE].append(np.mean(eces))
    return out


def _loop_p(diffs) -> float:
    below = sum(1 for x in diffs if x <= 1e-12)
    above = sum(1 for x in diffs if x >= -1e-12)
    return min(1.0, max(2 * min(below, above) / len(diffs), 1 / (len(diffs) + 1)))


def test_the_vectorised_bootstrap_equals_a_plain_loop():
    rng = np.random.default_rng(11)
    codes = np.array([0] * 25 + [1] * 15 + [2] * 4)
    a = np.round(rng.normal(0.3, 1.0, (3, codes.size)), 1)  # rounded: some ties
    b = np.round(rng.normal(0.1, 1.0, (2, codes.size)), 1)
    got = uncertainty.bootstrap_figures([a, b], codes, 3, ece_bins=10, bootstrap=150, seed=7)
    want = _loop_bootstrap([a, b], codes, 10, 150, 7)
    for g, w in zip(got, want):
        for figure in uncertainty.FIGURES:
            assert g[figure] == pytest.approx(np.array(w[figure]), abs=1e-12), figure
    for figure in uncertainty.FIGURES:
        diffs = got[0][figure] - got[1][figure]
        assert uncertainty.p_value(diffs) == _loop_p(np.array(want[0][figure]) - np.array(want[1][figure]))
    # the same seed, the same numbers; another seed, others
    again = uncertainty.bootstrap_figures([a, b], codes, 3, ece_bins=10, bootstrap=150, seed=7)
    assert np.array_equal(again[0][ECE], got[0][ECE])
    other = uncertainty.bootstrap_figures([a, b], codes, 3, ece_bins=10, bootstrap=150, seed=8)
    assert not np.array_equal(other[0][ECE], got[0][ECE])


def test_draws_in_chunks_are_the_draws_one_at_a_time():
    chunked = np.concatenate(list(uncertainty.resample_counts(7, 10, seed=5, chunk=3)))
    rng = np.random.default_rng(5)
    one_by_one = np.array([np.bincount(rng.integers(0, 7, size=7), minlength=7) for _ in range(10)])
    assert np.array_equal(chunked, one_by_one)


def test_ece_contributions_sum_to_the_ece():
    d = np.array([-3.0, -0.2, 0.0, 0.0, 0.4, 1.1, 2.5, 0.0001])
    for bins in (5, 10, 20):
        rows = metrics.ece_contributions(d, bins)
        assert np.abs(rows.sum(axis=0)).sum() / (2 * d.size) == pytest.approx(metrics.ece(d, bins), abs=1e-15)


def test_the_power_note_by_hand():
    # target 0.05; bootstrap variance 1e-4 on 1,000 pairs; seed variance 4e-4; 3 seeds each
    # allowed Var = (0.05 / (1.959964 + 0.841621))² = 3.18517e-4; the seed term 4e-4 · (1/3 + 1/3) = 2.66667e-4
    power = uncertainty.power(0.05, 1e-4, 1000, 4e-4, 3, 3)
    assert power.power_now == pytest.approx(0.742542, abs=1e-6)  # Φ(0.05 / √3.66667e-4 − 1.959964)
    assert power.seeds == 4  # ⌈2 · 4e-4 / (3.18517e-4 − 1e-4)⌉ = ⌈3.661⌉
    assert power.pairs == 1929  # ⌈1000 · 1e-4 / (3.18517e-4 − 2.66667e-4)⌉ = ⌈1928.6⌉
    assert power.plan == (6, 628)  # each half of the allowed variance: ⌈5.02⌉ seeds, ⌈627.9⌉ pairs
    hopeless = uncertainty.power(0.01, 1e-4, 1000, 4e-4, 3, 3)  # allowed 1.27e-5: below both terms
    assert (hopeless.seeds, hopeless.pairs) == (None, None) and hopeless.plan is not None
    unknown = uncertainty.power(0.05, 1e-4, 1000, math.nan, 1, 1)  # one seed per cell
    assert not unknown.seed_spread_known and unknown.seeds is None and math.isnan(unknown.power_now)
    assert unknown.pairs == 314  # ⌈1000 · 1e-4 / 3.18517e-4⌉, as if seeds did not vary
    assert uncertainty.pooled_variance(np.array([1.0, 3.0]), np.array([2.0, 2.0, 5.0])) == pytest.approx(
        (1 * 2.0 + 2 * 3.0) / 3)
