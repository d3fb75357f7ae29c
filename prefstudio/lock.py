"""One process per workspace.

DuckDB allows a single read-write process per file; an advisory lock file with
the holder's pid lets us say *who* holds it. flock is released by the kernel
when the holder dies, so a kill -9 never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from prefstudio.errors import PrefstudioError, WorkspaceBusy

LOCK_NAME = ".prefstudio.lock"


class WorkspaceLock:
    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PrefstudioError(f"{self.path}: cannot take the workspace lock ({exc.strerror}); prefstudio needs "
                                  "write access to the workspace folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"prefstudio process {holder}" if holder else "another prefstudio process"
            raise WorkspaceBusy(
                f"{self.path.parent}: workspace is in use by {who}; close it there (or wait for it) and try again",
                pid=holder,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
