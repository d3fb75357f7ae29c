"""Calibration by margin level: hand-computed figures, and the label that counts on each pair."""

import math

import numpy as np
import pytest

from prefstudio.evaluate import calibration, metrics
from prefstudio.evaluate.predictions import Rewards
from tests.eval_helpers import add_pairs

ANNOTATORS = {"human": "ana", "llm": "gpt-judge", "data": "alpaca-eval/preference"}


def add_labels(con, labelled: dict[int, tuple[str, int, bool]], outcome: str = "label") -> None:
    """Labels as the label screen, the judge and an import store them: pair id -> (kind, level, flip)."""
    con.executemany("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(pid, kind, ANNOTATORS[kind], outcome, level, flip)
                     for pid, (kind, level, flip) in labelled.items()])


# d as stored (r_chosen − r_rejected), the label's level and direction; flipped pairs enter with −d
D = np.array([0.2, -0.4, 1.0, 0.5, -2.0, 3.0, 1.0])
LEVEL = np.array([0, 0, 1, 1, 3, 3, 3])
FLIP = np.array([False, False, False, True, True, False, False])
# directed d: [0.2, -0.4, 1.0, -0.5, 2.0, 3.0, 1.0]


def test_mean_d_accuracy_and_ece_per_level_and_rho_with_ties_by_hand():
    figures = calibration.margin_figures(D, LEVEL, FLIP, ece_bins=10)
    assert [(r.level, r.n, r.flipped) for r in figures.levels] == [(0, 2, 0), (1, 2, 1), (3, 3, 1)]  # no level 2
    assert [r.mean_d for r in figures.levels] == pytest.approx([-0.1, 0.25, 2.0])
    assert [r.accuracy for r in figures.levels] == [0.5, 0.5, 1.0]
    sigma = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # level 0, directed [0.2, -0.4]: (σ(.2), 1) and (σ(.4), 0) share bin [.5, .6), (σ(-.2), 0) and (σ(-.4), 1)
    # bin [.4, .5): each bin is off by σ(.2) + σ(.4) − 1, over 2n = 4 entries
    assert figures.levels[0].ece == pytest.approx((sigma(0.2) + sigma(0.4) - 1) / 2)
    assert figures.levels[0].ece == pytest.approx(0.074261, abs=1e-6)
    # level 3, directed [2, 3, 1]: every entry in a bin of its own, so ECE is the mean of 1 − σ(d)
    assert figures.levels[2].ece == pytest.approx((sigma(-2) + sigma(-3) + sigma(-1)) / 3)
    assert figures.levels[2].ece == pytest.approx(0.145190, abs=1e-6)
    assert figures.levels[2].ece == pytest.approx(metrics.ece(np.array([2.0, 3.0, 1.0]), 10))
    # every level together
    assert (figures.overall.level, figures.overall.n, figures.overall.flipped) == (None, 7, 2)
    assert figures.overall.mean_d == pytest.approx(6.3 / 7)
    assert figures.overall.name == "all levels" and figures.levels[2].name == "3 · Distinctly superior"
    # ρ by hand: level ranks [1.5, 1.5, 3.5, 3.5, 6, 6, 6]; directed d ranks [3, 2, 4.5, 1, 6, 7, 4.5] (1.0 twice);
    # centred at 4, Σ xy = 19.75, Σ x² = 25, Σ y² = 27.5
    assert figures.spearman == pytest.approx(19.75 / math.sqrt(25 * 27.5))
    assert figures.spearman == pytest.approx(0.753235, abs=1e-6)


def test_flips_enter_with_the_labels_direction():
    """A model that agrees with the labellers everywhere, flipped pairs included, scores full marks."""
    agreeing = np.array([1.0, -2.0, 3.0])  # the middle pair's label calls the rejected response better
    figures = calibration.margin_figures(agreeing, [1, 2, 3], [False, True, False])
    assert [r.mean_d for r in figures.levels] == [1.0, 2.0, 3.0]
    assert figures.overall.accuracy == 1.0 and figures.spearman == 1.0


def test_ranks_and_rho_at_the_edges():
    assert calibration.average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert calibration.average_ranks(np.array([])).tolist() == []
    assert math.isnan(calibration.spearman(np.array([2, 2, 2]), np.array([1.0, 2.0, 3.0])))  # one level only
    assert math.isnan(calibration.spearman(np.array([1]), np.array([1.0])))
    assert calibration.spearman(np.array([0, 1, 2, 3]), np.array([-4.0, -1.0, 0.0, 9.0])) == pytest.approx(1.0)


def test_the_label_that_counts_on_each_pair_and_the_figures_per_source(ws):
    ids = add_pairs(ws.con, {"alpha": 4, "beta": 3})
    a, b = ids["alpha"], ids["beta"]
    add_labels(ws.con, {a[0]: ("llm", 1, False), a[1]: ("data", 3, False), a[2]: ("human", 2, True),
                        b[0]: ("data", 0, False)})
    add_labels(ws.con, {a[0]: ("human", 3, False), b[0]: ("llm", 2, False)})  # human over judge over data
    add_labels(ws.con, {b[1]: ("llm", None, False)}, outcome="inconsistent")  # a judge at odds: level 0
    ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome) "
                   "VALUES (?, 'human', 'ana', 'skip')", [a[3]])  # a skip is no label
    pair_ids = np.array(a + b)
    labels = calibration.load_labels(ws.con, pair_ids[1:])  # a[0] not asked about: not counted
    assert labels.level.tolist() == [3, 2, -1, 2, 0, -1]
    assert labels.flip.tolist() == [False, True, False, False, False, False]
    assert labels.kinds == {"data": 1, "human": 1, "llm": 2} and labels.n == 4
    assert calibration.kinds_text(labels.kinds) == "1 human, 2 judge, 1 data"

    labels = calibration.load_labels(ws.con, pair_ids)
    d = np.array([0.5, 1.0, 2.0, 9.0, 4.0, -1.0, 9.0])  # a[3] and b[2] have no label: left out
    rewards = Rewards(pair_ids, np.array([1, 1, 1, 1, 0, 0, 0]), ["beta", "alpha"], d, np.zeros(7))
    figures = calibration.by_source(rewards, labels)
    assert list(figures) == ["alpha", "beta", metrics.ALL]
    alpha = figures["alpha"]  # levels 3, 3, 2 (flipped): directed d 0.5, 1.0, −2.0
    assert [(r.level, r.n, r.mean_d) for r in alpha.levels] == [(2, 1, -2.0), (3, 2, 0.75)]
    assert alpha.spearman == pytest.approx(math.sqrt(3) / 2)  # level ranks (2.5, 2.5, 1) against d ranks (2, 3, 1)
    beta = figures["beta"]  # levels 2 (the judge's, over the data's 0) and 0 (inconsistent)
    assert [(r.level, r.mean_d) for r in beta.levels] == [(0, -1.0), (2, 4.0)] and beta.spearman == 1.0
    assert figures[metrics.ALL].n == 5
    assert calibration.by_source(rewards, calibration.load_labels(ws.con, pair_ids[[3, 6]])) == {}
    assert calibration.no_labels_line("test") == \
        "no margin labels on the test pairs; label some (F2) or judge them (F3)"


def test_the_bar_of_mean_d_shares_one_scale():
    assert calibration.mean_bar(2.0, 2.0, 4) == "    │████"
    assert calibration.mean_bar(-1.0, 2.0, 4) == "  ██│    "
    assert calibration.mean_bar(0.0, 0.0, 2) == "  │  "
    assert calibration.mean_bar(float("nan"), 2.0, 4) == ""
