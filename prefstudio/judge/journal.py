"""Durable, cheap writes for a judge run: each answer fsynced to a journal first, DuckDB in batches.

Every answer is paid for, so nothing happens to it before it is on disk: the
run hands it to the journal thread, which appends it to the run's journal file
(`judge/<run>.jsonl` in the workspace), fsyncs (with whatever else arrived at
the same time) and only then acknowledges it; the run holds the call's
concurrency slot until then, so at most `concurrency` answers are ever paid
for and not yet kept. The journal thread does nothing else: when it shared a
thread with the DuckDB writes, answers waited in memory behind each batch
insert, and a kill -9 lost (and a rerun paid again) every one of them.

A DuckDB statement costs more CPU than an API call does on a busy two-core
client, so answers and labels move into the database in batches on a second
thread, every FLUSH_SECONDS or FLUSH_ROWS and at the end, in one transaction
each. A journal left behind by a killed process is replayed into `judge_calls`
by the next run before it plans, so a rerun pays for nothing twice; the labels
of such pairs are then made from the cached answers, with no call.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from concurrent.futures import Future
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
    ("expected_level", pa.float64()),  # the soft label, where both calls had logprobs (judge/verdict.py)
])

_active_runs: set[str] = set()  # journals of runs going on in this process: never replayed under them
_active_lock = threading.Lock()


def now_text() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def _insert_calls(con, rows: list[dict]) -> None:
    """The newest answer for a key wins: a re-asked parse error (`annotate --retry-errors`) replaces the old one.

    Journals are replayed before any run plans, so an older answer never arrives after a newer one.
    """
    newest = list({row["cache_key"]: row for row in rows}.values())  # one statement may not touch a key twice
    # verdict_probs: JSON text where the call had logprobs (absent from older journals: NULL)
    con.register("_calls", pa.Table.from_pylist(newest, schema=CALL_SCHEMA.append(pa.field("verdict_probs",
                                                                                          pa.string()))))
    try:
        con.execute(
            f"INSERT OR REPLACE INTO judge_calls ({', '.join(CALL_COLUMNS)}, verdict_probs) "
            f"SELECT {', '.join(CALL_COLUMNS[:-1])}, created_at::TIMESTAMP, verdict_probs::JSON FROM _calls"
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
    for path in sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []:
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


def _fsync_folder(folder: Path) -> None:
    """Make a new file's name durable, not only its contents (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunWriter:
    """Two threads own a run's writes: the journal (append, fsync, acknowledge) and DuckDB (batches)."""

    def __init__(self, con, workspace: Path, run_id: str):
        folder = workspace / JOURNAL_DIR
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{run_id}.jsonl"
        with _active_lock:
            _active_runs.add(run_id)
        self._run_id = run_id
        self._journal = open(self.path, "a", encoding="utf-8")
        _fsync_folder(folder)
        self._cur = con.cursor()
        self._answers: queue.Queue = queue.Queue()  # (row, Future) for the journal thread
        self._rows: queue.Queue = queue.Queue()  # ("call" | "label" | "sql", ...) for the DuckDB thread
        self._journal_error: BaseException | None = None
        self._db_error: BaseException | None = None
        self._calls: list[dict] = []
        self._labels: list[dict] = []
        self._statements: list[tuple[str, list]] = []
        self._journal_thread = threading.Thread(target=self._journal_loop, name="judge-journal", daemon=True)
        self._db_thread = threading.Thread(target=self._db_loop, name="judge-writer", daemon=True)
        self._journal_thread.start()
        self._db_thread.start()

    # -- called from the run ----------------------------------------------------------------------
    def answer(self, row: dict) -> Future:
        """Hand over a paid answer; the Future completes once it is on disk (its error if it could not be).

        Await it (`asyncio.wrap_future`) before anything else happens to the answer. A DuckDB failure
        does not stop it: the journal keeps what was paid for.
        """
        if self._journal_error:
            raise PrefstudioError(f"could not write to {self.path} ({first_line(self._journal_error)})")
        done: Future = Future()
        self._answers.put((row, done))
        return done

    def label(self, row: dict) -> None:
        self._put(("label", row))

    def statement(self, sql: str, params: list) -> None:
        self._put(("sql", (sql, params)))

    def close(self) -> None:
        """Flush everything; the journal is removed once its contents are in DuckDB."""
        self._answers.put(None)
        self._journal_thread.join()
        self._rows.put(None)
        self._db_thread.join()
        self._cur.close()
        with _active_lock:
            _active_runs.discard(self._run_id)
        if self._journal_error:
            raise PrefstudioError(f"could not write judge answers to {self.path} ({first_line(self._journal_error)}); "
                                  f"free some space or check the folder's permissions, then rerun")
        if self._db_error:
            raise PrefstudioError(f"could not write judge results to the workspace ({first_line(self._db_error)}); "
                                  f"the answers are kept in {self.path}")
        self.path.unlink(missing_ok=True)

    def _put(self, item) -> None:
        error = self._journal_error or self._db_error
        if error:
            raise PrefstudioError(f"could not write judge results ({first_line(error)})")
        self._rows.put(item)

    # -- the journal thread -----------------------------------------------------------------------
    def _journal_loop(self) -> None:
        try:
            stop = False
            while not stop:
                batch = [self._answers.get()]
                while not self._answers.empty():
                    batch.append(self._answers.get_nowait())
                stop = None in batch
                # (row, whether its caller still waits): one that gave up (a cancelled run) still paid, so is kept
                batch = [(row, done, done.set_running_or_notify_cancel()) for row, done in
                         (item for item in batch if item is not None)]
                if not batch:
                    continue
                try:
                    if self._journal_error:
                        raise self._journal_error
                    self._journal.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row, _, _ in batch))
                    self._journal.flush()
                    os.fsync(self._journal.fileno())
                except BaseException as exc:  # a full disk: the run stops, the callers hear it
                    self._journal_error = self._journal_error or exc
                    for _, done, waits in batch:
                        if waits:
                            done.set_exception(PrefstudioError(f"could not write to {self.path} ({first_line(exc)})"))
                    continue
                for row, done, waits in batch:
                    self._rows.put(("call", row))  # before the acknowledgement: the pair's label comes after it
                    if waits:
                        done.set_result(None)
        finally:
            self._journal.close()

    # -- the DuckDB thread ------------------------------------------------------------------------
    def _db_loop(self) -> None:
        last_flush = time.monotonic()
        stop = False
        try:
            while not stop:
                timeout = max(0.0, FLUSH_SECONDS - (time.monotonic() - last_flush))
                try:
                    batch = [self._rows.get(timeout=timeout)]
                except queue.Empty:
                    batch = []
                while not self._rows.empty():
                    batch.append(self._rows.get_nowait())
                for item in batch:
                    if item is None:
                        stop = True
                    elif item[0] == "call":
                        self._calls.append(item[1])
                    elif item[0] == "label":
                        self._labels.append(item[1])
                    else:
                        self._statements.append(item[1])
                pending = len(self._calls) + len(self._labels) + len(self._statements)
                if pending and (stop or pending >= FLUSH_ROWS or time.monotonic() - last_flush >= FLUSH_SECONDS):
                    self._flush()
                    last_flush = time.monotonic()
                elif not pending:
                    last_flush = time.monotonic()
        except BaseException as exc:  # surfaced to the run by _put()/close(); the journal keeps the answers
            self._db_error = exc
            while not stop:  # drain until close(), so it returns
                stop = self._rows.get() is None

    def _flush(self) -> None:
        with transaction(self._cur):
            for sql, params in self._statements:
                self._cur.execute(sql, params)
            if self._calls:
                _insert_calls(self._cur, self._calls)
            if self._labels:
                _insert_annotations(self._cur, self._labels)
        self._calls, self._labels, self._statements = [], [], []
