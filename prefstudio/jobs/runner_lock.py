"""One runner per job folder, wherever it runs: a lock file made atomically and kept fresh by the heartbeat.

`python -m prefstudio.jobs FOLDER` (its main rank) takes FOLDER/.runner.lock before it touches
anything; a second runner, on this host or another, finds it fresh and stops at once. The file is
made whole under a temporary name and hard-linked into place, which is atomic on NFS and the other
shared file systems a cluster mounts (O_CREAT|O_EXCL where links are not allowed). It holds the
runner's heartbeat (liveness.py) and a token; the heartbeat rewrites it. A lock whose holder is
gone (its process, where it is visible; its heartbeat's age elsewhere) is stale, and is broken
under a second lock file, so two runners that find it stale at once cannot both take it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from prefstudio.errors import PrefstudioError
from prefstudio.jobs import liveness
from prefstudio.jobs.layout import RUNNER_LOCK


def lock_path(folder: Path) -> Path:
    return folder / RUNNER_LOCK


def read_lock(folder: Path) -> dict | None:
    """The lock's content; None when there is none, or it cannot be read (being replaced, or damaged)."""
    try:
        data = json.loads(lock_path(folder).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fresh(folder: Path, data: dict | None) -> bool:
    if data is None:  # unreadable: fresh while the file itself is young
        try:
            return time.time() - lock_path(folder).stat().st_mtime < liveness.stale_after()
        except OSError:
            return False
    return liveness.beat_alive(data)


def holder(folder: Path) -> dict | None:
    """The heartbeat of the runner that holds the folder now; None when no live runner does."""
    data = read_lock(folder)
    return (data or {"host": "?"}) if _fresh(folder, data) else None


class RunnerLock:
    """The lock of one runner on one job folder: acquire, refresh with each heartbeat, release."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = lock_path(folder)
        self.token = secrets.token_hex(8)

    def _content(self) -> str:
        return json.dumps({**liveness.heartbeat(), "token": self.token})

    def acquire(self) -> None:
        """Take the folder, breaking a stale lock; PrefstudioError naming the holder when a live runner has it."""
        for _ in range(5):
            tmp = self.folder / f"{RUNNER_LOCK}.{self.token}"
            tmp.write_text(self._content())
            try:
                try:
                    os.link(tmp, self.path)
                    return
                except FileExistsError:
                    pass
                except OSError:  # a file system without hard links
                    try:
                        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    except FileExistsError:
                        pass
                    else:
                        with os.fdopen(fd, "w") as file:
                            file.write(self._content())
                        return
            finally:
                tmp.unlink(missing_ok=True)
            current = read_lock(self.folder)
            if _fresh(self.folder, current):
                raise PrefstudioError(
                    f"{self.folder}: this job already has a runner: {liveness.describe(current or {})}; "
                    "a job runs once: wait for it, or cancel it with `prefstudio jobs WORKSPACE --cancel ID`")
            self._break(current)
        raise PrefstudioError(f"{self.path}: could not take the job's lock (other runners keep taking it); try again")

    def _break(self, stale: dict | None) -> None:
        """Remove the stale lock `stale`, unless another runner took the folder meanwhile."""
        breaker = self.path.with_name(RUNNER_LOCK + ".break")
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:  # another runner is breaking it; its own lock goes stale if it died doing so
                if time.time() - breaker.stat().st_mtime > liveness.stale_after():
                    breaker.unlink(missing_ok=True)
            except OSError:
                pass
            time.sleep(0.05)
            return
        try:
            if stale is None:  # unreadable when read: break it only if it still is, and is old (not just linked)
                try:
                    old = time.time() - self.path.stat().st_mtime >= liveness.stale_after()
                except OSError:
                    old = False
                if old and read_lock(self.folder) is None:
                    self.path.unlink(missing_ok=True)
            elif read_lock(self.folder) == stale:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
            breaker.unlink(missing_ok=True)

    def refresh(self) -> bool:
        """Write a new heartbeat into the lock; False if the lock is no longer this runner's."""
        current = read_lock(self.folder)
        if current is None or current.get("token") != self.token:
            return False
        tmp = self.folder / f"{RUNNER_LOCK}.{self.token}"
        tmp.write_text(self._content())
        os.replace(tmp, self.path)
        return True

    def release(self) -> None:
        current = read_lock(self.folder)
        if current is not None and current.get("token") == self.token:
            self.path.unlink(missing_ok=True)
