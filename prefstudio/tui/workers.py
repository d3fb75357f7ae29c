"""How the app's query workers end: done, stopped by a newer query, or failed and said so once.

Every screen used to catch, word and show its workers' errors itself. Now a
query worker (`@query_work`) lets an error through: it runs with
exit_on_error=False, so the worker ends in state ERROR and the app's one
handler (PrefstudioApp.report_failed_worker) shows the error's first line and
logs the rest. A worker still catches an error when it must do something about
it (tell its screen to stop waiting), and raises it on.

A query interrupted by a newer one of its kind (app.cursor) did not fail: the
worker just ends, as if it had returned.
"""

from __future__ import annotations

import functools
from typing import Callable

import duckdb
from textual import work
from textual.worker import Worker


def query_work(*, group: str, exclusive: bool = False) -> Callable:
    """@work for a thread worker that queries the workspace (see the module docstring)."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def run(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except duckdb.InterruptException:
                return None  # a newer query of its kind took over

        return work(run, thread=True, group=group, exclusive=exclusive, exit_on_error=False)

    return decorate


class ReportsFailedWorkers:
    """Mixed into a screen or widget that runs query workers: the app reports the ones that fail.

    Worker.StateChanged goes only to the node that runs the worker, never up to
    the app, so this hands it over.
    """

    def _on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.report_failed_worker(event)
