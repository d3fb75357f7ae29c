"""What a hostile input or a fault is, and what the user must get back.

A `Case` is one run of the real CLI (a subprocess) on a crafted file or a damaged
workspace; a `Fault` is something a CLI run cannot stage alone (a kill -9 mid-way,
a full disk, two hosts), checked by a named test. docs/bad_input.md lists both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROW = {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5."}


def jsonl(*rows: dict | str) -> bytes:
    return b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in rows)


def import_command(ws: Path, file: Path) -> list[str]:
    return ["import", str(ws), str(file)]


@dataclass(frozen=True)
class Case:
    """One CLI run. `imported`: pairs in the workspace afterwards; None: refused as a whole (exit 2, one line)."""

    what: str
    filename: str
    content: bytes
    expect: str  # a piece of what the user is told
    imported: int | None
    command: Callable[[Path, Path], list[str]] = import_command
    # Run before the command, after the workspace (if any) is made and the file written: damage a workspace,
    # make a job folder, fill a disk. Gets (workspace path, file path).
    setup: Callable[[Path, Path], None] | None = None
    # Replaces the pair-count check after the run (e.g. when the workspace is meant to stay unreadable).
    check: Callable[[Path, Path], None] | None = None
    workspace: bool = True  # make a fresh workspace first
    exit: int | None = None  # expected exit status; default 0, or 2 when refused
    env: dict[str, str] = field(default_factory=dict)

    @property
    def expected_exit(self) -> int:
        return self.exit if self.exit is not None else (2 if self.imported is None else 0)


@dataclass(frozen=True)
class Fault:
    """A fault that needs more than one CLI run to stage; `test` is the pytest node that proves `outcome`."""

    what: str
    how: str  # how the fault is made, as a user would meet it
    outcome: str  # what happens now
    test: str  # "tests/test_x.py::test_name"
