"""Whether a job said to be running still runs, wherever it runs: a job killed without a word must not run forever,
and one running on another host must not read as dead.

The job process writes a heartbeat (host, pid namespace, pid, the process's start time, the time) into its
status file and its runner lock every `interval()` seconds. Where the heartbeat was written (the same host
and pid namespace) the process itself answers, at once: a kill -9 shows straight away. Anywhere else (another
node of a cluster, a container) only the heartbeat's age can: it is fresh for STALE_BEATS beats, a margin for
a slow shared disk and for clocks that differ between hosts by less than that.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

INTERVAL_ENV = "PREFSTUDIO_HEARTBEAT_S"  # seconds between beats; tests make it short
DEFAULT_INTERVAL_S = 10.0
STALE_BEATS = 6  # a heartbeat older than this many intervals (60 s by default) is from a job that is gone


def interval() -> float:
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def stale_after() -> float:
    return STALE_BEATS * interval()


def this_host() -> str:
    return socket.gethostname()


def pid_namespace() -> str | None:
    """This process's pid namespace ("pid:[4026531836]"); a container has its own. None where /proc has none."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot: with the pid, it names one process, never a reused pid.

    None when there is no such process, or only its zombie (killed, not yet reaped by its parent).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return None


def heartbeat() -> dict:
    """This process's heartbeat, as written into the status file and the runner lock."""
    pid = os.getpid()
    return {"host": this_host(), "pidns": pid_namespace(), "pid": pid, "start": start_time(pid), "at": time.time()}


def age(beat: dict) -> float:
    try:
        return time.time() - float(beat.get("at") or 0)
    except (TypeError, ValueError):
        return float("inf")


def on_this_host(beat: dict) -> bool:
    return beat.get("host") == this_host()


def visible_here(beat: dict) -> bool:
    """True if the beating process would be visible here: the same host and pid namespace."""
    return on_this_host(beat) and beat.get("pidns") is not None and beat.get("pidns") == pid_namespace()


def beat_alive(beat: dict) -> bool:
    """True if the process that wrote `beat` still runs: asked directly where it is visible, else by the beat's age."""
    if visible_here(beat) and beat.get("start") and isinstance(beat.get("pid"), int):
        return start_time(beat["pid"]) == beat["start"]
    return age(beat) < stale_after()


def describe(beat: dict) -> str:
    """Where a heartbeat comes from and how old it is, for a message: "node7 (pid 4242, last heartbeat 3 s ago)"."""
    seconds = age(beat)
    ago = ("never" if seconds == float("inf") else f"{seconds:.0f} s ago" if seconds < 120
           else f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.0f} h ago")
    return f"{beat.get('host') or '?'} (pid {beat.get('pid') or '?'}, last heartbeat {ago})"


def pid_alive(pid: int | None, folder: Path) -> bool:
    """True if `pid` runs, and is this job's process (not a pid reused by another program).

    For a job process started here that has not written its first heartbeat yet.
    """
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
