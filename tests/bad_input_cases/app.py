"""The terminal app under hostile data: it stays responsive and never exits on what it shows."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

CASES: list[Case] = []
FAULTS: list[Fault] = [
    Fault("a pair with a 50 MB response, opened in the app",
          "import a JSONL line whose chosen is 50 MB of text, then Enter on it in the browser",
          "the pair opens within a second with the first 32 KB (cut in SQL) and "
          "'… 50.0 MB more, o opens it in less'; memory grows by a few MB; `o` shows all of it in $PAGER "
          "(a temporary file, removed after) and the app goes on",
          "tests/test_huge_text.py::test_a_50_mb_response_shows_its_start_and_o_opens_all_of_it_in_the_pager"),
    Fault("a pair with a 50 MB response, in the labelling queue",
          "the same pair comes up on the Label screen (F2)",
          "the same cut and line; `o` opens the cut text even when another box has the focus",
          "tests/test_huge_text.py::test_the_labelling_screen_cuts_the_50_mb_response_and_opens_it_whole"),
    Fault("`o` with no pager to run", "PAGER unset and no less installed, then `o` on a pair",
          "one notification: $PAGER is not set and less is not installed; nothing is fetched",
          "tests/test_huge_text.py::test_without_a_pager_o_says_so_and_fetches_nothing"),
    Fault("`o` with a PAGER that does not exist", "PAGER=/no/such/pager, then `o` on a pair",
          "one notification 'cannot run pager …'; the temporary file is removed; the app goes on",
          "tests/test_huge_text.py::test_a_pager_that_cannot_run_is_one_notification_and_the_file_is_removed"),
    Fault("50 MB responses among a model's outliers", "evaluate a model whose outliers include a 50 MB pair (F6)",
          "the outlier table and the report fetch the first 2,000 characters of each text",
          "tests/test_huge_text.py::test_eval_outliers_fetch_only_the_start_of_each_text"),
]
