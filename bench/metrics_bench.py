"""Are the figures of docs/methods.md, "Evaluation", for a million pairs about a second? (issue 5's target)

Makes a workspace of N pairs in 5 sources (short texts: only ids, sources and
rewards matter here) and M scored models with N rewards each, then times what
the Evaluation screen and `prefstudio report` do per model: read the rewards
back out of DuckDB, then every figure per source and overall (accuracy and
ties, ECE at 5/10/20 bins, the reliability table, moments, Tukey outliers); and
ingesting a scoring job's output (Parquet parts -> predictions + metrics).

    .venv/bin/python bench/metrics_bench.py [--pairs 1000000] [--models 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prefstudio.evaluate import compare, metrics, predictions
from prefstudio.evaluate.scoring_job import PARTS, EvalConfig
from prefstudio.workspace import Workspace

SOURCES = ["helpful", "harmless", "concise", "detailed", "safety"]


def timed(fn, repeat: int = 3):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    try:
        run(root, args.pairs, args.models)
    finally:
        shutil.rmtree(root)


def run(root: Path, n: int, n_models: int) -> None:
    rng = np.random.default_rng(0)
    with Workspace.init(root / "ws") as ws:
        t0 = time.perf_counter()
        ws.con.execute(
            """INSERT INTO pairs SELECT range, $sources[(range % 5) + 1], 'test',
                      'p' || range, 'c' || range, 'r' || range, md5(range::VARCHAR), NULL, NULL FROM range($n)""",
            {"sources": SOURCES, "n": n})
        for m in range(n_models):
            ids = np.arange(n, dtype=np.int64)
            scored = pa.table({"job_id": pa.array([f"job-{m}"] * n), "checkpoint": pa.array(["step-1"] * n),
                              "pair_id": ids, "r_chosen": rng.normal(0.5 + 0.3 * m, 1.5, n),
                              "r_rejected": rng.normal(0.0, 1.5, n)})
            ws.con.register("scored", scored)
            ws.con.execute("INSERT INTO predictions SELECT * FROM scored")
            ws.con.unregister("scored")
        print(f"workspace: {n:,} pairs, {n_models} models x {n:,} rewards ({time.perf_counter() - t0:.1f} s to build)")

        load_s, rewards = timed(lambda: predictions.load_rewards(ws.con, "job-0", "step-1", "test"))
        figures_s, summary = timed(lambda: rewards.summaries())
        hist_s, _ = timed(lambda: metrics.histogram(rewards.d, 60, (-8.0, 8.0)))
        list_s, models = timed(lambda: predictions.scored_models(ws.con, "test"))
        store_s, _ = timed(lambda: predictions.store_metrics(ws.con, "job-0", "step-1", "test"))
        # what the Evaluate screen does when it opens: every model on the common pairs, then its plots
        compare_s, comparison = timed(lambda: compare.compare(ws.con, models))
        shared_s, _ = timed(lambda: comparison.histograms(80))
        outliers_s, found = timed(lambda: compare.outlier_pairs(ws.con, comparison.results[0]))

        # a scoring job's output, as the job writes it: parts of 2,048 rewards
        folder = root / "eval-job"
        (folder / PARTS).mkdir(parents=True)
        (folder / "config.toml").write_text(
            'subject = "job-new"\ncheckpoint = "/x"\ncheckpoint_name = "step-9"\nsplit = "test"\n')
        EvalConfig(subject="job-new", checkpoint="/x", checkpoint_name="step-9")  # the file above is valid
        d = rng.normal(0.5, 1.5, n)
        for k, start in enumerate(range(0, n, 2048)):
            stop = min(start + 2048, n)
            pq.write_table(pa.table({"pair_id": np.arange(start, stop, dtype=np.int64),
                                     "r_chosen": d[start:stop], "r_rejected": np.zeros(stop - start)}),
                           folder / PARTS / f"part-{k:06d}.parquet")
        t0 = time.perf_counter()
        ingested = predictions.ingest(ws, folder, ws.cursor())
        ingest_s = time.perf_counter() - t0

    overall = summary[metrics.ALL]
    print(f"figures for model job-0: accuracy {overall.accuracy:.3f} ({overall.ties:,} ties), "
          f"ECE@10 {overall.ece[10]:.4f}, {overall.outliers.n_positive + overall.outliers.n_negative:,} outliers")
    print()
    print(f"| step ({n:,} pairs, median of 3) | seconds |")
    print("|---|---:|")
    print(f"| read one model's rewards out of DuckDB (join pairs for source and split) | {load_s:.3f} |")
    print(f"| every figure, 5 sources + overall (ECE 5/10/20, reliability, moments, Tukey) | {figures_s:.3f} |")
    print(f"| **one model, read + figures** | **{load_s + figures_s:.3f}** |")
    print(f"| histogram, 60 bins | {hist_s:.3f} |")
    print(f"| list the scored models ({len(models)}) | {list_s:.3f} |")
    print(f"| recompute and store the metrics rows of one model | {store_s:.3f} |")
    print(f"| Evaluate screen: {len(models)} models on their common pairs, read + figures | {compare_s:.3f} |")
    print(f"| Evaluate screen: {len(models)} histograms on a shared range, 80 bins | {shared_s:.3f} |")
    print(f"| Evaluate screen: the outlier table of one model ({len(found)} pairs with texts) | {outliers_s:.3f} |")
    print(f"| ingest a scoring job ({ingested:,} rewards in {len(list((folder / PARTS).glob('*')))} parts) "
          f"+ its metrics | {ingest_s:.3f} |")


if __name__ == "__main__":
    main()
