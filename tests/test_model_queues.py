"""Queues that learn, on hand-written predictions: each queue's exact order, its count and the reason it gives."""

import pytest

from prefstudio import labels
from prefstudio.evaluate import model_queues as mq
from prefstudio.labels import QueueFilter, add_label, add_skip, next_in_queue

# d = r_chosen − r_rejected of pairs 1..8 (the test split), per model; old-run, then j2, then new-run (the latest)
D = {
    "j1": [1.0, 0.3, 1.5, -0.2, -4.0, 0.8, -0.1, -3.6],
    "j2": [0.9, 0.2, 1.2, 0.3, -5.0, -0.5, 0.4, -3.5],
    "j3": [0.5, -0.05, 2.0, 0.1, -3.0, 1.0, 0.2, -0.4],
}


def judge(con, pair_id: int, who: str, outcome: str, level: int | None = None, flip: bool = False) -> None:
    con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip) "
                "VALUES (?, 'llm', ?, ?, ?, ?)", [pair_id, who, outcome, level, flip])


@pytest.fixture
def ws8(ws):
    con = ws.con
    for pid in range(1, 10):  # odd ids are source 'a'; pair 9 (train) has no prediction
        con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                    "VALUES (?, ?, ?, 'p', 'c', 'r', ?)", [pid, "ab"[1 - pid % 2], "test" if pid < 9 else "train",
                                                           f"h{pid}"])
    for k, (job, name) in enumerate([("j1", "old-run"), ("j2", ""), ("j3", "new-run")]):
        con.execute("INSERT INTO jobs (id, kind, name, state, created_at) VALUES (?, 'train', ?, 'done', "
                    "TIMESTAMP '2025-01-01' + INTERVAL (?) HOUR)", [job, name, k])
    rows = [(job, "step-20", pid, d, 0.0) for job, ds in D.items() for pid, d in zip(range(1, 9), ds)]
    rows += [("j3", "step-5", pid, 9.0, 0.0) for pid in range(1, 9)]  # an older checkpoint: not the model
    rows += [("raw:tiny", "raw", pid, -5.0, 0.0) for pid in range(1, 9)]  # an untrained backbone: not a model
    con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?)", rows)
    judge(con, 1, "gpt", "inconsistent")
    judge(con, 1, "gpt", "label", 1)  # its latest word on pair 1 is a label
    judge(con, 3, "gpt", "inconsistent")
    judge(con, 4, "gpt", "label", 1, flip=True)
    judge(con, 6, "gpt", "label", 0)
    judge(con, 7, "claude", "inconsistent")
    margins = ws.config.margins
    add_label(con, 4, "ana", 2, False, margins)  # against gpt's side: a human–judge flip
    add_skip(con, 8, "ana")
    add_label(con, 6, "bob", 1, True, margins)  # gpt said level 0 (no side): no flip
    return ws


def page(ws, queue, **kw):
    return mq.queue_page(ws.con, "ana", queue, **kw)


def test_each_queue_in_its_order(ws8):
    assert [m.name for m in mq.scored_models(ws8.con)] == ["old-run", "j2", "new-run"]
    assert [m.checkpoint for m in mq.scored_models(ws8.con)] == ["step-20"] * 3
    # smallest |d| of new-run first; ana's decided pairs 4 and 8 are out
    assert page(ws8, "uncertain") == [2, 7, 1, 6, 3, 5]
    assert mq.queue_page(ws8.con, "zed", "uncertain") == [2, 4, 7, 8, 1, 6, 3, 5]
    assert page(ws8, "uncertain", source="a") == [7, 1, 3, 5]
    # opposite signs, the strongest disagreement (the weaker extreme) first: 6 (0.5), 4 (0.2), 7 (0.1), 2 (0.05)
    assert mq.queue_page(ws8.con, "zed", "models_disagree") == [6, 4, 7, 2]
    assert page(ws8, "models_disagree") == [6, 7, 2]
    assert page(ws8, "judge_inconsistent") == [3, 7]
    assert page(ws8, "human_judge_flips") == [4]  # a review queue: ana's own label keeps it there
    assert page(ws8, "agreed_outliers") == [5]  # below Tukey's low fence of all three models
    assert page(ws8, "likely_noise") == [5]  # new-run: d −3.0 < −2 · 1.344
    assert mq.queue_sizes(ws8.con, "ana") == {"uncertain": 6, "models_disagree": 3, "judge_inconsistent": 2,
                                              "human_judge_flips": 1, "agreed_outliers": 1, "likely_noise": 1}
    assert mq.queue_sizes(ws8.con, "ana", source="b") == {
        "uncertain": 2, "models_disagree": 2, "judge_inconsistent": 0, "human_judge_flips": 1,
        "agreed_outliers": 0, "likely_noise": 0}


def test_agreed_outliers_need_two_models(ws8):
    ws8.con.execute("DELETE FROM predictions WHERE job_id IN ('j1', 'j2')")
    assert page(ws8, "agreed_outliers") == []
    assert page(ws8, "models_disagree") == []
    assert page(ws8, "likely_noise") == [5]


def test_the_walk_goes_on_from_a_pair_by_its_key(ws8):
    con, uncertain = ws8.con, QueueFilter("uncertain")
    assert next_in_queue(con, "ana", uncertain, after=0) == 2
    assert next_in_queue(con, "ana", uncertain, after=7) == 1
    assert next_in_queue(con, "ana", uncertain, after=8) == 1  # 8 was decided: it keeps its place in the order
    assert next_in_queue(con, "ana", uncertain, after=7, including=True) == 7
    assert next_in_queue(con, "ana", uncertain, after=5) == 2  # past the end: back to the start
    assert next_in_queue(con, "ana", QueueFilter("uncertain", split="train"), after=0) is None
    assert next_in_queue(con, "ana", QueueFilter("unlabelled"), after=3, including=True) == 3


def test_reasons_say_why_and_hide_signs_in_blind_mode(ws8):
    con = ws8.con
    why = mq.reason(con, "uncertain", 7)
    assert why.text() == "latest model new-run d = +0.20 (3rd most uncertain of 8)"
    assert why.text("A") == "latest model new-run |d| = 0.20 (3rd most uncertain of 8)"
    assert mq.reason(con, "uncertain", 7, source="a").text() == (
        "latest model new-run d = +0.20 (1st most uncertain of 4)")
    assert mq.reason(con, "models_disagree", 6).text() == (
        "models disagree: old-run d = +0.80 · j2 d = -0.50 · new-run d = +1.00")
    assert mq.reason(con, "models_disagree", 6).text("B") == (
        "models disagree: 2 prefer one response, 1 the other (signs hidden in blind mode)")
    assert mq.reason(con, "judge_inconsistent", 7).text() == (
        "judge claude: inconsistent, its verdict changed when the two responses swapped places")
    flips = mq.reason(con, "human_judge_flips", 4)
    assert flips.text() == ("a human and a judge disagree on the better response: human ana: 2 · More effective, "
                            "left better · judge gpt: 1 · Slightly better, right better")
    assert flips.text("B").endswith("human ana: 2 · More effective, B better · judge gpt: 1 · Slightly better, A better")
    assert mq.reason(con, "agreed_outliers", 5).text() == (
        "3 models put it far below their usual d (Tukey's low fence): old-run d = -4.00 · j2 d = -5.00 · "
        "new-run d = -3.00")
    assert mq.reason(con, "likely_noise", 5).text() == (
        "latest model new-run d = -3.00, 2.2 std (std 1.34) against the dataset's order: the label may be noise")
    assert mq.reason(con, "likely_noise", 5).text("A") == (
        "latest model new-run |d| = 3.00, 2.2 std (std 1.34) against the dataset's order: the label may be noise")


def test_pre_labels_name_judges_and_models_and_hide_models_in_blind_mode(ws8):
    con = ws8.con
    con.execute("UPDATE annotations SET expected_level = 1.4 WHERE pair_id = 4 AND annotator_kind = 'llm'")
    said = mq.opinions(con, 4)
    assert said.text(None) == ("judge gpt: 1 · Slightly better, right better (expected 1.4)  │  models "
                               "old-run d = -0.20 (right) · j2 d = +0.30 (left) · new-run d = +0.10 (left)")
    assert said.text("B") == "judge gpt: 1 · Slightly better, A better (expected 1.4)  │  models hidden in blind mode"
    assert mq.opinions(con, 9).text(None) == "no judge label  │  no scored model"
    assert mq.opinions(con, 3).text(None).startswith("judge gpt: inconsistent  │  models old-run d = +1.50 (left)")


def test_every_queue_is_a_labels_queue():
    assert set(mq.LEARNED_QUEUES) | set(labels.ID_ORDERED) == set(labels.QUEUES)
