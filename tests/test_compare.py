"""Models side by side on the same pairs: the papers' table, shared histogram bins, outliers with their texts."""

import math

import numpy as np
import pytest

from prefstudio.evaluate import compare, metrics, predictions
from tests.eval_helpers import add_pairs, store_model


@pytest.fixture
def two_models(ws):
    ids = add_pairs(ws.con, {"alpha": 4, "beta": 2})
    every = ids["alpha"] + ids["beta"]
    # model A: alpha 3 of 4 right, beta 1 of 2; model B: all right but the last alpha pair, a tie
    store_model(ws.con, "job-a", every, [1.0, 2.0, 3.0, -1.0, 0.5, -0.5], name="bt")
    store_model(ws.con, "job-b", every, [1.0, 1.0, 1.0, 0.0, 2.0, 2.0], name="more")
    return ws, ids


def test_the_papers_table_per_source_average_and_ece(two_models):
    ws, _ = two_models
    models = predictions.scored_models(ws.con, "test")
    comparison = compare.compare(ws.con, models, ece_bins=5)
    assert comparison.sources == ["alpha", "beta"] and comparison.n_common == 6 and comparison.left_out == {}
    header, a, b = comparison.table()
    assert header == ["model", "alpha", "beta", "avg", "all", "ECE@5", "n"]
    # avg is the mean of the per-source accuracies (75 and 50), not the pooled 4/6
    assert a == ["bt (step-10)", "75.0", "50.0", "62.5", "66.7",
                 f"{metrics.ece(np.array([1.0, 2.0, 3.0, -1.0, 0.5, -0.5]), 5):.4f}", "6"]
    assert b[1:5] == ["75.0", "100.0", "87.5", "83.3"]  # the tie counts as wrong


def test_only_the_pairs_every_model_scored_are_compared(ws):
    ids = add_pairs(ws.con, {"alpha": 5})["alpha"]
    store_model(ws.con, "old", ids[:3], [1.0, -1.0, 1.0], name="old")
    store_model(ws.con, "new", ids, [1.0, 1.0, 1.0, -1.0, -1.0], name="new")
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    assert comparison.n_common == 3 and comparison.left_out == {"new (step-10)": 2}
    new = comparison.results[1]
    assert new.rewards.pair_id.tolist() == ids[:3] and new.summaries[metrics.ALL].accuracy == 1.0
    only_old = compare.compare(ws.con, predictions.scored_models(ws.con, "test")[:1])
    assert only_old.n_common == 3 and only_old.table()[1][-1] == "3"


def test_histograms_share_a_range_that_stops_at_the_far_out_fences(ws):
    ids = add_pairs(ws.con, {"alpha": 200})["alpha"]
    d = np.linspace(-1.0, 1.0, 200)
    d[-1] = 1000.0  # one wild pair must not put every other one in a single bar
    store_model(ws.con, "a", ids, d, name="a")
    store_model(ws.con, "b", ids, d + 0.5, name="b")
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    low, high = comparison.histogram_range()
    both = np.concatenate([d, d + 0.5])
    q1, q3 = np.percentile(both, [25, 75])
    assert (low, high) == pytest.approx((both.min(), q3 + 3 * (q3 - q1)))  # the data's low end, the far-out fence
    edges, (a, b) = comparison.histograms(10)
    assert edges[0] == pytest.approx(low) and edges[-1] == pytest.approx(high)
    assert a.sum() == b.sum() == 200  # clipped into the end bins, not dropped
    assert a.max() < 200 // 3 and b[4] > a[4]  # spread over bars (unclipped: 199 in one); b sits further right
    _, (alpha_only, _) = comparison.histograms(10, source="alpha")
    assert alpha_only.tolist() == a.tolist()
    _, (none, _) = comparison.histograms(10, source="nope")
    assert none.sum() == 0


def test_outliers_most_extreme_first_with_their_texts(ws):
    ids = add_pairs(ws.con, {"alpha": 8, "beta": 8})
    d_alpha = [0.0, 0.1, 0.2, 0.3, 0.1, 0.2, 9.0, -7.0]  # Tukey: 9 over, -7 under
    d_beta = [1.0, 1.1, 1.2, 1.3, 1.1, 1.2, 1.0, -20.0]
    store_model(ws.con, "a", ids["alpha"] + ids["beta"], d_alpha + d_beta, name="a")
    (result,) = compare.compare(ws.con, predictions.scored_models(ws.con, "test")).results
    found = compare.outlier_pairs(ws.con, result, source="alpha")
    assert [(o.pair_id, o.side, o.d) for o in found] == [(ids["alpha"][6], "over", 9.0),
                                                         (ids["alpha"][7], "under", -7.0)]
    assert found[0].source == "alpha" and found[0].prompt == "alpha prompt 6" and found[0].chosen == "good answer 6"
    beta = compare.outlier_pairs(ws.con, result, source="beta")
    assert [o.pair_id for o in beta] == [ids["beta"][7]]
    overall = compare.outlier_pairs(ws.con, result)
    summary = result.summaries[metrics.ALL].outliers
    assert len(overall) == summary.n_positive + summary.n_negative
    assert overall[0].d == -20.0  # furthest from the median of all pairs
    assert compare.outlier_pairs(ws.con, result, limit=1) == overall[:1]


def test_nothing_scored_compares_to_an_empty_table(ws):
    comparison = compare.compare(ws.con, [])
    assert comparison.table() == [["model", "avg", "all", "ECE@10", "n"]] and comparison.n_common == 0
    assert not math.isnan(comparison.histogram_range()[0])


def test_a_model_keeps_its_colour_slot_whichever_others_are_compared(two_models):
    ws, ids = two_models
    store_model(ws.con, "raw:base", ids["alpha"] + ids["beta"], [0.1] * 6, checkpoint="raw")
    slots = compare.colour_slots(ws.con)
    assert slots == {"raw:base": 0, "job-a": 1, "job-b": 2}  # baselines, then jobs as they were made
    models = predictions.scored_models(ws.con, "test")
    assert compare.compare(ws.con, models).slots == [0, 1, 2]
    assert compare.compare(ws.con, models[2:]).slots == [2]  # 'more' alone is still slot 2
    assert compare.slots_for(["job-b", "elsewhere", "other"], slots) == [2, 3, 4]
