import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from prefstudio.agreement import compare, judge_consistency, level_distribution, quadratic_kappa
from prefstudio.errors import PrefstudioError
from prefstudio.export import export_pairs
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.labels import add_label, add_skip, queue_counts, queue_page, recent_decisions, resolved_labels, undo


@pytest.fixture
def ws6(ws):
    records = [RawPair(f"p{i}", f"c{i}", f"r{i}", f"line {i}", source="a" if i < 4 else "b",
                       split="test" if i == 5 else "train") for i in range(1, 7)]
    import_pairs(ws, RecordsReader("t", "test", "t", records))
    return ws


def judge(ws, pair_id, outcome, level=None, flip=False, model="gpt-4o"):
    ws.con.execute(
        "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, prompt_version) "
        "VALUES (?, 'llm', ?, ?, ?, ?, 'general@1#x')", [pair_id, model, outcome, level, flip])


def test_queues_skip_undo_and_counts(ws6):
    m = ws6.config.margins
    assert queue_page(ws6.con, "ana", "unlabelled") == [1, 2, 3, 4, 5, 6]
    first = add_label(ws6.con, 1, "ana", 3, False, m)
    add_label(ws6.con, 2, "ana", 1, True, m)
    add_skip(ws6.con, 3, "ana")
    add_label(ws6.con, 4, "bo", 2, False, m)  # someone else's label does not take it off ana's queue
    assert queue_page(ws6.con, "ana", "unlabelled") == [4, 5, 6]
    assert queue_page(ws6.con, "ana", "mine") == [1, 2]
    assert queue_page(ws6.con, "ana", "skipped") == [3]
    assert queue_page(ws6.con, "ana", "unlabelled", source="b", split="train") == [4, 6]
    assert queue_page(ws6.con, "ana", "unlabelled", after_id=4, limit=1) == [5]
    assert queue_counts(ws6.con, "ana") == {"done": 2, "skipped": 1, "left": 3, "total": 6}
    # a skipped pair labelled later leaves the skipped queue; the latest decision counts
    add_label(ws6.con, 3, "ana", 0, False, m)
    assert queue_page(ws6.con, "ana", "skipped") == []
    assert [d.pair_id for d in recent_decisions(ws6.con, "ana")] == [3, 3, 2, 1]
    undo(ws6.con, recent_decisions(ws6.con, "ana")[0].annotation_id)
    assert queue_page(ws6.con, "ana", "skipped") == [3]
    # margins stored at the time: signed, from the small scale
    rows = ws6.con.execute("SELECT pair_id, margin FROM annotations WHERE outcome='label' AND annotator_id='ana' ORDER BY id").fetchall()
    assert rows == [(1, 1.0), (2, pytest.approx(-1 / 3))]
    assert first == 1


def test_resolution_rule_human_then_judge(ws6):
    m = ws6.config.margins
    judge(ws6, 1, "label", 2)
    add_label(ws6.con, 1, "ana", 1, False, m)       # human beats judge
    judge(ws6, 2, "label", 3)
    judge(ws6, 2, "inconsistent", 0)               # latest judge row counts: inconsistent = level 0
    judge(ws6, 3, "parse_error")                   # not a label
    add_label(ws6.con, 4, "ana", 3, False, m)
    add_label(ws6.con, 4, "bo", 2, True, m)         # latest human beats earlier human
    add_skip(ws6.con, 5, "ana")                    # a skip is not a label
    assert resolved_labels(ws6.con) == {1: (1, False), 2: (0, False), 4: (2, True)}
    assert queue_page(ws6.con, "zed", "disagreements") == [1, 4]


def test_quadratic_kappa_by_hand():
    # By hand: n = 10, off-diagonal cells (0,1), (2,0), (3,2) give observed weighted disagreement
    # (1 + 4 + 1) / 9; the expected one is sum_ij rows_i * cols_j * (i - j)^2 / 9 / n.
    confusion = np.array([[2, 1, 0, 0], [0, 3, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]])
    rows, cols = confusion.sum(1), confusion.sum(0)
    assert list(rows) == [3, 3, 2, 2] and list(cols) == [3, 4, 2, 1]
    observed = (1 * 1 + 1 * 4 + 1 * 1) / 9
    expected = sum(rows[i] * cols[j] * (i - j) ** 2 / 9 for i in range(4) for j in range(4)) / 10
    assert expected == pytest.approx((3 * (4 * 1 + 2 * 4 + 1 * 9) + 3 * (3 * 1 + 2 * 1 + 1 * 4)
                                      + 2 * (3 * 4 + 4 * 1 + 1 * 1) + 2 * (3 * 9 + 4 * 4 + 2 * 1)) / 90)
    assert quadratic_kappa(confusion) == pytest.approx(1 - observed / expected)
    assert quadratic_kappa(np.eye(4) * 5) == 1.0
    # complete reversal on a 2-level use of the scale gives -1
    assert quadratic_kappa(np.array([[0, 0, 0, 5], [0, 0, 0, 0], [0, 0, 0, 0], [5, 0, 0, 0]])) == pytest.approx(-1.0)


def test_compare_two_annotators_and_judge_consistency(ws6):
    m = ws6.config.margins
    for pid, (la, lb, fa, fb) in {1: (3, 3, False, False), 2: (2, 1, False, False), 3: (0, 0, False, True),
                                  4: (1, 3, True, True)}.items():
        add_label(ws6.con, pid, "ana", la, fa, m)
        judge(ws6, pid, "label", lb, fb)
    judge(ws6, 5, "inconsistent", 0)
    add_label(ws6.con, 6, "ana", 2, False, m)  # only ana: not in the comparison
    result = compare(ws6.con, "human:ana", "llm:gpt-4o")
    assert result.n == 4
    assert result.confusion.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert result.exact == 0.5 and result.flip_rate_a == 0.25 and result.flip_rate_b == 0.5
    assert result.flip_disagreements == 1
    assert result.kappa == pytest.approx(quadratic_kappa(result.confusion))
    assert judge_consistency(ws6.con) == [("gpt-4o", "general@1#x", 5, 1, 0.2)]
    assert level_distribution(ws6.con, "human:ana") == {"a": [1, 0, 1, 1], "b": [0, 1, 1, 0]}


def test_export_margins_in_trl_layout(ws6, tmp_path):
    m = ws6.config.margins
    add_label(ws6.con, 1, "ana", 3, False, m)
    add_label(ws6.con, 2, "ana", 1, True, m)
    judge(ws6, 3, "inconsistent", 0)
    n, fmt = export_pairs(ws6, tmp_path / "out.parquet")
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert (n, fmt) == (6, "parquet")
    assert list(rows[0])[:5] == ["prompt", "chosen", "rejected", "margin", "source"]
    assert [(r["chosen"], round(r["margin"], 4)) for r in rows[:4]] == [("c1", 1.0), ("c2", -0.3333), ("c3", 0.0), ("c4", 0.0)]
    # swap flips, drop unlabelled, the large scale from the config
    ws6.config.margins.scale = "large"
    n, _ = export_pairs(ws6, tmp_path / "out.jsonl", flips="swap", unlabelled="drop")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in rows] == [("c1", "r1", 3.0), ("r2", "c2", 1.0), ("c3", "r3", 0.0)]
    n, fmt = export_pairs(ws6, tmp_path / "hf", flips="drop")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert fmt == "hf" and sorted(loaded) == ["test", "train"] and loaded["test"]["prompt"] == ["p5"]
    assert "p2" not in loaded["train"]["prompt"]
    with pytest.raises(PrefstudioError, match="already exists"):
        export_pairs(ws6, tmp_path / "out.parquet")


def data_label(ws, pair_id, level, value, flip=False, who="alpaca-eval/weighted_alpaca_eval_gpt4_turbo"):
    ws.con.execute(
        "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, value) "
        "VALUES (?, 'data', ?, 'label', ?, ?, ?)", [pair_id, who, level, flip, value])


def test_data_labels_count_after_people_and_judges(ws6):
    m = ws6.config.margins
    data_label(ws6, 1, 3, 0.9)
    data_label(ws6, 2, 3, 0.9)
    data_label(ws6, 3, 1, 0.3, flip=True)
    judge(ws6, 1, "label", 1)                       # a judge beats the data
    add_label(ws6.con, 2, "ana", 0, False, m)       # so does a person
    judge(ws6, 2, "label", 2)
    assert resolved_labels(ws6.con) == {1: (1, False), 2: (0, False), 3: (1, True)}


def test_export_takes_a_data_label_through_the_scale_or_as_its_value(ws6, tmp_path):
    data_label(ws6, 1, 3, 0.82)
    data_label(ws6, 2, 1, 0.3, flip=True)
    judge(ws6, 3, "label", 2)
    n, _ = export_pairs(ws6, tmp_path / "levels.parquet")
    rows = pq.read_table(tmp_path / "levels.parquet").to_pylist()[:4]
    assert [(round(r["margin"], 4), r["level"], r["label_by"]) for r in rows] == [
        (1.0, 3, "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo"),
        (-0.3333, 1, "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo"),
        (0.6667, 2, "llm:gpt-4o"), (0.0, None, None)]
    ws6.config.margins.data = "value"
    export_pairs(ws6, tmp_path / "values.parquet")
    rows = pq.read_table(tmp_path / "values.parquet").to_pylist()[:4]
    assert [round(r["margin"], 4) for r in rows] == [0.82, -0.3, 0.6667, 0.0]  # a judge's label keeps the scale


def test_snapshot_trains_the_margin_objective_on_data_margins(ws6, tmp_path):
    from prefstudio.train.snapshot import write_snapshot

    data_label(ws6, 4, 2, 0.6)
    ws6.config.margins.data = "value"
    write_snapshot(ws6, tmp_path / "pairs.parquet")
    rows = {r["pair_id"]: r for r in pq.read_table(tmp_path / "pairs.parquet").to_pylist()}
    assert (rows[4]["margin"], rows[4]["level"]) == (0.6, 2) and rows[5]["margin"] == 0.0


def test_agreement_compares_data_labels_with_a_judge(ws6):
    for pair_id, (data_level, value, judge_level) in enumerate([(3, 0.95, 3), (3, 0.9, 1), (1, 0.3, 1), (0, 0.1, 0)],
                                                               start=1):
        data_label(ws6, pair_id, data_level, value)
        judge(ws6, pair_id, "label", judge_level)
    result = compare(ws6.con, "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo", "llm:gpt-4o")
    assert result.n == 4 and result.exact == 0.75
    assert result.confusion.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]]
    holder, means = result.value_by_level
    assert holder == "data:alpaca-eval/weighted_alpaca_eval_gpt4_turbo"
    assert means == [pytest.approx(0.1), pytest.approx(0.6), None, pytest.approx(0.95)]
    assert compare(ws6.con, "human:nobody", "llm:gpt-4o").value_by_level is None
