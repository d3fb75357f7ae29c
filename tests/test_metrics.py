"""SPEC §4's figures against values worked out by hand."""

import math

import numpy as np
import pytest

from prefstudio.evaluate import metrics

# σ(d) = p exactly when d = ln(p / (1 - p)): confidences 0.85, 0.65, 0.75 (wrong), 0.55, and a tie
D = np.log(np.array([17 / 3, 13 / 7, 1 / 3, 11 / 9, 1.0]))


def test_accuracy_counts_a_tie_half_and_says_how_many():
    # MORE scores both orderings of a pair: a tie (d = 0) is right in one of them
    d = np.array([1.0, 0.0, -1.0, 0.0, 2.0])
    assert metrics.accuracy(d) == pytest.approx((2 + 0.5 * 2) / 5) == pytest.approx(0.6)
    assert metrics.ties(d) == 2
    summary = metrics.summarize(d)
    assert (summary.accuracy, summary.ties) == (pytest.approx(0.6), 2)
    assert metrics.accuracy(D) == pytest.approx(3.5 / 5) and metrics.ties(D) == 1
    assert metrics.accuracy(np.array([0.1, 2.0])) == 1.0 and metrics.ties(np.array([0.1, 2.0])) == 0
    assert metrics.accuracy(np.array([-0.1, 0.0])) == 0.25
    assert metrics.accuracy(np.zeros(3)) == 0.5 and metrics.ties(np.array([-0.0, 0.0, 1e-300])) == 2


def test_two_entry_ece_by_hand():
    # entries (p, 1) and (1-p, 0): 0.85/0.15, 0.65/0.35, 0.25/0.75, 0.55/0.45, 0.5/0.5
    # 10 bins: every entry alone except 0.45, 0.5, 0.5 (0.5 sits on an edge: lower bin) -> |1.45 - 1| = 0.45
    #          total 2·(0.15 + 0.35 + 0.75 + 0.45) = 3.4, over 2n = 10
    assert metrics.ece(D, 10) == pytest.approx(0.34)
    # 5 bins: [0,.2) 0.15→0.15; [.2,.4) 0.35+0.25 vs 1→0.4; [.4,.6] 0.55+0.45+0.5+0.5 vs 2→0;
    #         [.6,.8) 0.65+0.75 vs 1→0.4; [.8,1] 0.85 vs 1→0.15; total 1.1
    assert metrics.ece(D, 5) == pytest.approx(0.11)
    assert metrics.ece(D, 20) == pytest.approx(0.34)


# σ(d) exactly on the inner edges of 4 bins (0.25, 0.5, 0.75) and inside them: ln 3 -> 0.75 (and 1 - σ = 0.25),
# -ln 3 -> just under 0.25 (1 - σ = 0.75), 0 -> 0.5, ln 1.5 -> 0.6, ln 9 -> 0.9
ON_EDGES = np.log(np.array([3.0, 1 / 3, 1.0, 1.5, 9.0]))


def test_values_on_an_inner_edge_fall_in_the_lower_bin():
    p = metrics.sigmoid(ON_EDGES)
    assert (p[0], 1 - p[0], p[1] < 0.25, 1 - p[1], p[2]) == (0.75, 0.25, True, 0.75, 0.5)  # exactly on the edges
    # bins [0, .25] (.25, .5] (.5, .75] (.75, 1], entries (p, 1) and (1 - p, 0):
    #   [0, .25]:  0.25 (0) + 0.25⁻ (1) + 0.1 (0)   = 0.6 vs 1 -> 0.4
    #   (.25, .5]: 0.5 (1) + 0.5 (0) + 0.4 (0)      = 1.4 vs 1 -> 0.4
    #   (.5, .75]: 0.75 (1) + 0.75 (0) + 0.6 (1)    = 2.1 vs 2 -> 0.1
    #   (.75, 1]:  0.9 (1)                           = 0.9 vs 1 -> 0.1;  1.0 over 2n = 10
    # (edge values in the upper bin would give 2.1 / 10; n_bins edges instead of n_bins + 1, 0.8 / 10)
    assert metrics.ece(ON_EDGES, 4) == pytest.approx(0.1)
    # confidence form, 2 bins [.5, .75] (.75, 1]: the 0.75s stay in the first with 0.5 (a tie: half right) and 0.6
    bins = metrics.reliability(ON_EDGES, 2)
    assert [b.count for b in bins] == [4, 1]
    assert [b.confidence for b in bins] == pytest.approx([2.6 / 4, 0.9])
    assert [b.accuracy for b in bins] == pytest.approx([2.5 / 4, 1.0])
    assert metrics.reliability_ece(bins) == pytest.approx((4 * 0.025 + 0.1) / 5)


def test_one_bin_is_always_calibrated():
    assert metrics.ece(np.array([3.0, -1.0, 0.2]), 1) == pytest.approx(0.0)


def test_reliability_table_and_its_ece_by_hand():
    bins = metrics.reliability(D, 5)  # edges .5 .6 .7 .8 .9 1
    assert [b.lower for b in bins] + [bins[-1].upper] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert [b.count for b in bins] == [2, 1, 1, 1, 0]
    assert [b.confidence for b in bins[:4]] == pytest.approx([0.525, 0.65, 0.75, 0.85])
    assert [b.accuracy for b in bins[:4]] == [0.75, 1.0, 0.0, 1.0]  # the tie is half right, as in accuracy
    assert math.isnan(bins[4].confidence) and math.isnan(bins[4].accuracy)
    # (2·|0.75 - 0.525| + 0.35 + 0.75 + 0.15) / 5: with the tie half right the confidence form equals the
    # two-entry form (3.4 / 10), as it does without the tie (1.7 / 4 both ways)
    assert metrics.reliability_ece(bins) == pytest.approx(metrics.ece(D, 10)) == pytest.approx(0.34)
    assert metrics.reliability_ece(metrics.reliability(D[:4], 5)) == pytest.approx(metrics.ece(D[:4], 10)) \
        == pytest.approx(0.425)


def test_all_correct_and_all_wrong_confident_models():
    right, wrong = np.full(4, 50.0), np.full(4, -50.0)
    assert metrics.ece(right, 10) == pytest.approx(0.0, abs=1e-12)
    assert metrics.ece(wrong, 10) == pytest.approx(1.0)
    (*_, top) = metrics.reliability(wrong, 10)
    assert (top.count, top.accuracy) == (4, 0.0) and top.confidence == pytest.approx(1.0)


def test_distribution_moments_by_hand():
    d = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 6.0])  # mean 1; centred -3 -2 -1 0 1 5
    stats = metrics.distribution(d)
    m2 = 40 / 6
    assert stats.n == 6 and stats.mean == pytest.approx(1.0) and stats.std == pytest.approx(math.sqrt(m2))
    assert stats.skewness == pytest.approx(15 / m2**1.5)  # m3 = 90/6
    assert stats.excess_kurtosis == pytest.approx(-0.285)  # m4/m2² - 3 = (724/6)/(40/6)² - 3
    assert stats.share_negative == pytest.approx(2 / 6)  # the tie is not negative
    flat = metrics.distribution(np.zeros(3))
    assert flat.std == 0.0 and math.isnan(flat.skewness)


def test_tukey_outliers_by_hand():
    d = np.array([-10.0, -6.0, 0.0, 1.0, 2.0, 3.0, 4.0, 20.0, 30.0])  # Q1 0, Q3 4, fences -6 and 10
    out = metrics.tukey_outliers(d)
    assert (out.q1, out.q3, out.low_fence, out.high_fence) == (0.0, 4.0, -6.0, 10.0)
    assert out.positive.tolist() == [8, 7] and out.n_positive == 2 and out.mean_positive == 25.0
    assert out.negative.tolist() == [0] and out.n_negative == 1 and out.mean_negative == -10.0  # -6 is on the fence
    interpolated = metrics.tukey_outliers(np.array([-10.0, 0, 1, 2, 3, 4, 20]))  # Q1 0.5, Q3 3.5
    assert (interpolated.low_fence, interpolated.high_fence) == (-4.0, 8.0)


def test_summaries_by_source_keep_indices_into_the_whole():
    d = np.array([1.0, -1.0, 2.0, 100.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    sources = np.array(["b", "a", "a", "b", "b", "b", "b", "b", "b"])
    by_source = metrics.summarize_by_source(d, sources, ece_bins=(10,), reliability_bins=5)
    assert list(by_source) == ["a", "b", metrics.ALL]
    assert by_source["a"].n == 2 and by_source["a"].accuracy == 0.5
    assert [by_source[k].ties for k in ("a", "b", metrics.ALL)] == [0, 0, 0]
    assert by_source["b"].outliers.positive.tolist() == [3]  # index into d, not into b's pairs
    assert by_source[metrics.ALL].n == 9 and by_source[metrics.ALL].ece[10] == pytest.approx(metrics.ece(d, 10))


def test_per_source_accuracy_counts_ties_half_too():
    d = np.array([0.0, 1.0, -1.0, 0.0, 0.0, 2.0])
    sources = np.array(["a", "a", "a", "a", "b", "b"])
    by_source = metrics.summarize_by_source(d, sources)
    # a: 1 right, 2 ties of 4 -> 2/4; b: 1 right, 1 tie of 2 -> 1.5/2; all: 2 right, 3 ties of 6 -> 3.5/6
    assert [(by_source[k].accuracy, by_source[k].ties) for k in ("a", "b", metrics.ALL)] == \
        [(0.5, 2), (0.75, 1), (pytest.approx(3.5 / 6), 3)]
    assert [b.accuracy for b in by_source["b"].reliability if b.count] == [0.5, 1.0]  # the tie's bin; σ(2)'s


def test_empty_input_gives_nan_not_an_error():
    empty = metrics.summarize(np.array([]))
    assert empty.n == 0 and math.isnan(empty.accuracy) and math.isnan(empty.ece[10]) and empty.ties == 0
    assert empty.outliers.n_positive == 0


def test_source_codes_give_the_same_summaries_as_names():
    d = np.array([1.0, -1.0, 2.0, 100.0, 0.5])
    by_name = metrics.summarize_by_source(d, np.array(["b", "a", "a", "b", "b"]))
    by_code = metrics.summarize_by_source(d, np.array([0, 1, 1, 0, 0]), ["b", "a", "unused"])
    assert list(by_code) == list(by_name) == ["a", "b", metrics.ALL]
    assert by_code["b"].accuracy == by_name["b"].accuracy and by_code["b"].ece == by_name["b"].ece
    assert by_code["b"].outliers.positive.tolist() == by_name["b"].outliers.positive.tolist()
