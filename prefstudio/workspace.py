"""A workspace: one folder with the DuckDB file, the config and the job folders.

The process that opens a Workspace owns the database (docs/methods.md, "Jobs and
the workspace database"); background jobs get snapshots and write to their job
folder instead. Opening brings in what finished jobs wrote (prefstudio/jobs/sync.py),
so every CLI command and the app start from current results.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from prefstudio import schema
from prefstudio.config import CONFIG_NAME, WorkspaceConfig, load_config, save_config
from prefstudio.errors import PrefstudioError, WorkspaceBusy, first_line
from prefstudio.jobs.sync import bring_in
from prefstudio.lock import WorkspaceLock

DB_NAME = "workspace.duckdb"
JOBS_DIR = "jobs"


def is_workspace(path: Path) -> bool:
    return (path / DB_NAME).exists() and (path / CONFIG_NAME).exists()


class Workspace:
    """An open workspace. Use as a context manager, or call close()."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, lock: WorkspaceLock, config: WorkspaceConfig):
        self.path = path
        self.con = con
        self.config = config
        self._lock = lock

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def init(cls, path: str | Path, name: str | None = None) -> "Workspace":
        path = Path(path).resolve()
        if is_workspace(path):
            raise PrefstudioError(f"{path}: already a workspace; open it with 'prefstudio open {path}'")
        if path.exists() and not path.is_dir():
            raise PrefstudioError(f"{path}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        (path / JOBS_DIR).mkdir(exist_ok=True)
        save_config(path / CONFIG_NAME, WorkspaceConfig(name=name or path.name))
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> "Workspace":
        path = Path(path).resolve()
        if not path.is_dir():
            raise PrefstudioError(f"{path}: no such workspace folder (make one with 'prefstudio init {path}')")
        config = load_config(path / CONFIG_NAME)
        lock = WorkspaceLock(path)
        lock.acquire()
        con = None
        try:
            con = _connect(path / DB_NAME)
            schema.migrate(con, str(path / DB_NAME))
            (path / JOBS_DIR).mkdir(exist_ok=True)
            ws = cls(path, con, lock, config)
            bring_in(ws, con)  # finished jobs' states and outputs: once, here, for every front end
        except BaseException:
            if con is not None:
                con.close()
            lock.release()
            raise
        return ws

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        self._lock.release()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- small queries every front end needs ----------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def jobs_dir(self) -> Path:
        return self.path / JOBS_DIR

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for another thread: DuckDB connections are not shared across threads."""
        return self.con.cursor()

    def counts_by_source(self) -> dict[str, int]:
        rows = self.con.execute(
            "SELECT source, count(*) FROM pairs GROUP BY source ORDER BY source"
        ).fetchall()
        return {source: n for source, n in rows}

    def count_pairs(self) -> int:
        return self.con.execute("SELECT count(*) FROM pairs").fetchone()[0]

    def save_config(self) -> None:
        save_config(self.path / CONFIG_NAME, self.config)


def _connect(db_path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db_path))
    except duckdb.IOException as exc:
        # Another program (not prefstudio: it would have hit our lock first), e.g. the duckdb CLI.
        match = re.search(r"PID (\d+)", str(exc))
        if match:
            raise WorkspaceBusy(
                f"{db_path}: locked by process {match.group(1)} (not prefstudio); close it and try again",
                pid=int(match.group(1)),
            ) from None
        raise PrefstudioError(f"{db_path}: cannot open ({first_line(exc)})") from None
    except duckdb.Error as exc:
        raise PrefstudioError(f"{db_path}: not a usable DuckDB file ({first_line(exc)})") from None
