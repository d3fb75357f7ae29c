"""Opening a file, folder, saved dataset or hf:NAME as a PairReader for ingest.

A source yields rows (field dicts with their location); a format turns each row
into a pair. The format is settled from the first row before reading starts, so
a wrong guess or a missing column fails at once, not half-way through an import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from prefstudio.errors import PrefstudioError
from prefstudio.importers.files import open_file
from prefstudio.importers.formats import FORMATS, PAIR_FIELDS, Format, detect
from prefstudio.ingest import PairReader, RawPair, Skip

FORMAT_NAMES = ("auto", *FORMATS)
MAPPABLE_FIELDS = tuple(dict.fromkeys([*PAIR_FIELDS, *(name for fmt in FORMATS.values() for name in fmt.fields)]))


class SourceReader:
    """A PairReader: the rows of a source, renamed by the mapping and converted by a format."""

    def __init__(self, rows, fmt: Format, mapping: dict[str, str]):
        self.label: str = rows.label
        self.format = fmt.name
        self.default_source: str = fmt.dataset or rows.name
        self._rows = rows
        self._convert = fmt.convert
        self._mapping = mapping

    @property
    def total(self) -> int | None:
        return self._rows.total

    @property
    def position(self) -> int:
        return self._rows.position

    def __iter__(self) -> Iterator[RawPair | Skip]:
        convert, mapping = self._convert, self._mapping
        for item in self._rows:
            if type(item) is Skip:
                yield item
                continue
            location, row, split = item
            record = convert(_renamed(row, mapping) if mapping else row, location)
            if split is not None and type(record) is RawPair:
                record.split = split
            yield record


def open_reader(
    source: str,
    *,
    format: str = "auto",
    mapping: dict[str, str] | None = None,
    hf_split: str | None = None,
    hf_config: str | None = None,
) -> PairReader:
    """Open `source` for import_pairs; raises PrefstudioError (one line) for anything unusable."""
    if format not in FORMAT_NAMES:
        raise PrefstudioError(f"--format {format!r}: unknown format; choose one of: {', '.join(FORMAT_NAMES)}")
    mapping = dict(mapping or {})
    for field, column in mapping.items():
        if field not in MAPPABLE_FIELDS:
            raise PrefstudioError(
                f"--map {field}={column}: no field {field!r} to fill; fields: {', '.join(MAPPABLE_FIELDS)}"
            )
    rows = _open_rows(source, hf_split, hf_config)
    first = _first_row(rows)
    if first is not None:
        for field, column in mapping.items():
            if column not in first:
                raise PrefstudioError(
                    f"{rows.label}: --map {field}={column}: no column {column!r} (found: {_names(first)})"
                )
        first = _renamed(first, mapping)

    if format == "auto":
        if first is None:
            raise PrefstudioError(f"{rows.label}: no records found; nothing to import")
        fmt = detect(first)
        if fmt is None:
            raise PrefstudioError(
                f"{rows.label}: no prompt/chosen/rejected fields (found: {_names(first)}); name them with "
                "--map prompt=COL --map chosen=COL --map rejected=COL, or pick a --format"
            )
    else:
        fmt = FORMATS[format]
        missing = fmt.missing(first) if first is not None else []
        if missing:
            raise PrefstudioError(
                f"{rows.label}: --format {fmt.name} needs the fields {', '.join(missing)} (found: {_names(first)}); "
                "name them with --map FIELD=COLUMN"
            )
    return SourceReader(rows, fmt, mapping)


def _open_rows(source: str, hf_split: str | None, hf_config: str | None):
    if source.startswith("hf:"):
        from prefstudio.importers.hf import open_hub

        name = source[3:].strip()
        if not name:
            raise PrefstudioError(f"{source}: no dataset name; write hf:NAME, e.g. hf:Anthropic/hh-rlhf")
        return open_hub(name, hf_config, hf_split)
    path = Path(source)
    if path.is_dir():
        from prefstudio.importers.hf import open_folder

        return open_folder(path, source, hf_config, hf_split)
    if not path.exists():
        raise PrefstudioError(f"{source}: no such file; for a Hugging Face dataset write hf:NAME")
    if hf_split is not None or hf_config is not None:
        raise PrefstudioError(f"{source}: --hf-split and --hf-config apply to hf:NAME and folders only; drop them")
    return open_file(path, source)


def _first_row(rows) -> dict | None:
    """The first readable row, for detection; the pass is closed again (its file too)."""
    items = iter(rows)
    try:
        for item in items:
            if type(item) is not Skip:
                return item[1]
        return None
    finally:
        items.close()


def _names(row: dict) -> str:
    return ", ".join(row) or "no fields"


def _renamed(row: dict, mapping: dict[str, str]) -> dict:
    """A copy of the row with each mapped column under its field name (the row may be shared)."""
    renamed = {key: value for key, value in row.items() if key not in mapping.values()}
    renamed.update({field: row.get(column) for field, column in mapping.items()})
    return renamed
