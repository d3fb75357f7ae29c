"""bench/gpu_check.sh on the CPU with tiny configs: the GPU check must be known to work before a GPU is lent,
since a lent GPU comes for minutes and a broken check would waste them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("pythia-1.4b", "llama-3-8b")
RUNS = ("bt (grouped)", "bt", "margin", "more", "trl")


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--tiny", "--budget-s", "0",
                           "--json", str(out / "rows.json")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout, json.loads((out / "rows.json").read_text())


def table_rows(stdout: str) -> dict[tuple[str, str, str], list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in MODELS:
            run = cells[2].removesuffix(" (LoRA r16)")
            rows[cells[0], cells[1], run] = cells
    return rows


def test_every_row_of_the_matrix_runs_through_the_job_path(tiny_run):
    stdout, rows = tiny_run
    table = table_rows(stdout)
    assert set(table) == {(m, c, r) for m in MODELS for c in ("off", "on") for r in RUNS}
    for (model, _, run), cells in table.items():
        steps, pairs_per_s, tokens_per_s, peak = int(cells[3]), float(cells[4]), float(cells[5]), float(cells[6])
        assert steps == 6 and pairs_per_s > 0 and tokens_per_s > pairs_per_s and peak > 0, cells
        # LoRA on the big one only: the Llama jobs saved an adapter, TRL was given the same LoRA
        assert cells[2].endswith("(LoRA r16)") == (model == "llama-3-8b"), cells
    assert re.search(r"^elapsed \d+ s on CPU \(tiny configs\)$", stdout, re.M)
    assert re.search(r"^gpu_check\.sh: \d+ s in all$", stdout, re.M)
    assert {r["model"] for r in rows} == set(MODELS) and not any(r["skipped"] for r in rows)


def test_ratio_columns_are_computed_against_trl_and_bt(tiny_run):
    stdout, _ = tiny_run
    table = table_rows(stdout)
    for (model, ckpt, run), cells in table.items():
        trl = table[model, ckpt, "trl"]
        speed, memory = float(cells[7].removesuffix("x")), float(cells[8].removesuffix("x"))
        assert speed == pytest.approx(float(cells[4]) / float(trl[4]), abs=0.01), cells
        assert memory == pytest.approx(float(cells[6]) / float(trl[6]), abs=0.01), cells
        if run == "more":  # MORE's step time over bt on the same batches
            bt = table[model, ckpt, "bt"]
            assert float(cells[9].removesuffix("%")) == pytest.approx(
                (float(bt[4]) / float(cells[4]) - 1) * 100, abs=0.2), cells
        else:
            assert cells[9] == "", cells


def test_table_against_trl_exactly():
    check = gpu_check_module()
    rows = [check.Result("m", False, "bt", 6, 30.0, 3000.0, 900.0), check.Result("m", False, "more", 6, 24.0, 2400.0, 950.0),
            check.Result("m", False, "trl", 6, 15.0, 1500.0, 1800.0), check.Result("m", True, "bt", skipped="budget: 451 s gone")]
    lines = check.table(rows)
    assert lines[2] == "| m | off | bt | 6 | 30.00 | 3000 | 900 | 2.00x | 0.50x |  |"
    assert lines[3] == "| m | off | more | 6 | 24.00 | 2400 | 950 | 1.60x | 0.53x | +25.0% |"
    assert lines[4] == "| m | off | trl | 6 | 15.00 | 1500 | 1800 | 1.00x | 1.00x |  |"
    assert lines[5].startswith("| m | on | bt | skipped (budget: 451 s gone) |")
