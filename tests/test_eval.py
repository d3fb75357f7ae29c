"""Scoring as a job: a trained model and a raw baseline scored on the test split, ingested once, resumable."""

import numpy as np
import pytest

from prefstudio import jobs
from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import metrics, predictions, scoring_job
from prefstudio.jobs.layout import latest_checkpoint
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.scoring import score_pairs
from tests.test_jobs import wait_for


def run_in_process(folder, stop_after=None):
    """The job's body, here: what the job process would do, with a cancel after `stop_after` progress reports."""
    reports = []

    def on_progress(progress):
        reports.append(progress.step)

    scoring_job.run(folder, should_stop=lambda: stop_after is not None and len(reports) > stop_after,
                    on_progress=on_progress)
    return reports


def test_a_trained_job_and_a_raw_backbone_scored_as_jobs(small_ws, backbone):
    trained = create_training_job(small_ws, make_config({"backbone": str(backbone), "batch_size": 8, "lr": 1e-3,
                                                         "max_length": 64}), name="bt tiny")
    jobs.start_next(small_ws.jobs_dir)
    wait_for(trained.folder, lambda s: s.state == "done")
    scored = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, trained.id, batch_size=5))
    raw = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, raw_backbone=str(backbone)))
    jobs.start_next(small_ws.jobs_dir)
    for job in (scored, raw):
        assert wait_for(job.folder, lambda s: s.state == "done").kind == "eval"
    jobs.bring_in(small_ws)
    jobs.bring_in(small_ws)  # a second look ingests nothing again

    n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    models = predictions.scored_models(small_ws.con, "test")
    assert [(m.job_id, m.checkpoint, m.n) for m in models] == [
        (f"raw:{backbone.name}", "raw", n_test), (trained.id, latest_checkpoint(trained.folder).name, n_test)]
    assert models[1].label == f"bt tiny ({models[1].checkpoint})"
    assert small_ws.con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2 * n_test

    # the stored rewards are the checkpoint's, scored as training saw the pairs (same template, same length)
    rewards = predictions.load_rewards(small_ws.con, trained.id, models[1].checkpoint, "test")
    rows = small_ws.con.execute("SELECT id AS pair_id, prompt, chosen, rejected FROM pairs WHERE split = 'test' "
                                "ORDER BY id LIMIT 4").fetchall()
    direct = list(score_pairs(latest_checkpoint(trained.folder), [dict(zip(("pair_id", "prompt", "chosen", "rejected"), r))
                                                                  for r in rows], max_length=64))
    assert rewards.pair_id[:4].tolist() == [r[0] for r in direct]
    assert rewards.r_chosen[:4] == pytest.approx([r[1] for r in direct], abs=1e-5)

    # the figures are in the metrics table too, for SQL users
    stored = dict(small_ws.con.execute("SELECT name, value FROM metrics WHERE job_id = ? AND source = 'all'",
                                       [trained.id]).fetchall())
    summary = metrics.summarize(rewards.d)
    assert stored["n"] == n_test and stored["accuracy"] == pytest.approx(summary.accuracy)
    assert stored["ece_10"] == pytest.approx(summary.ece[10])


def test_scoring_resumes_after_a_cancel_without_scoring_twice(small_ws, backbone, monkeypatch):
    monkeypatch.setattr(scoring_job, "PART_SIZE", 4)
    job = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, raw_backbone=str(backbone),
                                                                        batch_size=2))
    first = run_in_process(job.folder, stop_after=2)
    n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    partial = scoring_job.scored_ids(job.folder)
    assert 0 < len(partial) < n_test and first[-1] == len(partial)
    second = run_in_process(job.folder)
    assert second[0] == len(partial) and second[-1] == n_test
    assert len(scoring_job.scored_ids(job.folder)) == n_test
    assert predictions.ingest(small_ws, job.folder, small_ws.cursor()) == n_test  # every pair once
    again = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, raw_backbone=str(backbone)))
    run_in_process(again.folder)
    predictions.ingest(small_ws, again.folder, small_ws.cursor())
    stored = small_ws.con.execute("SELECT count(*), count(DISTINCT pair_id) FROM predictions").fetchone()
    assert stored == (n_test, n_test)  # rescoring replaced, and the raw head is the same every time
    one = predictions.load_rewards(small_ws.con, f"raw:{backbone.name}", "raw", "test")
    assert np.isfinite(one.d).all()


def test_scoring_reports_progress_after_every_batch_not_only_per_part(ws, backbone):
    """A split smaller than a part file used to read 0% until the very end (issue 12)."""
    from tests.eval_helpers import add_pairs

    add_pairs(ws.con, {"alpha": 60, "beta": 40})
    job = scoring_job.create_eval_job(ws, scoring_job.eval_config(ws, raw_backbone=str(backbone), batch_size=8,
                                                                  max_length=32))
    assert run_in_process(job.folder) == [0, *range(8, 100, 8), 100]  # pairs scored, after each batch
    assert len(list((job.folder / scoring_job.PARTS).glob("part-*.parquet"))) == 1  # still one part to resume from


def test_what_cannot_be_scored_is_said_in_one_line(small_ws, backbone, tmp_path):
    with pytest.raises(PrefstudioError, match=r"no job 'nope' in .* \(jobs: none\)"):
        scoring_job.eval_config(small_ws, "nope")
    queued = create_training_job(small_ws, make_config({"backbone": str(backbone)}))
    with pytest.raises(PrefstudioError, match="has no checkpoint yet"):
        scoring_job.eval_config(small_ws, queued.id)
    with pytest.raises(PrefstudioError, match="not a Hugging Face model folder"):
        scoring_job.eval_config(small_ws, raw_backbone=str(tmp_path))
    with pytest.raises(PrefstudioError, match=r"no pairs in split 'dev' to score \(splits: test, train\)"):
        scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, raw_backbone=str(backbone),
                                                                      split="dev"))
    assert [j.kind for j in jobs.list_jobs(small_ws.jobs_dir)] == ["train"]  # no half-made eval job
    with pytest.raises(PrefstudioError, match="no rewards for 'nope' on split 'test'"):
        predictions.find_model(small_ws.con, "nope", "test")


def test_eval_command_waits_then_prints_the_figures(tmp_path, backbone, monkeypatch):
    import subprocess
    import sys

    from prefstudio import demo

    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 30)
    path, _ = demo.ensure_demo(tmp_path / "ws")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "prefstudio", *args], capture_output=True, text=True, timeout=300)

    done = cli("eval", str(path), "--raw", str(backbone), "--wait")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("job ") and f"scores raw:{backbone.name} (raw) on split 'test'" in lines[0]
    assert [line.split()[0] for line in lines[1:-1]] == [*demo.SOURCES, "all"]
    assert "accuracy" in lines[-2] and "ties" in lines[-2] and "ECE@10" in lines[-2]
    assert lines[-1] == "no margin labels on the test pairs; label some (F2) or judge them (F3)"  # the demo has none
    listed = cli("jobs", str(path))
    assert " eval  done " in listed.stdout
    neither = cli("eval", str(path))
    assert neither.returncode == 2 and neither.stderr.count("\n") == 1 and "--raw BACKBONE" in neither.stderr


def test_eval_command_prints_the_ties_beside_accuracy(tmp_path, backbone, capsys):
    from prefstudio.cli import main
    from prefstudio.workspace import Workspace
    from tests.eval_helpers import add_pairs

    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ids = add_pairs(ws.con, {"alpha": 4, "beta": 3})
        # the same text on both sides gets the same reward: d = 0 exactly, a tie
        ws.con.execute("UPDATE pairs SET rejected = chosen WHERE list_contains(?, id)",
                       [ids["alpha"][:2] + ids["beta"][:1]])
    assert main(["eval", str(path), "--raw", str(backbone), "--name", "tiny", "--wait"]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    with Workspace.open(path) as ws:
        rewards = predictions.load_rewards(ws.con, "raw:tiny", "raw", "test")
    by_source = {"alpha": rewards.d[rewards.source == "alpha"], "beta": rewards.d[rewards.source == "beta"],
                 "all": rewards.d}
    assert [int((d == 0).sum()) for d in by_source.values()] == [2, 1, 3]
    assert printed.pop() == "no margin labels on the test pairs; label some (F2) or judge them (F3)"
    for line, (source, d) in zip(printed, by_source.items(), strict=True):
        right_or_half = ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size  # a tie counts half
        assert line.split()[:7] == [source, "n", str(d.size), "accuracy", f"{right_or_half:.1%}", "ties",
                                    str(int((d == 0).sum()))], line


def test_scoring_reads_one_batch_of_texts_at_a_time(small_ws, backbone):
    job = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, raw_backbone=str(backbone),
                                                                        batch_size=4))
    import pyarrow.parquet as pq

    layout = pq.ParquetFile(job.folder / scoring_job.PAIRS).metadata
    assert layout.num_row_groups > 1 and layout.row_group(0).num_rows == 4  # the job decodes a batch at a time
    read, scored, most_held = 0, 0, 0

    def rows():
        nonlocal read
        for row in pq.ParquetFile(job.folder / scoring_job.PAIRS).iter_batches(batch_size=4):
            for r in row.to_pylist():
                read += 1
                yield r

    for _ in score_pairs(backbone, rows(), batch_size=4, max_length=64):
        scored += 1
        most_held = max(most_held, read - scored + 1)
    assert scored == layout.num_rows and most_held <= 4


def test_a_raw_baseline_can_be_named(small_ws, backbone):
    named = scoring_job.eval_config(small_ws, raw_backbone=str(backbone), raw_name="tiny-gpt2")
    assert named.subject == "raw:tiny-gpt2" and named.checkpoint_name == "raw"
    assert scoring_job.eval_config(small_ws, raw_backbone=str(backbone)).subject == f"raw:{backbone.name}"
    with pytest.raises(PrefstudioError, match="--name 'my model': expected one word"):
        scoring_job.eval_config(small_ws, raw_backbone=str(backbone), raw_name="my model")


def test_a_raw_backbone_is_scored_within_its_positions(ws, backbone):
    from prefstudio.evaluate.scoring_job import eval_config

    # the tiny GPT-2 takes 256 positions: the default 512 would index past them
    assert eval_config(ws, raw_backbone=str(backbone)).max_length == 256
    assert eval_config(ws, raw_backbone=str(backbone), max_length=64).max_length == 64
    with pytest.raises(PrefstudioError, match="takes at most 256 tokens"):
        eval_config(ws, raw_backbone=str(backbone), max_length=300)
