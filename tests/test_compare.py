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
    assert header == ["model", "alpha", "beta", "avg", "all", "ties", "ECE@5", "n"]
    # avg is the mean of the per-source accuracies (75 and 50), not the pooled 4/6
    assert a == ["bt (step-10)", "75.0", "50.0", "62.5", "66.7", "0",
                 f"{metrics.ece(np.array([1.0, 2.0, 3.0, -1.0, 0.5, -0.5]), 5):.4f}", "6"]
    # the tie counts half: alpha 3.5 of 4, beta 2 of 2, avg (87.5 + 100) / 2, all 5.5 of 6
    assert b[1:6] == ["87.5", "100.0", "93.8", "91.7", "1"]


def test_ties_count_half_per_source_in_the_average_and_overall(ws):
    ids = add_pairs(ws.con, {"alpha": 4, "beta": 2})
    # alpha: 1 right, 2 ties, 1 wrong -> 2/4; beta: a tie and 1 right -> 1.5/2; all: 2 right, 3 ties -> 3.5/6
    store_model(ws.con, "job-t", ids["alpha"] + ids["beta"], [0.0, 0.0, 1.0, -1.0, 0.0, 1.0], name="tied")
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    (row,) = comparison.rows()
    assert row.accuracy == {"alpha": 0.5, "beta": 0.75} and row.ties == {"alpha": 2, "beta": 1}
    assert (row.average, row.overall, row.overall_ties) == (0.625, pytest.approx(3.5 / 6), 3)
    assert comparison.table()[1][1:6] == ["50.0", "75.0", "62.5", "58.3", "3"]
    stored = ws.con.execute("SELECT source, name, value FROM metrics WHERE job_id = 'job-t' "
                            "AND name IN ('accuracy', 'ties')").fetchall()
    assert {(source, name): value for source, name, value in stored} == {
        ("alpha", "accuracy"): 0.5, ("alpha", "ties"): 2, ("beta", "accuracy"): 0.75, ("beta", "ties"): 1,
        ("all", "accuracy"): pytest.approx(3.5 / 6), ("all", "ties"): 3}
    # a workspace scored before ties were stored has no such rows: they come from the rewards, not from there
    ws.con.execute("DELETE FROM metrics WHERE name = 'ties'")
    assert compare.compare(ws.con, predictions.scored_models(ws.con, "test")).rows()[0].ties == row.ties


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
    assert comparison.table() == [["model", "avg", "all", "ties", "ECE@10", "n"]] and comparison.n_common == 0
    assert not math.isnan(comparison.histogram_range()[0])


def test_a_model_keeps_its_colour_slot_whichever_others_are_compared(two_models):
    ws, ids = two_models
    store_model(ws.con, "raw:base", ids["alpha"] + ids["beta"], [0.1] * 6, checkpoint="raw")
    slots = compare.colour_slots(ws.con)
    # baselines, then jobs as they were made: a slot per (job, checkpoint)
    assert slots == {("raw:base", "raw"): 0, ("job-a", "step-10"): 1, ("job-b", "step-10"): 2}
    models = predictions.scored_models(ws.con, "test")
    assert compare.compare(ws.con, models).slots == [0, 1, 2]
    assert compare.compare(ws.con, models[2:]).slots == [2]  # 'more' alone is still slot 2
    assert compare.slots_for([("job-b", "step-10"), ("elsewhere", "x"), ("other", "y")], slots) == [2, 3, 4]


def test_two_checkpoints_of_one_job_get_their_own_slots_and_marks(two_models):
    ws, ids = two_models
    every = ids["alpha"] + ids["beta"]
    store_model(ws.con, "job-a", every, [0.5] * 6, checkpoint="step-123")
    store_model(ws.con, "job-a", every, [0.2] * 6, checkpoint="step-100")
    slots = compare.colour_slots(ws.con)
    # a job's checkpoints in step order (100 before 123, though scored after it), then the next job
    assert list(slots) == [("job-a", "step-10"), ("job-a", "step-100"), ("job-a", "step-123"), ("job-b", "step-10")]
    job_a = [m for m in predictions.scored_models(ws.con, "test") if m.job_id == "job-a"]
    comparison = compare.compare(ws.con, job_a[1:])
    assert comparison.slots == [1, 2]
    assert compare.marker(1) != compare.marker(2) and compare.text_mark(1) != compare.text_mark(2)
    # a bare job id (best-of-N names scorers so) is its last checkpoint; named twice, the second takes a spare
    assert compare.slots_for(["job-a", "job-a", "job-b"], slots) == [2, 4, 3]
    # colour and marker together repeat only after 90 (PNG) or 99 (terminal) slots
    assert len({(slot % 10, compare.marker(slot)) for slot in range(90)}) == 90
    assert len({(slot % 9, compare.text_mark(slot)) for slot in range(99)}) == 99


def test_odd_bin_counts_get_a_footnote():
    assert compare.odd_bins_note([10, 20]) == ""
    assert compare.odd_bins_note([5, 10, 20]) == (
        "odd bin count: the middle bin pools p and 1 − p, so ECE@5 can read ≈ 0 for a model whose p stay near 0.5")
    assert "so ECE@3, ECE@5 and ECE@7 can read" in compare.odd_bins_note([7, 5, 3, 10])
