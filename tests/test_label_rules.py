"""The labelling rules the screen relies on, without a screen: blind order, flips, sides, the queue walk."""

import pytest

from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.labels import (QueueFilter, add_label, add_skip, better_side, chosen_shown_as, next_in_queue,
                               signed_margin, stored_flip)


@pytest.mark.parametrize(
    ("level", "right_better", "blind_side", "flip"),
    [
        (2, False, None, False), (2, True, None, True),  # normal: chosen on the left
        (2, False, "A", False), (2, True, "A", True),
        (2, False, "B", True), (2, True, "B", False),
        (0, True, None, False), (0, False, "B", False),  # level 0 has no direction
    ],
)
def test_stored_flip(level, right_better, blind_side, flip):
    assert stored_flip(level, right_better, blind_side) is flip


@pytest.mark.parametrize("blind_side", [None, "A", "B"])
@pytest.mark.parametrize("right_better", [False, True])
def test_better_side_reads_back_what_was_said(right_better, blind_side):
    said = ("B" if right_better else "A") if blind_side else ("right" if right_better else "left")
    assert better_side(stored_flip(2, right_better, blind_side), blind_side) == said


def test_blind_order_is_fixed_by_seed_and_pair():
    sides = [chosen_shown_as(3, pair_id) for pair_id in range(1, 201)]
    assert sides == [chosen_shown_as(3, pair_id) for pair_id in range(1, 201)]
    assert 60 < sides.count("A") < 140
    assert sides != [chosen_shown_as(4, pair_id) for pair_id in range(1, 201)]


def test_signed_margin_is_negative_for_a_flip(ws):
    margins = ws.config.margins  # the small scale: 0, 1/3, 2/3, 1
    assert signed_margin(margins, 3, False) == 1.0
    assert signed_margin(margins, 3, True) == -1.0
    assert signed_margin(margins, 0, True) == 0.0


@pytest.fixture
def ws5(ws):
    records = [RawPair(f"p{i}", f"c{i}", f"r{i}", f"line {i}", source="a" if i % 2 else "b", split="train")
               for i in range(1, 6)]
    import_pairs(ws, RecordsReader("t", "test", "t", records))
    return ws


def test_next_in_queue_walks_on_and_wraps_round(ws5):
    con, m = ws5.con, ws5.config.margins
    unlabelled = QueueFilter()
    assert next_in_queue(con, "ana", unlabelled, after=0) == 1
    add_label(con, 1, "ana", 2, False, m)
    add_skip(con, 2, "ana")
    assert next_in_queue(con, "ana", unlabelled, after=1) == 3
    assert next_in_queue(con, "ana", unlabelled, after=5) == 3  # past the end: back to the queue's start
    assert next_in_queue(con, "ana", QueueFilter(source="b"), after=0) == 4  # pair 2 (b) was skipped
    assert next_in_queue(con, "ana", QueueFilter("skipped"), after=0) == 2
    assert next_in_queue(con, "ana", QueueFilter("mine", source="b"), after=0) is None
