"""The terminal app under hostile data: it stays responsive and never exits on what it shows."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

CASES: list[Case] = []
FAULTS: list[Fault] = []
