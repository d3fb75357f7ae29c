"""MORE's diagnostics (docs/methods.md, "MORE's diagnostics"): the cosines of the per-source head gradients, by
hand, and the warning for a source whose λ stays near 0; a tiny MORE job logs the cosines every step."""

import json
import math

import pytest
import torch

from prefstudio.jobs.metrics_log import (COSINE, IGNORED_STEPS, IgnoredSources, MetricsLog, cosine_matrix_of,
                                         ignored_below, ignored_now, mean_cosines)
from prefstudio.train.min_norm import cosine_matrix, upper_triangle


def gram(*rows):
    g = torch.tensor(rows, dtype=torch.float64)
    return g @ g.T


def flat(matrix: torch.Tensor) -> list[float]:
    return matrix.flatten().tolist()


def test_cosines_by_hand():
    assert cosine_matrix(gram([1, 0], [0, 3])).tolist() == [[1, 0], [0, 1]]  # orthogonal
    assert flat(cosine_matrix(gram([2, 1], [-4, -2]))) == pytest.approx([1, -1, -1, 1], abs=1e-15)  # opposite
    # (1,0,0), (1,1,0), (0,-1,1): cos12 = 1/√2, cos13 = 0, cos23 = -1/(√2·√2) = -1/2
    cos = cosine_matrix(gram([1, 0, 0], [1, 1, 0], [0, -1, 1]))
    assert flat(cos) == pytest.approx([1, 1 / math.sqrt(2), 0, 1 / math.sqrt(2), 1, -0.5, 0, -0.5, 1], abs=1e-15)
    assert upper_triangle(cos) == [0.707, 0.0, -0.5]
    # a positive scale per source (MORE's normalisers) changes no cosine
    assert flat(cosine_matrix(gram([5, 0, 0], [0.1, 0.1, 0], [0, -3, 3]))) == pytest.approx(flat(cos), abs=1e-15)


def test_a_source_with_no_gradient_has_no_cosine():
    cos = cosine_matrix(gram([1, 0], [0, 0], [1, 1]))
    assert upper_triangle(cos) == [None, 0.707, None]
    sources, matrix = cosine_matrix_of({"lambda": {"a": 0.5, "b": 0.0, "c": 0.5}, COSINE: [None, 0.707, None]})
    assert sources == ["a", "b", "c"] and math.isnan(matrix[1][1]) and matrix[0][0] == 1
    assert matrix[0][2] == matrix[2][0] == 0.707 and math.isnan(matrix[0][1])


def test_the_mean_cosines_are_read_back_from_the_lines():
    lines = [{"step": 1, "lambda": {"a": 0.5, "b": 0.5}},  # written before the cosines were logged: skipped
             {"step": 2, "lambda": {"a": 0.5, "b": 0.5}, COSINE: [-0.5]},
             {"step": 3, "lambda": {"a": 0.5, "b": 0.5}, COSINE: [0.25]}]
    assert mean_cosines(lines) == (["a", "b"], [[1.0, -0.125], [-0.125, 1.0]], 2)
    assert mean_cosines(lines[:1]) is None


def lam(k: int, low: str | None, value: float) -> dict:
    names = [f"s{i}" for i in range(k)]
    rest = (1 - value) / (k - 1) if low else 1 / k
    return {name: (value if name == low else rest) for name in names}


def test_the_ignored_warning_fires_after_n_steps_not_before_and_once():
    k = 3
    below = ignored_below(k)
    assert below == pytest.approx(0.1 / 3)
    tracker = IgnoredSources()
    said = [tracker.update(lam(k, "s1", below * 0.99)) for _ in range(IGNORED_STEPS + 5)]
    assert said[:IGNORED_STEPS - 1] == [[]] * (IGNORED_STEPS - 1)
    assert said[IGNORED_STEPS - 1] == [f"source s1 is being ignored (λ < 0.0333 for the last {IGNORED_STEPS} steps)"]
    assert said[IGNORED_STEPS:] == [[]] * 5  # once, not every step
    assert tracker.update(lam(k, "s1", below)) == []  # at the bar is not under it: the run ends
    again = [tracker.update(lam(k, "s1", 0.0)) for _ in range(IGNORED_STEPS)]
    assert again[-1] and not any(again[:-1])
    assert tracker.update(None) == []  # another objective's step


def test_the_jobs_screen_reads_the_warning_from_the_last_n_lines():
    k = 3
    lines = [{"step": s, "lambda": lam(k, "s2", 0.0)} for s in range(1, IGNORED_STEPS + 1)]
    assert ignored_now(lines[1:]) == []  # N - 1 steps
    assert ignored_now(lines) == [f"source s2 is being ignored (λ < 0.0333 for the last {IGNORED_STEPS} steps)"]
    lines[10]["lambda"]["s2"] = 0.2
    assert ignored_now(lines) == []
    gap = [{"step": s if s < 20 else s + 1, "lambda": lam(k, "s2", 0.0)} for s in range(1, IGNORED_STEPS + 1)]
    assert ignored_now(gap) == []  # not in a row


def test_a_tiny_more_job_logs_the_cosines_every_step(tmp_path, small_ws, backbone):
    from prefstudio.train.config import make_config
    from prefstudio.train.loop import train
    from prefstudio.train.snapshot import write_snapshot

    folder = tmp_path / "job"
    folder.mkdir()
    write_snapshot(small_ws, folder / "pairs.parquet")
    config = make_config({"backbone": str(backbone), "objective": "more", "sampling": "balanced", "batch_size": 6,
                          "lr": 1e-3, "max_length": 32, "epochs": 0.2, "warmup_ratio": 0.0})
    train(folder, config)
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and lines[-1]["step"] == lines[-1]["total_steps"]
    for line in lines:
        assert list(line["lambda"]) == ["concise", "detailed", "safety"]
        assert len(line[COSINE]) == 3 and all(-1 <= c <= 1 and round(c, 3) == c for c in line[COSINE])
    assert len({tuple(line[COSINE]) for line in lines}) > 1  # each step's own, not a constant
    log = MetricsLog()
    log.read_more(folder)
    sources, matrix, steps = mean_cosines(log.last(50))
    assert sources == ["concise", "detailed", "safety"] and steps == len(lines)
    assert matrix[0][1] == pytest.approx(sum(line[COSINE][0] for line in lines) / len(lines))
