"""Durable, cheap writes for a judge run: an fsynced journal now, DuckDB in batches.

Every answer is paid for, so it must be on disk the moment it arrives: it is
appended to the run's journal file (`judge/<run>.jsonl` in the workspace) and
fsynced, together with whatever else arrived at the same time. A DuckDB
statement costs more CPU than an API call does on a busy two-core client, so
answers and labels move into the database in batches, every FLUSH_SECONDS or
FLUSH_ROWS and at the end, in one transaction each. A journal left behind by a
killed process is replayed into `judge_calls` by the next run before it plans,
so a rerun pays for nothing twice; the labels of such pairs are then made from
the cached answers, with no call.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from prefstudio.db import transaction
from prefstudio.errors import PrefstudioError, first_line

FLUSH_SECONDS = 0.5
FLUSH_ROWS = 500
JOURNAL_DIR = "judge"

CALL_COLUMNS = ("cache_key", "model", "prompt_version", "pair_id", "chosen_as", "response",
                "tokens_in", "tokens_out", "cost_usd", "run_id", "created_at")
CALL_SCHEMA = pa.schema([
    ("cache_key", pa.string()), ("model", pa.string()), ("prompt_version", pa.string()), ("pair_id", pa.int64()),
    ("chosen_as", pa.string()), ("response", pa.string()), ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
    ("cost_usd", pa.float64()), ("run_id", pa.string()), ("created_at", pa.string()),
])
ANNOTATION_SCHEMA = pa.schema([
    ("pair_id", pa.int64()), ("annotator_id", pa.string()), ("outcome", pa.string()), ("level", pa.int64()),
    ("flip", pa.bool_()), ("margin", pa.float64()), ("prompt_version", pa.string()),
    ("raw_response_ab", pa.string()), ("raw_response_ba", pa.string()), ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()), ("cost_usd", pa.float64()), ("run_id", pa.string()),
])

_active_runs: set[str] = set()  # journals of runs going on in this process: never replayed under them
_active_lock = threading.Lock()


def now_text() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def _insert_calls(con, rows: list[dict]) -> None:
    con.register("_calls", pa.Table.from_pylist(rows, schema=CALL_SCHEMA))
    try:
        con.execute(
            f"INSERT OR IGNORE INTO judge_calls ({', '.join(CALL_COLUMNS)}) "
            f"SELECT {', '.join(CALL_COLUMNS[:-1])}, created_at::TIMESTAMP FROM _calls"
        )
    finally:
        con.unregister("_calls")


def _insert_annotations(con, rows: list[dict]) -> None:
    con.register("_labels", pa.Table.from_pylist(rows, schema=ANNOTATION_SCHEMA))
    try:
        columns = ", ".join(ANNOTATION_SCHEMA.names)
        con.execute(f"INSERT INTO annotations (annotator_kind, {columns}) SELECT 'llm', {columns} FROM _labels")
    finally:
        con.unregister("_labels")


def replay_journals(con, workspace: Path) -> int:
    """Move the answers of journals left by killed runs into judge_calls; returns how many."""
    folder = workspace / JOURNAL_DIR
    replayed = 0
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        with _active_lock:
            if path.stem in _active_runs:
                continue
        rows = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line being written when the process died: its call was never acknowledged
        if rows:
            with transaction(con):
                _insert_calls(con, rows)
        path.unlink()
        replayed += len(rows)
    return replayed


class RunWriter:
    """One thread that owns a run's writes: journal first, DuckDB in batches (module docstring)."""

    def __init__(self, con, workspace: Path, run_id: str):
        folder = workspace / JOURNAL_DIR
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{run_id}.jsonl"
        with _active_lock:
            _active_runs.add(run_id)
        self._run_id = run_id
        self._journal = open(self.path, "a", encoding="utf-8")
        self._cur = con.cursor()
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._calls: list[dict] = []
        self._labels: list[dict] = []
        self._statements: list[tuple[str, list]] = []
        self._thread = threading.Thread(target=self._loop, name="judge-writer", daemon=True)
        self._thread.start()

    # -- called from the event loop ---------------------------------------------------------------
    def call(self, row: dict) -> None:
        self._put(("call", row))

    def label(self, row: dict) -> None:
        self._put(("label", row))

    def statement(self, sql: str, params: list) -> None:
        self._put(("sql", (sql, params)))

    def close(self) -> None:
        """Flush everything; the journal is removed once its contents are in DuckDB."""
        self._queue.put(None)
        self._thread.join()
        self._cur.close()
        with _active_lock:
            _active_runs.discard(self._run_id)
        if self._error:
            raise PrefstudioError(f"could not write judge results to the workspace ({first_line(self._error)}); "
                                  f"the answers are kept in {self.path}")
        self.path.unlink(missing_ok=True)

    def _put(self, item) -> None:
        if self._error:
            raise PrefstudioError(f"could not write judge results ({first_line(self._error)})")
        self._queue.put(item)

    # -- the writer thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        last_flush = time.monotonic()
        stop = False
        try:
            while not stop:
                timeout = max(0.0, FLUSH_SECONDS - (time.monotonic() - last_flush))
                try:
                    batch = [self._queue.get(timeout=timeout)]
                except queue.Empty:
                    batch = []
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                fresh_calls = []
                for item in batch:
                    if item is None:
                        stop = True
                    elif item[0] == "call":
                        fresh_calls.append(item[1])
                    elif item[0] == "label":
                        self._labels.append(item[1])
                    else:
                        self._statements.append(item[1])
                if fresh_calls:
                    self._journal.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in fresh_calls))
                    self._journal.flush()
                    os.fsync(self._journal.fileno())
                    self._calls.extend(fresh_calls)
                pending = len(self._calls) + len(self._labels) + len(self._statements)
                if pending and (stop or pending >= FLUSH_ROWS or time.monotonic() - last_flush >= FLUSH_SECONDS):
                    self._flush()
                    last_flush = time.monotonic()
                elif not pending:
                    last_flush = time.monotonic()
        except BaseException as exc:  # surfaced to the run by _put()/close()
            self._error = exc
            while not stop:  # drain until close(), so it returns
                stop = self._queue.get() is None
        finally:
            self._journal.close()

    def _flush(self) -> None:
        with transaction(self._cur):
            for sql, params in self._statements:
                self._cur.execute(sql, params)
            if self._calls:
                _insert_calls(self._cur, self._calls)
            if self._labels:
                _insert_annotations(self._cur, self._labels)
        self._calls, self._labels, self._statements = [], [], []
