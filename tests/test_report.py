"""`prefstudio report`: the files hold the same numbers as compare() and metrics, readable back by a script."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest

from prefstudio.cli import main
from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import compare, metrics, predictions, report
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs, store_model
from tests.test_calibration import add_labels
from tests.png_helpers import assert_png

A = [1.0, 2.0, 3.0, -1.0, 0.5, -0.5]  # alpha 3 of 4 right, beta 1 of 2
B = [1.0, 1.0, 1.0, 0.0, 2.0, 2.0]  # all right but a tie in alpha
C = [1.0, 1.0, 1.0, 1.0, 1.0, 50.0]  # one pair far above the others: Tukey's only outlier
TRICKY = 'He said, "stop"\nthen, after a pause: "go on"'


def _fill(con) -> dict[str, list[int]]:
    ids = add_pairs(con, {"alpha": 4, "beta": 2})
    every = ids["alpha"] + ids["beta"]
    con.execute("UPDATE pairs SET prompt = ? WHERE id = ?", [TRICKY, every[-1]])
    store_model(con, "job-a", every, A, name="bt")
    store_model(con, "job-b", every, B, name="more")
    store_model(con, "job-c", every, C, name="wild")
    return ids


def margin_labels(ids):
    """alpha: levels 1, 2, 3 and a flipped 3; beta: one data label at level 0 and an unlabelled pair."""
    alpha, beta = ids["alpha"], ids["beta"]
    return {alpha[0]: ("human", 1, False), alpha[1]: ("human", 2, False), alpha[2]: ("llm", 3, False),
            alpha[3]: ("human", 3, True), beta[0]: ("data", 0, False)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One report, read by many tests (drawing the plots is the slow part): tests only read it."""
    folder = tmp_path_factory.mktemp("report")
    with Workspace.init(folder / "ws") as ws:
        ids = _fill(ws.con)
        add_labels(ws.con, margin_labels(ids))
        models = predictions.scored_models(ws.con, "test")
        paths = report.write_report(ws.con, models, folder / "out", ece_bins=5)
        yield ws, ids, models, paths, folder / "out"


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _value(cell: str) -> float:
    return math.nan if cell == "" else float(cell)


def test_every_file_is_written_and_nothing_else(written):
    *_, paths, out = written
    assert [p.name for p in paths] == list(report.FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(report.FILES)


def test_comparison_csv_is_the_papers_table_in_numbers(written):
    *_, out = written
    rows = {row["job_id"]: row for row in _rows(out / "comparison.csv")}
    assert list(rows["job-a"]) == ["model", "job_id", "checkpoint", "split", "cell", "accuracy_alpha", "accuracy_beta",
                                   "accuracy_avg", "accuracy_all", "ties_alpha", "ties_beta", "ties_all", "ece_5",
                                   "n"]
    a, b = rows["job-a"], rows["job-b"]
    assert (a["model"], a["checkpoint"], a["split"], a["n"]) == ("bt (step-10)", "step-10", "test", "6")
    # by hand: avg is the mean of 75% and 50%, not the pooled 4 of 6
    assert [float(a[k]) for k in ("accuracy_alpha", "accuracy_beta", "accuracy_avg")] == [0.75, 0.5, 0.625]
    assert float(a["accuracy_all"]) == pytest.approx(4 / 6)
    assert float(a["ece_5"]) == pytest.approx(metrics.ece(np.array(A), 5))
    # B's tie counts half: alpha 3.5 of 4, beta 2 of 2, avg their mean, all 5.5 of 6
    assert [float(b[k]) for k in ("accuracy_alpha", "accuracy_beta", "accuracy_avg")] == [0.875, 1.0, 0.9375]
    assert float(b["accuracy_all"]) == pytest.approx(5.5 / 6)
    assert [b[k] for k in ("ties_alpha", "ties_beta", "ties_all")] == ["1", "0", "1"]
    assert [a[k] for k in ("ties_alpha", "ties_beta", "ties_all")] == ["0", "0", "0"]
    # the length baseline's row: its accuracies, no ECE (an empty cell)
    length = rows["length"]
    assert (length["model"], length["checkpoint"], length["accuracy_all"], length["ece_5"]) == \
        ("length (characters)", "characters", "1.0", "")


def test_metrics_csv_holds_every_figure_of_every_source(written):
    ws, _, models, _, out = written
    comparison = compare.compare(ws.con, models, ece_bins=5)
    every_row = _rows(out / "metrics.csv")
    rows = [row for row in every_row if row["job_id"] != "length"]
    assert {(r["source"], r["metric"], r["value"]) for r in every_row if r["job_id"] == "length"} == {
        (source, name, value) for source, n in (("alpha", "4"), ("beta", "2"), (metrics.ALL, "6"))
        for name, value in (("n", n), ("accuracy", "1.0"), ("ties", "0"))}
    expected = {}
    for result in comparison.results:
        for source, summary in result.summaries.items():
            for name, value in predictions.metric_values(summary).items():
                expected[(result.model.job_id, source, name)] = value
    assert len(rows) == len(expected) == 3 * 3 * len(predictions.METRIC_NAMES)
    for row in rows:
        want = expected[(row["job_id"], row["source"], row["metric"])]
        got = _value(row["value"])
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want), row
    by_key = {(r["job_id"], r["source"], r["metric"]): r["value"] for r in rows}
    assert by_key[("job-c", metrics.ALL, "outliers_positive")] == "1"
    assert by_key[("job-c", metrics.ALL, "outliers_positive_mean")] == "50.0"
    assert by_key[("job-c", metrics.ALL, "outliers_negative_mean")] == ""  # none: empty, not "nan"
    assert [by_key[("job-b", source, "ties")] for source in ("alpha", "beta", metrics.ALL)] == ["1", "0", "1"]
    assert by_key[("job-b", "alpha", "accuracy")] == "0.875"


def test_reliability_csv_bins_add_up_to_the_pairs(written):
    *_, out = written
    rows = _rows(out / "reliability.csv")
    assert len(rows) == 3 * 3 * metrics.DEFAULT_RELIABILITY_BINS
    a_all = [r for r in rows if r["job_id"] == "job-a" and r["source"] == metrics.ALL]
    assert sum(int(r["count"]) for r in a_all) == 6
    reference = metrics.reliability(np.array(A))
    assert [(float(r["lower"]), float(r["upper"]), int(r["count"])) for r in a_all] == \
        [(b.lower, b.upper, b.count) for b in reference]
    filled = [(r, b) for r, b in zip(a_all, reference) if b.count]
    assert filled and all(float(r["accuracy"]) == pytest.approx(b.accuracy) for r, b in filled)


def test_outliers_csv_keeps_user_text_with_commas_quotes_and_newlines(written):
    _, ids, _, _, out = written
    rows = _rows(out / "outliers.csv")
    # by hand: B's alpha [1, 1, 1, 0] has quartiles 0.75 and 1, so 0 lies below 0.75 - 1.5 * 0.25; C's 50 above 1
    assert [(r["job_id"], r["among"], r["pair_id"], r["side"]) for r in rows] == \
        [("job-b", "alpha", str(ids["alpha"][3]), "under"), ("job-c", metrics.ALL, str(ids["beta"][-1]), "over")]
    row = rows[1]
    assert row["prompt"] == TRICKY and row["source"] == "beta" and float(row["d"]) == 50.0
    assert row["chosen"] == "good answer 1" and row["rejected"] == "bad answer 1"


def test_margins_csv_and_markdown_hold_the_calibration_by_margin_level(written):
    *_, out = written
    rows = _rows(out / "margins.csv")
    a = {(r["source"], r["level"]): r for r in rows if r["job_id"] == "job-a"}
    # A directed by the labels: alpha [1, 2, 3, 1] (its −1 is flipped), beta [0.5] (level 0), beta's −0.5 unlabelled
    assert list(a) == [("alpha", "1"), ("alpha", "2"), ("alpha", "3"), ("alpha", "all"), ("beta", "0"),
                       ("beta", "all"), (metrics.ALL, "0"), (metrics.ALL, "1"), (metrics.ALL, "2"),
                       (metrics.ALL, "3"), (metrics.ALL, "all")]
    three = a[(metrics.ALL, "3")]
    assert (three["level_name"], three["pairs"], three["flipped"], float(three["mean_d"]), float(three["accuracy"])) \
        == ("3 · Distinctly superior", "2", "1", 2.0, 1.0)
    assert float(three["ece_5"]) == pytest.approx(metrics.ece(np.array([3.0, 1.0]), 5)) and three["spearman"] == ""
    every = a[(metrics.ALL, "all")]
    assert (every["pairs"], float(every["mean_d"])) == ("5", 1.5)
    # ρ by hand: level ranks [2, 3, 4.5, 4.5, 1], d ranks [2.5, 4, 5, 2.5, 1]; Σ xy 6.75, Σ x² = Σ y² = 9.5
    assert float(every["spearman"]) == pytest.approx(6.75 / 9.5)
    assert float(a[("alpha", "all")]["spearman"]) == pytest.approx(1.75 / 4.5)
    assert a[("beta", "all")]["spearman"] == ""  # one labelled pair: no ρ
    assert {r["job_id"] for r in rows} == {"job-a", "job-b", "job-c"}
    text = (out / "report.md").read_text(encoding="utf-8")
    section = text[text.index("## Calibration by margin level"):text.index("## Outliers")]
    assert "The 5 of 6 pairs with a margin label (the label that counts: 3 human, 1 judge, 1 data)" in section
    assert "| source | level | pairs | flipped | mean d | accuracy % | ECE@5 | ρ(level, d) |" in section
    bt = section[section.index("### bt (step-10)"):section.index("### more (step-10)")]
    assert f"| all | 3 · Distinctly superior | 2 | 1 | +2.000 | 100.0 | {ece_text(3.0, 1.0)} |  |" in bt
    assert "| all | all levels | 5 | 1 | +1.500 | 100.0 |" in bt and "| +0.711 |" in bt


def ece_text(*d: float) -> str:
    return f"{metrics.ece(np.array(d), 5):.4f}"


def test_markdown_holds_the_table_the_figures_and_the_plots(written):
    *_, out = written
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| model | alpha | beta | avg | all | ties | ECE@5 | n |" in text
    assert "| bt (step-10) | 75.0 | 50.0 | 62.5 | 66.7 | 0 |" in text
    assert "| more (step-10) | 87.5 | 100.0 | 93.8 | 91.7 | 1 |" in text  # the tie counts half
    assert "a tie, d = 0, counts half" in text
    assert "6 pairs that every model has scored" in text
    for name in ("histogram.png", "reliability.png", "accuracy.png"):
        assert f"]({name})" in text
    assert "| beta | 2 | 50.0 | 0 |" in text  # bt's per-source distribution row, with its ties
    assert "| source | n | accuracy % | ties | mean |" in text
    assert "| alpha | 4 | 87.5 | 1 |" in text  # more's
    assert "He said, \"stop\" then, after a pause" in text  # the outlier's prompt on one line


def test_an_odd_ece_bin_count_gets_its_footnote_in_the_markdown(written):
    *_, out = written  # --bins 5, and ECE@5 in every per-source table
    text = (out / "report.md").read_text(encoding="utf-8")
    note = ("*Odd bin count: the middle bin pools p and 1 − p, so ECE@5 can read ≈ 0 for a model whose p stay near "
            "0.5 (docs/methods.md, \"Odd bin counts\").*")
    assert text.count(note) == 2  # under the papers' table (ECE@5) and before the per-source tables
    assert text.index("| model | alpha |") < text.index(note) < text.index("## Reward differences")


def test_two_checkpoints_of_one_job_have_their_own_colour_and_marker_in_every_png(ws):
    every = sum(add_pairs(ws.con, {"alpha": 4, "beta": 2}).values(), [])
    store_model(ws.con, "job-a", every, A, name="bt", checkpoint="step-123")
    store_model(ws.con, "job-a", every, B, checkpoint="step-100")
    store_model(ws.con, "job-b", every, C, name="more")
    comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
    labels = ["bt (step-100)", "bt (step-123)", "more (step-10)"]
    assert comparison.labels() == labels

    def legend(fig) -> dict:
        (shown,) = fig.legends
        return {text.get_text().split(",")[0]: handle for text, handle in zip(shown.texts, shown.legend_handles)}

    for fig in (report.histogram_figure(comparison, 10), report.reliability_figure(comparison)):
        lines = legend(fig)
        styles = [(tuple(lines[label].get_color()), lines[label].get_marker()) for label in labels]
        assert len({colour for colour, _ in styles}) == 3 and len({mark for _, mark in styles}) == 3
    bars = legend(report.accuracy_figure(comparison))
    assert len({tuple(bars[label].get_facecolor()) for label in labels}) == 3
    assert len({bars[label].get_hatch() for label in labels}) == 3  # told apart in greyscale too


def test_plots_are_pngs_with_something_drawn(written):
    *_, out = written
    for name in ("histogram.png", "reliability.png", "accuracy.png"):
        assert_png(out / name)


def test_left_out_pairs_are_said_and_only_common_pairs_count(ws, tmp_path):
    ids = add_pairs(ws.con, {"alpha": 5})["alpha"]
    store_model(ws.con, "old", ids[:3], [1.0, -1.0, 1.0], name="old")
    store_model(ws.con, "new", ids, [1.0, 1.0, 1.0, -1.0, -1.0], name="new")
    report.write_report(ws.con, predictions.scored_models(ws.con, "test"), tmp_path)
    assert "new (step-10): 2 pairs" in (tmp_path / "report.md").read_text()
    new = next(r for r in _rows(tmp_path / "comparison.csv") if r["job_id"] == "new")
    assert (new["n"], float(new["accuracy_all"])) == ("3", 1.0)


def test_user_errors(ws, tmp_path):
    _fill(ws.con)
    models = predictions.scored_models(ws.con, "test")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(PrefstudioError, match="not a folder"):
        report.write_report(ws.con, models, tmp_path / "a-file")
    with pytest.raises(PrefstudioError, match="histogram bins 0"):
        report.write_report(ws.con, models, tmp_path / "out", hist_bins=0)
    with pytest.raises(PrefstudioError, match="no scored pair in common"):
        report.write_report(ws.con, models, tmp_path / "out", sources=["gamma"])
    with pytest.raises(PrefstudioError, match="no model"):
        report.write_report(ws.con, [], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is made


def test_job_names_checkpoints_raw_and_all(tmp_path, capsys):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ids = _fill(ws.con)
        every = ids["alpha"] + ids["beta"]
        store_model(ws.con, "job-b", every, [-1.0] * 6, checkpoint="step-20")
        store_model(ws.con, "raw:base", every, [0.1] * 6, checkpoint="raw")
    out = tmp_path / "out"
    assert main(["report", str(path), "job-b", "job-b:step-10", "raw:base", "job-b@step-20", "--out", str(out),
                 "--source", "alpha"]) == 0
    rows = _rows(out / "comparison.csv")
    assert [(r["job_id"], r["checkpoint"], r["accuracy_all"]) for r in rows] == \
        [("job-b", "step-20", "0.0"), ("job-b", "step-10", "0.875"), ("raw:base", "raw", "1.0"),
         ("length", "characters", "1.0")]
    assert "accuracy_beta" not in rows[0] and "ties_beta" not in rows[0]
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split()[:6] == ["model", "alpha", "avg", "all", "ties", "ECE@10"]
    assert not any("odd bin count" in line for line in printed)
    assert "more (step-20)" in printed[2]
    assert printed[3].split()[:6] == ["more", "(step-10)", "87.5", "87.5", "87.5", "1"]  # alpha's tie, half right
    assert main(["report", str(path), "all", "--out", str(out)]) == 0
    assert [(r["job_id"], r["checkpoint"]) for r in _rows(out / "comparison.csv")] == \
        [("raw:base", "raw"), ("job-a", "step-10"), ("job-b", "step-20"), ("job-c", "step-10"),
         ("length", "characters")]
    capsys.readouterr()
    assert main(["report", str(path), "job-a", "--bins", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split()[-2] == "ECE@5"
    assert printed[-4] == ("odd bin count: the middle bin pools p and 1 − p, so ECE@5 can read ≈ 0 for a model "
                           "whose p stay near 0.5")
    assert printed[-2] == "no margin labels on the test pairs; label some (F2) or judge them (F3)"
    assert main(["report", str(path), "job-b:step-99", "--out", str(out)]) == 2
    assert "has no rewards for step-99 on split 'test' (scored: step-10, step-20)" in capsys.readouterr().err
    for bad, message in ((["--bins", "0"], "--bins 0"), (["--source", "gamma"], "no such source"),
                         (["--split", "train"], "no rewards for 'job-a' on split 'train'")):
        assert main(["report", str(path), "job-a", "--out", str(out), *bad]) == 2
        assert message in capsys.readouterr().err


def test_the_command_in_its_own_process(tmp_path):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:  # closed before the command runs: DuckDB allows one process
        _fill(ws.con)
    out = tmp_path / "report"
    run = lambda *args: subprocess.run([sys.executable, "-m", "prefstudio", "report", str(path), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    done = run("job-a", "job-b", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "split 'test': 6 pairs every model has scored"
    assert lines[1].split() == ["model", "alpha", "beta", "avg", "all", "ties", "ECE@10", "n"]
    assert lines[2].split() == ["bt", "(step-10)", "75.0", "50.0", "62.5", "66.7", "0",
                                f"{metrics.ece(np.array(A), 10):.4f}", "6"]
    assert lines[3].split() == ["more", "(step-10)", "87.5", "100.0", "93.8", "91.7", "1",
                                f"{metrics.ece(np.array(B), 10):.4f}", "6"]
    assert lines[-1].startswith("wrote ") and str(out / "report.md") in lines[-1]
    assert_png(out / "accuracy.png")
    failed = run("nope", "--out", str(out))
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "prefstudio: error: no rewards for 'nope' on split 'test'; score it with `prefstudio eval` "
        "(scored: job-a, job-b, job-c)"]


def test_markdown_lists_outliers_within_a_source_that_are_none_overall(tmp_path):
    with Workspace.init(tmp_path / "ws") as ws:
        ids = add_pairs(ws.con, {"alpha": 6, "beta": 6})
        # alpha is tight, so its 2.0 stands out there; beta's wide spread hides it over every pair
        d = [0.0, 0.1, 0.2, 0.1, 0.15, 2.0] + [-5.0, 5.0, -4.0, 4.0, 3.0, -3.0]
        store_model(ws.con, "job-a", ids["alpha"] + ids["beta"], d, name="bt")
        comparison = compare.compare(ws.con, predictions.scored_models(ws.con, "test"))
        assert comparison.results[0].summaries[metrics.ALL].outliers.n_positive == 0
        report.write_comparison(ws.con, comparison, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    section = text[text.index("## Outliers"):]
    assert f"| {ids['alpha'][5]} | alpha | alpha | over | alpha prompt 5 | +2.000 |" in section
    assert "|:---|:---|:---|:---|:---|---:|" in section  # texts to the left, d to the right


def test_a_sweep_report_holds_intervals_and_the_bootstrap_p(tmp_path, capsys):
    from tests.test_compare import CELLS, store_cells
    from tests.test_uncertainty import _loop_bootstrap, _loop_p

    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        every = store_cells(ws.con, sweep="sw-1")
        store_model(ws.con, "other", every, [1.0] * 6, name="other", config={"objective": "bt", "sweep": "sw-2"})
    out = tmp_path / "out"
    assert main(["report", str(path), "sweep:sw-1", "--bootstrap", "300", "--seed", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "objective=bt (2 seeds)" in printed and "other" not in printed  # only the sweep's jobs
    text = (out / "report.md").read_text(encoding="utf-8")
    # bt's alpha 3/4 and 1/4 → 50 ± 12.706·(0.3536/√2) = 50 ± 317.7; beta 1/2 and 2/2 → 75 ± 317.7; avg 0.625 twice;
    # all 4/6 and 3/6 → 58.3 ± 105.9; more: 5.5/6 and 5/6 → 87.5 ± 52.9 (tests/test_compare.py)
    assert "| objective=bt (2 seeds) | 50.0 ± 317.7 | 75.0 ± 317.7 | 62.5 ± 0.0 | 58.3 ± 105.9 |" in text
    assert "| objective=more (2 seeds) |" in text and "| 87.5 ± 52.9 |" in text
    assert "## Comparisons" in text and "### Power" in text and "| length | 100.0 |" in text
    codes = np.array([0, 0, 0, 0, 1, 1])
    cells = [np.array([d for _, o, _, d in CELLS if o == objective]) for objective in ("bt", "more")]
    loop = _loop_bootstrap(cells, codes, 10, 300, 4)
    rows = {row["figure"]: row for row in _rows(out / "comparisons.csv")}
    assert set(rows) == {"accuracy_all", "accuracy_avg", "ece"}
    for figure, row in rows.items():
        draws = np.array(loop[0][figure]) - np.array(loop[1][figure])
        assert float(row["p"]) == _loop_p(draws), figure
        assert (row["a"], row["b"], row["bootstrap"], row["seed"], row["pairs"]) == \
            ("objective=bt", "objective=more", "300", "4", "6")
    assert float(rows["accuracy_all"]["difference"]) == pytest.approx(7 / 12 - 10.5 / 12)
    p = _loop_p(np.array(loop[0]["accuracy_all"]) - np.array(loop[1]["accuracy_all"]))
    assert "| objective=bt | objective=more | accuracy (all) | 58.3 | 87.5 | -29.2 |" in text and f"| {p:.3f} |" in text
    cell_rows = {(r["model"], r["source"], r["metric"]): float(r["value"]) for r in _rows(out / "metrics.csv")
                 if r["job_id"] == "cell"}
    assert cell_rows[("objective=bt", metrics.ALL, "accuracy_mean")] == pytest.approx(7 / 12)
    assert cell_rows[("objective=bt", metrics.ALL, "accuracy_half_width")] == pytest.approx(
        12.706204736 * (1 / 6) / 2)
    assert cell_rows[("objective=more", metrics.ALL, "accuracy_seeds")] == 2
    assert {r["cell"] for r in _rows(out / "comparison.csv")} == {"objective=bt", "objective=more", ""}
    assert_png(out / "accuracy.png")
    with Workspace.open(path) as ws:  # the PNG's bars: one per cell at its mean, its interval as an error bar
        comparison = compare.compare(ws.con, [m for m in predictions.scored_models(ws.con, "test")
                                              if m.job_id != "other"])
    (ax,) = report.accuracy_figure(comparison).axes
    bars = [c for c in ax.containers if getattr(c, "errorbar", None) is not None]
    assert [c.get_label() for c in bars] == ["objective=bt (2 seeds)", "objective=more (2 seeds)"]
    assert bars[0].patches[-1].get_height() == pytest.approx(100 * 7 / 12)  # "all", the last group
    _, caps, _ = bars[0].errorbar.lines  # the data line, (low caps, high caps), the bar lines
    assert caps[1].get_ydata()[-1] - 100 * 7 / 12 == pytest.approx(100 * 12.706204736 * (1 / 6) / 2)
    # the same draws with the same seed; a sweep that is not there is named
    again = tmp_path / "again"
    assert main(["report", str(path), "sweep:sw-1", "--bootstrap", "300", "--seed", "4", "--out", str(again)]) == 0
    assert (again / "comparisons.csv").read_text() == (out / "comparisons.csv").read_text()
    assert main(["report", str(path), "sweep:nope", "--out", str(again)]) == 2
    assert "sweep:nope: no such sweep in this workspace (sweeps: sw-1, sw-2)" in capsys.readouterr().err


def test_models_of_separate_settings_get_no_comparisons_unless_a_baseline_is_named(written, tmp_path):
    ws, _, models, _, out = written
    assert _rows(out / "comparisons.csv") == []
    assert "## Comparisons" not in (out / "report.md").read_text(encoding="utf-8")
    report.write_report(ws.con, models, tmp_path / "vs", baseline="length", bootstrap=100)
    rows = _rows(tmp_path / "vs" / "comparisons.csv")
    assert [(r["a"], r["b"], r["figure"]) for r in rows][:2] == [("bt (step-10)", "length", "accuracy_all"),
                                                                 ("bt (step-10)", "length", "accuracy_avg")]
    assert all(r["figure"] != "ece" for r in rows)  # length has no probability


def test_the_short_margin_block_of_eval_wait(ws):
    from prefstudio.evaluate import calibration
    from tests.test_calibration import add_labels

    ids = _fill(ws.con)
    add_labels(ws.con, margin_labels(ids))
    rewards = predictions.load_rewards(ws.con, "job-a", "step-10", "test")
    labels = calibration.load_labels(ws.con, rewards.pair_id)
    lines = report.margin_block(calibration.by_source(rewards, labels), labels, 6, "test", 10)
    assert lines[0] == ("margin labels on 5 of 6 test pairs (3 human, 1 judge, 1 data); d from the response the label "
                        "calls better:")
    # A directed by the labels: level 0 beta's 0.5; 1, 2: alpha's 1, 2; 3: alpha's 3 and its flipped −1
    assert lines[1].split() == ["level", "pairs", "flipped", "mean", "d", "accuracy", "%", "ECE@10"]
    assert [line.split()[:3] + line.split()[-5:] for line in lines[2:-1]] == [
        ["0", "·", "Negligibly", "1", "0", "+0.500", "100.0", f"{metrics.ece(np.array([0.5]), 10):.4f}"],
        ["1", "·", "Slightly", "1", "0", "+1.000", "100.0", f"{metrics.ece(np.array([1.0]), 10):.4f}"],
        ["2", "·", "More", "1", "0", "+2.000", "100.0", f"{metrics.ece(np.array([2.0]), 10):.4f}"],
        ["3", "·", "Distinctly", "2", "1", "+2.000", "100.0", f"{metrics.ece(np.array([3.0, 1.0]), 10):.4f}"],
        ["all", "levels", "5", "5", "1", "+1.500", "100.0", f"{metrics.ece(np.array([1.0, 2, 3, 1, 0.5]), 10):.4f}"]]
    assert lines[-1] == "  Spearman ρ(level, d) +0.711 over all 5; per source: alpha +0.389 (4), beta — (1)"
    assert report.margin_block({}, calibration.load_labels(ws.con, rewards.pair_id[:0]), 0, "test", 10) == [
        "no margin labels on the test pairs; label some (F2) or judge them (F3)"]
