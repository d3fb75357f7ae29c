"""Training settings, numbers, checkpoints and paths given to train, eval and report: one line that says what is expected."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

CASES = [
    Case("a training setting that does not exist", "m.toml", b"backbone = 'x'\nlearning_rate = 1e-5\n",
         "unknown setting 'learning_rate'", None,
         command=lambda ws, file: ["train", str(ws), "--config", str(file), "--no-start"]),
    Case("a model path that is not a model", "n.toml", b"", "not a Hugging Face model folder", None,
         command=lambda ws, file: ["eval", str(ws), "--raw", str(file.parent)]),
    Case("a report on a job that was never scored", "o.txt", b"", "no rewards for 'nope'", None,
         command=lambda ws, file: ["report", str(ws), "nope", "--out", str(file.parent / "report-o")]),
    Case("a report into a path that is a file", "p.txt", b"not a folder", "exists and is not a folder", None,
         command=lambda ws, file: ["report", str(ws), "all", "--out", str(file)]),
]

FAULTS = [
    Fault("an unknown key in workspace.toml", "add `colour = 1` to workspace.toml and open the workspace",
          "refused, naming the key", "tests/test_workspace.py::test_config_unknown_key_is_refused"),
]
