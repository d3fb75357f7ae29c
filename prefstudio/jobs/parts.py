"""Numbered Parquet part files: how a job writes its rows so that a kill costs only the rows not yet written.

A part is written under a temporary name, then renamed: each `part-NNNNNN.parquet` is
whole or absent. A resumed job numbers its next part after the ones there; the
database's holder reads all of them at ingest.
"""

from __future__ import annotations

from pathlib import Path

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
