"""Jobs under kills, other hosts, full disks and damaged outputs: each runs once and says what happened."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

CASES: list[Case] = []

FAULTS = [
    Fault("the app killed while a job runs", "kill -9 the app, reopen it",
          "the job goes on in its own process; the reopened app shows it",
          "tests/test_faults.py::test_a_job_outlives_a_killed_app_and_the_reopened_app_shows_it"),
    Fault("a full disk while a job writes a checkpoint", "fill the disk at a checkpoint",
          "one-line error naming the checkpoint; the previous checkpoint is intact",
          "tests/test_faults.py::test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_last_checkpoint_stays"),
]
