"""Whether a job said to be running still has a process: a job killed without a word must not run forever."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None, folder: Path) -> bool:
    """True if `pid` runs, and is this job's process (not a pid reused by another program)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    if not cmdline.strip():
        # Empty: a zombie, or a process just spawned (vfork) whose new arguments the kernel has not set yet.
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    return str(folder).encode() in cmdline or str(folder.resolve()).encode() in cmdline
