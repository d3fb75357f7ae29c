"""A workspace: one folder with the DuckDB file, the config, the job folders and the backups.

The process that opens a Workspace owns the database (docs/methods.md, "Jobs and
the workspace database"); background jobs get snapshots and write to their job
folder instead. Opening brings in what finished jobs wrote (prefstudio/jobs/sync.py),
so every CLI command and the app start from current results.

Opening also checks that the file is whole (a damaged one is one line naming the
newest backup and the restore command, never an empty-looking workspace), backs
the database up before a schema migration, and once a day (prefstudio/backup.py).
"""

from __future__ import annotations

import datetime
import logging
import re
import shlex
from pathlib import Path

import duckdb

from prefstudio import backup, schema
from prefstudio.config import CONFIG_NAME, WorkspaceConfig, load_config, save_config
from prefstudio.errors import PrefstudioError, WorkspaceBusy, first_line
from prefstudio.jobs.sync import bring_in
from prefstudio.lock import WorkspaceLock
from prefstudio.paths import cannot_write

DB_NAME = "workspace.duckdb"
JOBS_DIR = "jobs"

FULL_CHECK_MAX_BYTES = 64 * 2**20
"""Files up to this size are read whole on open, so a flipped byte anywhere is found before any command uses it.

Reading every block (DuckDB checks each block's checksum as it loads it) added 14-17 ms to opening the
demo's 2.9 MB, and 0.15-0.33 s to a 67 MB file of 200,000 pairs, on 2 cores (idle - busy). A larger file
gets the cheap checks only (every table counted, the file's length against its blocks in use); its daily
backup reads it whole, and a later query that meets a damaged block gives the same one line (damage_error)."""

log = logging.getLogger(__name__)


class DatabaseDamaged(PrefstudioError):
    """The database file's bytes are wrong: its message names the newest backup and the restore command."""


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
        if (path / CONFIG_NAME).exists():
            raise PrefstudioError(f"{path}: holds a workspace whose {DB_NAME} is missing; "
                                  f"{_recovery(path, path, missing=True)} (init makes no database in its place)")
        if path.exists() and not path.is_dir():
            raise PrefstudioError(f"{path}: exists and is not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / JOBS_DIR).mkdir(exist_ok=True)
            save_config(path / CONFIG_NAME, WorkspaceConfig(name=name or path.name))
        except OSError as exc:
            raise PrefstudioError(_cannot_make(path, exc)) from None
        try:
            ws = cls._open(path, path, create=True, daily_backup=False)
        except BaseException:
            (path / CONFIG_NAME).unlink(missing_ok=True)  # no half workspace that a later init would refuse
            raise
        ws.con.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)",
                       [datetime.datetime.now().replace(microsecond=0).isoformat()])
        return ws

    @classmethod
    def open(cls, path: str | Path, daily_backup: bool = True) -> "Workspace":
        """Open the workspace at `path`; `daily_backup=False` leaves a due daily backup to the caller (the app)."""
        return cls._open(Path(path).resolve(), Path(path), daily_backup=daily_backup)

    @classmethod
    def _open(cls, path: Path, given: Path, create: bool = False, daily_backup: bool = True) -> "Workspace":
        if not path.is_dir():
            if path.exists():
                raise PrefstudioError(f"{path}: is a file, not a workspace folder")
            raise PrefstudioError(f"{path}: no such workspace folder (make one with 'prefstudio init {path}')")
        config = load_config(path / CONFIG_NAME)
        db_path = path / DB_NAME
        if not create and not db_path.exists():
            raise PrefstudioError(f"{db_path}: missing beside {path / CONFIG_NAME}; {_recovery(path, given, True)} "
                                  "(no empty database is made in its place)")
        jobs_dir = path / JOBS_DIR
        if jobs_dir.exists() and not jobs_dir.is_dir():
            raise PrefstudioError(f"{jobs_dir}: is a file, but prefstudio keeps one folder per job there; "
                                  f"move it away (mv {shlex.quote(str(jobs_dir))} {shlex.quote(str(jobs_dir))}.file) "
                                  "and try again")
        _check_writable(path)
        lock = WorkspaceLock(path)
        lock.acquire()
        con = None
        try:
            con = _connect(db_path, given)
            _check_whole(con, db_path, given)
            schema.migrate(con, str(db_path), before=lambda found, latest: _backup_before_migration(
                con, path, found, latest))
            jobs_dir.mkdir(exist_ok=True)
            ws = cls(path, con, lock, config)
            bring_in(ws, con)  # finished jobs' states and outputs: once, here, for every front end
            if daily_backup:
                ws._daily_backup_or_warn(given)
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

    # -- backups ---------------------------------------------------------------------
    @property
    def backups_dir(self) -> Path:
        return self.path / backup.BACKUPS_DIR

    def back_up(self, into: Path | None = None, con: duckdb.DuckDBPyConnection | None = None) -> backup.Backup:
        """A backup made now (`prefstudio backup`), in `into` (default: the workspace's backups/)."""
        return self._make_backup("manual", into or self.backups_dir, con)

    def backup_if_due(self, con: duckdb.DuckDBPyConnection | None = None) -> backup.Backup | None:
        """The daily backup, if [backup] daily is on and the newest backup is a day old; old daily ones rotate out."""
        if not self.config.backup.daily:
            return None
        row = (con or self.con).execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
        created_at = datetime.datetime.fromisoformat(row[0]) if row else None
        if not backup.daily_due(self.backups_dir, created_at):
            return None
        made = self._make_backup("daily", self.backups_dir, con)
        backup.rotate(self.backups_dir, self.config.backup.keep)
        return made

    def _make_backup(self, kind: str, into: Path, con: duckdb.DuckDBPyConnection | None) -> backup.Backup:
        try:
            return backup.make_backup(con or self.con, into, kind)
        except duckdb.Error as exc:
            if backup.is_damage(exc):
                raise damaged(self.path, self.path, exc) from None
            raise

    def _daily_backup_or_warn(self, given: Path) -> None:
        try:
            self.backup_if_due()
        except PrefstudioError as exc:
            if isinstance(exc, DatabaseDamaged):
                raise
            log.warning("prefstudio: warning: no daily backup of %s: %s", given, exc)

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


def restore(path: str | Path, name: str | Path | None = None) -> tuple[backup.Backup, Path | None]:
    """Replace the workspace's database with a backup (default: the newest); returns it and where the old file went.

    Refused while the workspace is open elsewhere: the restore holds the workspace lock throughout.
    """
    folder = Path(path).resolve()
    if not folder.is_dir() or not (folder / CONFIG_NAME).exists():
        raise PrefstudioError(f"{folder}: not a workspace folder (no {CONFIG_NAME})")
    chosen = backup.find_backup(folder / backup.BACKUPS_DIR, name)
    _check_writable(folder)
    lock = WorkspaceLock(folder)
    lock.acquire()
    try:
        return chosen, backup.restore_backup(chosen, folder / DB_NAME)
    finally:
        lock.release()


def damaged(path: Path, given: Path, exc: BaseException) -> DatabaseDamaged:
    """The one line for a database file whose bytes are wrong: what is wrong, and how to get the data back."""
    db_path = given / DB_NAME
    if isinstance(exc, duckdb.InternalException):  # bytes that slipped past the checksum (backup.is_damage)
        return DatabaseDamaged(f"{db_path}: DuckDB failed reading the database ({first_line(exc)}); the file may be "
                               f"damaged: {_recovery(path, given)}")
    return DatabaseDamaged(f"{db_path}: the database file is damaged ({_what_is_wrong(path / DB_NAME, exc)}); "
                           f"{_recovery(path, given)}")


def damage_error(path: str | Path, exc: BaseException) -> DatabaseDamaged | None:
    """damaged()'s line when `exc` is DuckDB meeting a damaged file in the workspace at `path`, else None."""
    if not backup.is_damage(exc):
        return None
    return damaged(Path(path).resolve(), Path(path), exc)


def _recovery(path: Path, given: Path, missing: bool = False) -> str:
    newest = backup.newest_backup(path / backup.BACKUPS_DIR)
    if newest is None and missing:
        return (f"there is no backup in {given / backup.BACKUPS_DIR} to restore: if the file was moved, move it "
                "back")
    if newest is None:
        return (f"there is no backup in {given / backup.BACKUPS_DIR} to restore: move the file aside, "
                "then init a new workspace and import the pairs again")
    return f"restore the newest backup ({newest.when}) with `prefstudio restore {shlex.quote(str(given))}`"


def _what_is_wrong(db_path: Path, exc: BaseException) -> str:
    text = str(exc)
    try:
        size = db_path.stat().st_size
    except OSError:
        size = None
    if size == 0:
        return "it is empty, 0 bytes"
    if "not a valid DuckDB database file" in text:
        return "it does not start like a DuckDB file"
    if "Could not read enough bytes" in text or "shorter than" in text:
        return f"it is cut short: {size:,} bytes" if size is not None else "it is cut short"
    location = re.search(r"checksum.*location (\d+)", text)
    if location:
        return f"a block at byte {int(location.group(1)):,} fails its checksum"
    return first_line(exc)


def _check_whole(con: duckdb.DuckDBPyConnection, db_path: Path, given: Path) -> None:
    """Raise damaged() unless every table can be read (FULL_CHECK_MAX_BYTES) and the file holds its used blocks."""
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        for table in tables:
            con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        # Each block in use has its own place in the file (free ones need not: the file may end before them).
        block_size, used_blocks = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
        size = db_path.stat().st_size
        if size < block_size * used_blocks:
            raise duckdb.IOException(f"shorter than its {used_blocks} blocks of {block_size} bytes")
        if size <= FULL_CHECK_MAX_BYTES:
            for table in tables:
                con.execute(f'SELECT bit_xor(hash(t)) FROM "{table}" t').fetchone()
    except duckdb.Error as exc:
        raise damaged(db_path.parent, given, exc) from None


def _backup_before_migration(con: duckdb.DuckDBPyConnection, path: Path, found: int, latest: int) -> None:
    try:
        backup.make_backup(con, path / backup.BACKUPS_DIR, "migration")
    except PrefstudioError as exc:
        raise PrefstudioError(f"{path / DB_NAME}: not migrating schema v{found} to v{latest} without a backup: "
                              f"{exc}") from None


def _check_writable(path: Path) -> None:
    """Refuse a folder prefstudio cannot write to now, rather than fail half-way through a command."""
    reason = cannot_write(path)
    if reason:
        raise PrefstudioError(f"{path}: the workspace folder is read-only ({reason}); prefstudio needs write "
                              "access to it (its database, lock and jobs/ live there): make it writable, or copy "
                              "the workspace to a folder you can write to")


def _cannot_make(path: Path, exc: OSError) -> str:
    """Why a workspace cannot be made at `path`: the file in the way, or the folder that is not writable."""
    blocking = path
    while not blocking.exists() and blocking != blocking.parent:
        blocking = blocking.parent
    if blocking != path and not blocking.is_dir():
        return f"{path}: cannot make a workspace there: {blocking} is a file, not a folder; choose another path"
    if isinstance(exc, PermissionError):
        return (f"{path}: cannot make a workspace there: {blocking} is not writable ({exc.strerror}); "
                "choose a folder you can write to")
    return f"{path}: cannot make a workspace there ({exc.strerror or exc})"


def _connect(db_path: Path, given: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db_path))
    except duckdb.Error as exc:
        if backup.is_damage(exc):
            raise damaged(db_path.parent, given, exc) from None
        # Another program (not prefstudio: it would have hit our lock first), e.g. the duckdb CLI.
        match = re.search(r"PID (\d+)", str(exc))
        if isinstance(exc, duckdb.IOException) and match:
            raise WorkspaceBusy(
                f"{db_path}: locked by process {match.group(1)} (not prefstudio); close it and try again",
                pid=int(match.group(1)),
            ) from None
        if isinstance(exc, duckdb.IOException):
            raise PrefstudioError(f"{db_path}: cannot open ({first_line(exc)})") from None
        raise PrefstudioError(f"{db_path}: not a usable DuckDB file ({first_line(exc)})") from None
