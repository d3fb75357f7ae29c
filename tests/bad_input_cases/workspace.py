"""A workspace that is busy, damaged, missing or on a bad path: one line that says how to recover."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

CASES: list[Case] = []

FAULTS = [
    Fault("a second prefstudio on the same workspace", "open the app twice",
          "`prefstudio: error: … is in use by prefstudio process PID …`, one line",
          "tests/test_tui_browser.py::test_run_app_on_a_busy_workspace_prints_one_line_and_returns_2"),
]
