"""Models side by side on the same pairs: the papers' table, shared histogram bins, outliers with their texts."""

import math

import numpy as np
import pytest

from prefstudio.errors import PrefstudioError
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
    header, a, b, length = comparison.table()
    assert comparison.model_table() == [header, a, b] and not comparison.grouped  # one model a setting: no cells
    assert header == ["model", "alpha", "beta", "avg", "all", "ties", "ECE@5", "n"]
    # avg is the mean of the per-source accuracies (75 and 50), not the pooled 4/6
    assert a == ["bt (step-10)", "75.0", "50.0", "62.5", "66.7", "0",
                 f"{metrics.ece(np.array([1.0, 2.0, 3.0, -1.0, 0.5, -0.5]), 5):.4f}", "6"]
    # the tie counts half: alpha 3.5 of 4, beta 2 of 2, avg (87.5 + 100) / 2, all 5.5 of 6
    assert b[1:6] == ["87.5", "100.0", "93.8", "91.7", "1"]
    # "good answer k" is a character longer than "bad answer k": the longer response wins every pair
    assert length == ["length", "100.0", "100.0", "100.0", "100.0", "0", "—", "6"]


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


# two settings × two seeds on alpha (4 pairs) and beta (2): accuracy over all 6 pairs in the comments
CELLS = [("bt-0", "bt", 0, [1.0, 2.0, 3.0, -1.0, 0.5, -0.5]),  # 4/6
         ("bt-1", "bt", 1, [1.0, -1.0, -1.0, -1.0, 0.5, 0.5]),  # 3/6
         ("more-0", "more", 0, [1.0, 1.0, 1.0, 0.0, 2.0, 2.0]),  # 5.5/6, a tie
         ("more-1", "more", 1, [1.0, 1.0, 1.0, 1.0, 2.0, -2.0])]  # 5/6


def store_cells(con, sweep: str = "sw-1") -> list[int]:
    ids = add_pairs(con, {"alpha": 4, "beta": 2})
    every = ids["alpha"] + ids["beta"]
    for job_id, objective, seed, d in CELLS:
        store_model(con, job_id, every, d, name=job_id, config={"objective": objective, "seed": seed, "sweep": sweep})
    return every


def test_seeds_of_one_setting_form_a_cell_with_t_intervals(ws):
    every = store_cells(ws.con)
    store_model(ws.con, "raw:base", every, [0.1] * 6, checkpoint="raw")
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    assert [(c.label, c.members) for c in comparison.cells] == [
        ("raw:base", [0]), ("objective=bt", [1, 2]), ("objective=more", [3, 4])]
    assert comparison.grouped
    header, base, bt, more, length = comparison.table()
    assert header == ["model", "alpha", "beta", "avg", "all", "ties", "ECE@10", "n"]
    # bt over all pairs: 4/6 and 3/6, mean 0.58333, s = 0.117851; t(0.975, 1) = 12.706205 → ± 12.706205 · s / √2
    assert bt[0] == "objective=bt (2 seeds)" and bt[4] == "58.3 ± 105.9"
    # more: 5.5/6 and 5/6, mean 0.875, s = 0.058926 → ± 52.9; ties 1 and 0 → 0.5 ± 6.4
    assert more[4:6] == ["87.5 ± 52.9", "0.5 ± 6.4"]
    assert base[0] == "raw:base (1 seed)" and base[4] == "100.0" and length[0] == "length"
    interval = comparison.cell_intervals(comparison.cells[1])[metrics.ALL]
    assert (interval.mean, interval.n) == (pytest.approx(7 / 12), 2)
    assert interval.half_width == pytest.approx(12.706204736 * (1 / 6) / math.sqrt(2) / math.sqrt(2))
    assert len(comparison.model_table()) == 6  # header and every model, for the app's rows


def test_another_checkpoint_of_a_setting_is_another_cell(ws):
    every = store_cells(ws.con)
    store_model(ws.con, "bt-0", every, [1.0] * 6, checkpoint="step-20")
    models = [m for m in predictions.scored_models(ws.con, "test") if m.job_id.startswith("bt")]
    comparison = compare.compare(ws.con, models)
    assert [(c.label, [comparison.results[m].label for m in c.members]) for c in comparison.cells] == [
        ("objective=bt @ step-10", ["bt-0 (step-10)", "bt-1 (step-10)"]), ("objective=bt @ step-20", ["bt-0 (step-20)"])]
    assert compare.cells_of(models[:1], {}) == [compare.Cell("bt-0 (step-10)", [0])]  # no config: the model's own


def test_comparing_cells_equals_a_plain_loop_bootstrap(ws):
    from tests.test_uncertainty import _loop_bootstrap, _loop_p

    store_cells(ws.con)
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    (test,) = compare.compare_cells(comparison, bootstrap=300, seed=4)
    assert (test.a, test.b) == ("objective=bt", "objective=more")
    codes = np.array([0, 0, 0, 0, 1, 1])
    bt = np.array([d for _, objective, _, d in CELLS if objective == "bt"])
    more = np.array([d for _, objective, _, d in CELLS if objective == "more"])
    loop_bt, loop_more = _loop_bootstrap([bt, more], codes, 10, 300, 4)
    for figure, diff in test.differences.items():
        draws = np.array(loop_bt[figure]) - np.array(loop_more[figure])
        assert diff.p == _loop_p(draws), figure
        assert (diff.low, diff.high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), abs=1e-12)
    accuracy = test.differences["accuracy_all"]
    assert accuracy.difference == pytest.approx(7 / 12 - 10.5 / 12)
    # Cohen's d: seed variances (1/6)²/2 and (1/12)²/2 pooled over 1 + 1 df
    assert accuracy.effect_size == pytest.approx((7 / 12 - 10.5 / 12) / math.sqrt(((1 / 6) ** 2 + (1 / 12) ** 2) / 4))
    # against a baseline: one comparison per other cell, the baseline as b; `length` has no ECE
    (against,) = compare.compare_cells(comparison, baseline="more-1", bootstrap=50)
    assert (against.a, against.b) == ("objective=bt", "objective=more")
    by_length = compare.compare_cells(comparison, baseline="length", bootstrap=50)
    assert [(t.a, t.b) for t in by_length] == [("objective=bt", "length"), ("objective=more", "length")]
    assert by_length[0].differences["accuracy_all"].difference == pytest.approx(7 / 12 - 1.0)
    assert math.isnan(by_length[0].differences["ece"].difference)
    with pytest.raises(PrefstudioError, match="--baseline 'nope': no such cell"):
        compare.compare_cells(comparison, baseline="nope")


def test_the_length_baseline_counts_characters_and_a_tie_half(ws):
    rows = [("alpha", "abcd", "ab"),  # longer chosen: right
            ("alpha", "a", "abc"),  # shorter chosen: wrong
            ("beta", "xy", "zw"),  # equal length: a tie, half right
            ("beta", "héllo", "hello!")]  # 5 characters against 6 (but 6 bytes each): wrong, not a tie
    for i, (source, chosen, rejected) in enumerate(rows, start=1):
        ws.con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                       "VALUES (?, ?, 'test', 'p', ?, ?, ?)", [i, source, chosen, rejected, f"h{i}"])
    store_model(ws.con, "job-a", [1, 2, 3, 4], [1.0, 1.0, 1.0, 1.0], name="a")
    store_model(ws.con, "job-b", [1, 2, 3], [1.0, 1.0, 1.0], name="b")  # pair 4 is not common: left out
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    assert comparison.length.rewards.d.tolist() == [2.0, -2.0, 0.0]
    full = compare.compare(ws.con, predictions.scored_models(ws.con, "test")[:1])
    assert full.length.rewards.d.tolist() == [2.0, -2.0, 0.0, -1.0]
    # alpha 1 of 2; beta a tie and a wrong → ½ of 2; avg (50 + 25) / 2; all 1.5 of 4
    assert full.length_row() == ["length", "50.0", "25.0", "37.5", "37.5", "1", "—", "4"]
    assert full.table()[-1] == full.length_row()
    assert compare.compare(ws.con, []).length is None


def test_the_accuracy_chart_draws_each_mean_with_its_whisker():
    from prefstudio.evaluate.charts import Whisker, accuracy_whiskers

    chart = accuracy_whiskers([Whisker("bt (3)", 0.6, 0.1), Whisker("more (3)", 0.75, 0.05),
                               Whisker("length", 0.8, math.nan)], 40, 8)
    # 19 columns from 50 % to 100 %: column round((x − 0.5) / 0.5 · 18); chance ┆ at 50 %, under the whiskers
    assert chart.lines == ["bt (3)   ├───●──┤            60.0 ± 10.0",
                           "more (3) ┆      ├─●─┤         75.0 ± 5.0",
                           "length   ┆          ●               80.0",
                           "         50              100"]
    assert chart.owners[1][9:21] == [None] * 7 + [1] * 5  # each whisker is its row's series: its colour
    low = accuracy_whiskers([Whisker("a", 0.3, 0.05)], 40, 4).lines[-1]
    assert low.split() == ["20", "50", "100"]  # below chance, the axis starts lower
