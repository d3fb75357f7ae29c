"""Numbered Parquet part files: how a job writes its rows so that a kill costs only the rows not yet written.

A part is written under a temporary name, then renamed: each `part-NNNNNN.parquet` is
whole or absent. A resumed job numbers its next part after the ones there; the
database's holder reads all of them at ingest.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefstudio.jobs.layout import CHECKPOINTS

PATTERN = "part-*.parquet"


def part_files(folder: Path) -> list[Path]:
    """The complete parts in `folder`, in the order they were written."""
    return sorted(folder.glob(PATTERN))


class PartWriter:
    """Writes Arrow tables as the next numbered parts of `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.next = len(part_files(folder))

    def write(self, table) -> Path:
        import pyarrow.parquet as pq

        tmp = self.folder / f".part-{self.next:06d}.tmp"
        final = self.folder / f"part-{self.next:06d}.parquet"
        pq.write_table(table, tmp)
        tmp.replace(final)
        self.next += 1
        return final


# -- whole or not ----------------------------------------------------------------------------------------
MAGIC = b"PAR1"  # a Parquet file starts and ends with it; its footer's length sits just before the end
_checked: dict[tuple[str, int, int], str | None] = {}  # (path, size, mtime) -> damage: a done job's files rarely change


def damage(path: Path) -> str | None:
    """Why `path` is not a whole Parquet file (cut short, or not Parquet at all); None when it is.

    Reads 12 bytes, not the file: the app asks this of every done job's files once a second.
    """
    try:
        info = path.stat()
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key in _checked:
            return _checked[key]
        with open(path, "rb") as file:
            head = file.read(4)
            file.seek(max(0, info.st_size - 8))
            tail = file.read(8)
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    size = info.st_size
    if head != MAGIC:
        why = f"{path.name} is not a Parquet file ({size:,} bytes)"
    elif size < 12 or tail[4:] != MAGIC or int.from_bytes(tail[:4], "little") + 12 > size:
        why = f"{path.name} is cut short ({size:,} bytes, no whole Parquet footer)"
    else:
        why = None
    _checked[key] = why
    return why


def damaged_file(job_dir: Path) -> str | None:
    """The first of a job's Parquet files (inputs, parts) that is not whole, as "path/in/job: why"; None if all are."""
    for root, dirs, files in os.walk(job_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != CHECKPOINTS)
        for name in sorted(files):
            if name.endswith(".parquet") and not name.startswith("."):
                path = Path(root) / name
                if why := damage(path):
                    relative = path.relative_to(job_dir)
                    return why.replace(path.name, str(relative), 1)
    return None
