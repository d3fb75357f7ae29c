"""Bringing the job folders into the workspace database: the one place it happens.

Jobs never open the database, so whoever holds it brings their news in: the jobs
table follows the folders' states, and every finished job's output (rewards,
samples) goes into its tables exactly once — a marker file says it went in.
`Workspace.open` does it, so every CLI command and the app start from current
results; the app's Jobs, Evaluate and Best-of-N screens do it again when they see
a job finish. Nothing new is cheap: one small file read per job, and database
writes only for what changed.

A failed ingest does not fail the open (a broken output must not lock anyone out
of the workspace): its reason goes into the folder, the job's status shows it,
and the next open tries again. A damaged job (a Parquet file cut short: status.py)
is not tried at all until it is whole. Folders a killed launch left half-made are
removed once they are an hour old.
"""

from __future__ import annotations

import json
import threading
import tomllib

from prefstudio.errors import first_line
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import INGEST_FAILED, INGESTED, read_config
from prefstudio.jobs.queue import remove_abandoned
from prefstudio.jobs.status import JobStatus, list_jobs, read_status
from prefstudio.db import transaction

_one_at_a_time = threading.Lock()  # the app's screens bring in from worker threads


def bring_in(ws, con=None) -> list[JobStatus]:
    """Copy the jobs' states into the jobs table and ingest the finished outputs not in yet; every job's status."""
    if con is None:
        with ws.cursor() as own:
            return bring_in(ws, own)
    with _one_at_a_time:
        remove_abandoned(ws.jobs_dir)
        statuses = list_jobs(ws.jobs_dir)
        _follow_states(con, statuses)
        return [_ingest(ws, con, s) if _waiting(s) else s for s in statuses]


def _follow_states(con, statuses: list[JobStatus]) -> None:
    """Add the rows of folders that have none (a launch killed between its rename and its row), and update
    those whose state, start or end differs from the folder's, in one transaction."""
    stored = {job_id: (state, started, finished) for job_id, state, started, finished in con.execute(
        "SELECT id, state, started_at IS NOT NULL, finished_at IS NOT NULL FROM jobs").fetchall()}
    missing = [s for s in statuses if s.id not in stored]
    changed = [s for s in statuses
               if s.id in stored and stored[s.id] != (s.state, s.started is not None, s.finished is not None)]
    if not changed and not missing:
        return
    with transaction(con):
        if missing:
            con.executemany(
                "INSERT INTO jobs (id, kind, name, state, config, created_at) "
                "VALUES (?, ?, ?, 'queued', ?, to_timestamp(?)::TIMESTAMP)",
                [[s.id, s.kind, s.name or s.id, json.dumps(_config(s)), s.created] for s in missing])
        changed += missing
        con.executemany(
            "UPDATE jobs SET state = ?, started_at = to_timestamp(?)::TIMESTAMP, "
            "finished_at = to_timestamp(?)::TIMESTAMP WHERE id = ?",
            [[s.state, s.started, s.finished, s.id] for s in changed])


def _config(status: JobStatus) -> dict:
    try:
        return read_config(status.folder)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _waiting(status: JobStatus) -> bool:
    """A done job whose kind has output for the database, not brought in yet."""
    kind = kinds.KINDS.get(status.kind)
    return (status.state == "done" and kind is not None and kind.ingester is not None
            and not (status.folder / INGESTED).exists())


def _ingest(ws, con, status: JobStatus) -> JobStatus:
    """Run the kind's ingester (in one transaction, or safe to repeat); mark the folder, or say why not."""
    failed = status.folder / INGEST_FAILED
    try:
        kinds.resolve(kinds.KINDS[status.kind].ingester)(ws, status.folder, con)
    except Exception as exc:  # noqa: BLE001 - any broken output: kept for the user, tried again at the next open
        try:
            failed.write_text(f"{type(exc).__name__}: {first_line(exc)}", encoding="utf-8")
        except OSError:  # a read-only or vanished folder: the open goes on, the next one tries again
            return status
        return read_status(status.folder)
    try:
        (status.folder / INGESTED).touch()
        failed.unlink(missing_ok=True)
    except OSError:  # ingested all the same; the ingesters are safe to repeat at the next open
        pass
    return status
