"""Every hostile input of tests/bad_inputs.py: a clear answer, never a traceback, nothing half-stored."""

import ast
import json
from pathlib import Path

import pytest

from prefstudio.workspace import Workspace
from tests.bad_inputs import CASES, FAULTS, pair_count, paths, run_case

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_gets_a_clear_answer(case, tmp_path):
    done = run_case(case, tmp_path)
    told = done.stdout + done.stderr
    assert "Traceback" not in told
    assert case.expect in told
    assert done.returncode == case.expected_exit, told
    if case.imported is None:  # refused as a whole: one line
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("prefstudio: error: "), done.stderr
    if case.check:
        case.check(*paths(tmp_path, case))
    elif case.workspace:
        assert pair_count(tmp_path, case) == (case.imported or 0)


@pytest.mark.parametrize("name", ["i.jsonl", "j.jsonl", "k.jsonl", "l.jsonl"])
def test_texts_that_go_in_are_kept_as_given(name, tmp_path):
    case = next(c for c in CASES if c.filename == name)
    assert run_case(case, tmp_path).returncode == 0
    with Workspace.open(paths(tmp_path, case)[0]) as ws:
        texts = ws.con.execute("SELECT prompt, chosen, rejected FROM pairs").fetchall()
    stored = json.loads(case.content.decode())
    # kept as given, but for NUL bytes, which the import drops (text tools and terminals choke on them)
    assert texts == [tuple(stored[k].replace("\x00", "") for k in ("prompt", "chosen", "rejected"))]


def test_every_case_is_named_once():
    names = [c.what for c in CASES] + [f.what for f in FAULTS]
    assert len(names) == len(set(names))
    files = [c.filename for c in CASES]
    assert len(files) == len(set(files)), "each case needs its own file name (its workspace is named after it)"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.what for f in FAULTS])
def test_every_fault_names_a_test_that_exists(fault):
    file, name = fault.test.split("::")
    tree = ast.parse((ROOT / file).read_text())
    assert name in {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_the_page_lists_every_case_and_fault():
    page = (ROOT / "docs" / "bad_input.md").read_text()
    missing = [c.what for c in CASES if f"| {c.what} |" not in page] + [
        f.what for f in FAULTS if f"| {f.what} |" not in page]
    assert not missing, f"regenerate with `python -m tests.bad_inputs > docs/bad_input.md`: {missing}"
