"""Hostile inputs and faults, each area in tests/bad_input_cases/: what the user gets back.

tests/test_bad_input.py checks every case and that every fault names a real test;
`python -m tests.bad_inputs > docs/bad_input.md` writes the page from a fresh run.
"""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bad_input_cases import app, imports, jobs, judge, scale, settings, workspace
from tests.bad_input_cases.case import Case, Fault

AREAS = [("Imports", imports), ("Workspaces and paths", workspace), ("Jobs", jobs), ("The judge", judge),
         ("Training, settings and numbers", settings),
         ("Training at scale: LoRA, sharding, chat templates", scale), ("The app", app)]
CASES: list[Case] = [case for _, area in AREAS for case in area.CASES]
FAULTS: list[Fault] = [fault for _, area in AREAS for fault in area.FAULTS]


def paths(root: Path, case: Case) -> tuple[Path, Path]:
    return root / f"ws-{case.filename}", root / case.filename


def run_case(case: Case, root: Path) -> subprocess.CompletedProcess:
    from prefstudio.workspace import Workspace

    ws, file = paths(root, case)
    if case.workspace and not ws.exists():
        Workspace.init(ws).close()
    if not case.filename.startswith("missing"):
        file.write_bytes(case.content)
    if case.setup:
        case.setup(ws, file)
    env = {**os.environ, "COLUMNS": "200", **case.env}
    return subprocess.run([sys.executable, "-m", "prefstudio", *case.command(ws, file)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=root)


def pair_count(root: Path, case: Case) -> int:
    from prefstudio.workspace import Workspace

    with Workspace.open(paths(root, case)[0]) as ws:
        return ws.con.execute("SELECT count(*) FROM pairs").fetchone()[0]


def shown_command(case: Case, root: Path) -> str:
    ws, file = paths(root, case)
    words = case.command(Path("ws"), Path(file.name))
    return "prefstudio " + " ".join(shlex.quote(w) for w in words)


def told(done: subprocess.CompletedProcess, root: Path) -> str:
    lines = (done.stdout + done.stderr).splitlines()
    return " / ".join(line.replace(str(root) + "/", "").strip() for line in lines if line.strip() and "\r" not in line)


def page() -> str:
    today = datetime.date.today().isoformat()
    out = ["# Bad input and faults: what prefstudio does", "",
           f"Made by `python -m tests.bad_inputs > docs/bad_input.md` ({today}) from a fresh run of every case.",
           "`tests/test_bad_input.py` checks each row on every CI run: the message, the exit status (2 and a single",
           "line when the input is refused as a whole), no traceback, and what is stored afterwards. Rows that are",
           "skipped are named with file and line; the rest of the file is imported. Faults that need more than one",
           "command to stage (a kill, a full disk, two hosts) are checked by the test named beside them.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for title, area in AREAS:
            out += [f"## {title}", ""]
            if area.CASES:
                out += ["| input | command | exit | what the user is told |", "|---|---|---:|---|"]
                for case in area.CASES:
                    done = run_case(case, root)
                    said = told(done, root).replace("|", "¦")
                    said = said if len(said) <= 400 else said[:400] + " …"
                    out.append(f"| {case.what} | `{shown_command(case, root)}` | {done.returncode} | `{said}` |")
                out.append("")
            if area.FAULTS:
                out += ["| fault | how | what happens | checked by |", "|---|---|---|---|"]
                out += [f"| {f.what} | {f.how} | {f.outcome} | {f.test} |" for f in area.FAULTS]
                out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(page())
