"""Whether a folder can be written now, asked by writing: permission bits lie to root and on read-only mounts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cannot_write(folder: Path) -> str | None:
    """Why a file cannot be made in `folder` now (the system's words), or None when it can."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
