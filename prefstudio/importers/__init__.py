"""Opening a file, folder, saved dataset or hf:NAME as a PairReader for ingest.

A source yields rows (field dicts with their location); a format turns each row
into a pair. The format is settled from the first row before reading starts, so
a wrong guess or a missing column fails at once, not half-way through an import.

A file with a preference column (AlpacaEval, MT-bench, judge outputs) is read
by a format that orients each pair by it, or with --winner COL; it is never
suggested, nor allowed without --keep-order, to map its two responses to
chosen/rejected, which would keep the file's order whatever the preference says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from prefstudio.config import MarginConfig
from prefstudio.errors import PrefstudioError
from prefstudio.importers.files import open_file
from prefstudio.importers.folders import is_pattern, open_files, open_folder
from prefstudio.importers.formats import FORMATS, PAIR_FIELDS, Format, ReadOptions, detect
from prefstudio.importers.margins import MarginRule, parse_rule
from prefstudio.importers.winner import (
    PROMPT_COLUMNS,
    TIES,
    ValueMap,
    WinnerReader,
    response_columns,
    winner_column,
)
from prefstudio.ingest import PairReader, RawPair, Skip

FORMAT_NAMES = ("auto", *FORMATS)
WINNER_FIELDS = ("a", "b")  # --winner: the file's first and second response
MAPPABLE_FIELDS = tuple(dict.fromkeys(
    [*PAIR_FIELDS, *WINNER_FIELDS, *(name for fmt in FORMATS.values() for name in fmt.fields)]
))
MARGIN_FORMATS = ("alpaca-eval", "shp", "webgpt")  # formats whose rows carry a margin


class SourceReader:
    """A PairReader: the rows of a source, renamed by the mapping and converted by a format."""

    def __init__(self, rows, fmt: Format, mapping: dict[str, str], options: ReadOptions | None = None,
                 margin_rule: MarginRule | None = None):
        self.label: str = rows.label
        self.format = fmt.name
        self.default_source: str = fmt.dataset or rows.name
        self.name_split: str | None = getattr(rows, "name_split", None)  # from a file or folder named test/...
        self.names_files: bool = getattr(rows, "names_files", False)  # its locations start with their file
        self._rows = rows
        self._convert = fmt.converter(options or ReadOptions())
        self._mapping = mapping
        self._rule = margin_rule

    @property
    def total(self) -> int | None:
        return self._rows.total

    @property
    def position(self) -> int:
        return self._rows.position

    def __iter__(self) -> Iterator[RawPair | Skip]:
        convert, mapping, rule, name_split = self._convert, self._mapping, self._rule, self.name_split
        for item in self._rows:
            if type(item) is Skip:
                yield item
                continue
            location, row, split = item
            record = convert(_renamed(row, mapping) if mapping else row, location)
            if type(record) is RawPair:
                if split is not None:
                    record.split = split
                elif name_split is not None and record.split in (None, ""):
                    record.split = name_split
                if rule is not None:
                    label = rule.label(row, record.swapped)
                    if isinstance(label, str):
                        record = Skip(location, label)
                    else:
                        record.label = label
            yield record


def open_reader(
    source: str | list[str],
    *,
    format: str = "auto",
    mapping: dict[str, str] | None = None,
    hf_split: str | None = None,
    hf_config: str | None = None,
    winner: str | None = None,
    winner_values: str | None = None,
    ties: str = "skip",
    margin_from: str | None = None,
    margin_levels: tuple[float, float, float] | None = None,
    margins: MarginConfig | None = None,
    keep_order: bool = False,
) -> PairReader:
    """Open `source` for import_pairs; raises PrefstudioError (one line) for anything unusable.

    `source` is a file, a folder, a saved dataset, hf:NAME, a glob pattern, or
    a list of files and patterns (read one after another, as one import).

    `winner` orients each pair by that column (`winner_values` says what its
    values mean); `ties` skips or keeps (at level 0) what it calls a tie;
    `margin_from` reads a data margin from columns (importers.margins);
    `margins` is the workspace's [margins] (data thresholds), `margin_levels`
    this import's own thresholds.
    """
    if format not in FORMAT_NAMES:
        raise PrefstudioError(f"--format {format!r}: unknown format; choose one of: {', '.join(FORMAT_NAMES)}")
    if ties not in TIES:
        raise PrefstudioError(f"--ties {ties!r}: expected skip or keep")
    if winner_values is not None and winner is None:
        raise PrefstudioError("--winner-values says what a winner column's values mean; "
                              "name the column with --winner COL")
    if winner is not None and format != "auto":
        raise PrefstudioError(f"--winner orients any file by its own column; drop --format {format} "
                              "(that format orients its pairs itself)")
    mapping = dict(mapping or {})
    for field, column in mapping.items():
        if field not in MAPPABLE_FIELDS:
            raise PrefstudioError(
                f"--map {field}={column}: no field {field!r} to fill; fields: {', '.join(MAPPABLE_FIELDS)}"
            )
    rows = _open_rows(source, hf_split, hf_config)
    original, skipped = _first_row(rows)
    first = original
    if first is not None:
        for field, column in mapping.items():
            if column not in first:
                raise PrefstudioError(
                    f"{rows.label}: --map {field}={column}: no column {column!r} (found: {_names(first)})"
                )
        first = _renamed(first, mapping)

    if winner is not None:
        fmt = _winner_format(rows, original, skipped, mapping, winner, winner_values, ties)
    elif format == "auto":
        if first is None:
            raise PrefstudioError(_no_records(rows.label, skipped))
        _refuse_order_mapping(rows.label, original, mapping, keep_order)
        fmt = detect(first)
        if fmt is None:
            column = winner_column(first)
            if column is not None:
                raise PrefstudioError(
                    f"{rows.label}: no prompt/chosen/rejected fields (found: {_names(first)}); this file has a "
                    f"preference column {column!r}: orient its pairs with --winner {column} "
                    "(--map a=COL --map b=COL name the two responses, --winner-values what its values mean)"
                )
            responses = response_columns(first)
            if responses is not None:
                raise PrefstudioError(
                    f"{rows.label}: no prompt/chosen/rejected fields (found: {_names(first)}); it holds two responses "
                    f"({responses[0]}, {responses[1]}): if a column says which is better, orient the pairs with "
                    f"--winner COL; map them to chosen/rejected only if {responses[0]} is always the preferred one"
                )
            raise PrefstudioError(
                f"{rows.label}: no prompt/chosen/rejected fields (found: {_names(first)}); name them with "
                "--map prompt=COL --map chosen=COL --map rejected=COL, or pick a --format"
            )
    else:
        fmt = FORMATS[format]
        if first is not None:
            _refuse_order_mapping(rows.label, original, mapping, keep_order)
        missing = fmt.missing(first) if first is not None else []
        if missing:
            column = winner_column(first)
            hint = (f"; this file has a preference column {column!r}: --winner {column} orients its pairs by it"
                    if column is not None and fmt.name in ("pairs", "oasst1", "hh-rlhf") else "")
            raise PrefstudioError(
                f"{rows.label}: --format {fmt.name} needs the fields {', '.join(missing)} (found: {_names(first)}); "
                f"name them with --map FIELD=COLUMN{hint}"
            )
    if ties != "skip" and not fmt.takes_ties:
        raise PrefstudioError(f"--ties {ties}: the {fmt.name} format has no ties to keep; --ties applies to "
                              "--winner and the alpaca-eval, mt-bench and chatbot-arena formats")
    margins = margins or MarginConfig()
    options = ReadOptions(ties, margins, margin_levels)
    rule = None
    if margin_from is not None:
        rule = parse_rule(margin_from, fmt.dataset or rows.name, lambda kind: margin_levels or margins.thresholds(kind))
        absent = [column for column in rule.columns if original is not None and column not in original]
        if absent:
            raise PrefstudioError(f"{rows.label}: --margin-from {margin_from}: no column {absent[0]!r} "
                                  f"(found: {_names(original)})")
    elif margin_levels is not None and fmt.name not in MARGIN_FORMATS:
        raise PrefstudioError(f"--margin-levels: the {fmt.name} format has no margins of its own; "
                              "add --margin-from COL to read one")
    return SourceReader(rows, fmt, mapping, options, rule)


def _refuse_order_mapping(label: str, row: dict | None, mapping: dict[str, str], keep_order: bool) -> None:
    """--map chosen=/rejected= on a file with a preference column would keep the file's order for every pair."""
    if keep_order or row is None or not ({"chosen", "rejected"} & mapping.keys()):
        return
    column = winner_column({key: value for key, value in row.items() if key not in mapping.values()})
    if column is not None:
        raise PrefstudioError(
            f"{label}: this file has a preference column {column!r}, which --map chosen=/rejected= ignores: every "
            f"pair its second response won would be stored reversed; orient them with --winner {column} "
            "(--map a=COL --map b=COL for the two responses), or add --keep-order if the columns are already "
            "chosen and rejected"
        )


def _winner_format(rows, row: dict | None, skipped: Skip | None, mapping: dict[str, str], column: str,
                   values: str | None, ties: str) -> Format:
    """--winner COL: fill prompt, a and b from the usual column names unless mapped, and check the first row."""
    if row is None:
        raise PrefstudioError(_no_records(rows.label, skipped))
    if column not in row:
        raise PrefstudioError(f"{rows.label}: --winner {column}: no column {column!r} (found: {_names(row)})")
    if "prompt" not in mapping and "prompt" not in row:
        found = next((name for name in PROMPT_COLUMNS if name in row), None)
        if found is None:
            raise PrefstudioError(f"{rows.label}: --winner {column}: no prompt column (found: {_names(row)}); "
                                  "name it with --map prompt=COL")
        mapping["prompt"] = found
    if not {"a", "b"} <= mapping.keys():
        pair = response_columns(row)
        if pair is None or mapping.keys() & {"a", "b"}:
            raise PrefstudioError(
                f"{rows.label}: --winner {column}: which columns hold the two responses? name them with "
                f"--map a=COL --map b=COL, a being the one the winner column calls a (found: {_names(row)})"
            )
        mapping["a"], mapping["b"] = pair
    reader = WinnerReader(column, ValueMap.parse(values), ties, rows.name)
    reader.check(row, rows.label)
    return Format("winner", ("prompt", "a", "b", column), reader.convert, takes_ties=True)


def _open_rows(source: str | list[str], hf_split: str | None, hf_config: str | None):
    sources = [source] if isinstance(source, str) else list(source)
    if len(sources) > 1 or is_pattern(sources[0]):
        if hf_config is not None:
            raise PrefstudioError(f"{sources[0]}: --hf-config applies to hf:NAME only; drop it")
        return open_files(sources, hf_split)
    source = sources[0]
    if source.startswith("hf:"):
        from prefstudio.importers.hf import open_hub

        name = source[3:].strip()
        if not name:
            raise PrefstudioError(f"{source}: no dataset name; write hf:NAME, e.g. hf:Anthropic/hh-rlhf")
        return open_hub(name, hf_config, hf_split)
    path = Path(source)
    if path.is_dir():
        from prefstudio.importers.hf import is_saved_dataset, open_saved

        if is_saved_dataset(path):
            return open_saved(path, source, hf_config, hf_split)
        if hf_config is not None:
            raise PrefstudioError(f"{source}: --hf-config applies to hf:NAME only; a folder's files are read as they "
                                  "are; drop it")
        return open_folder(path, source, hf_split)
    if not path.exists():
        raise PrefstudioError(f"{source}: no such file; for a Hugging Face dataset write hf:NAME")
    if hf_split is not None or hf_config is not None:
        raise PrefstudioError(f"{source}: --hf-split and --hf-config apply to hf:NAME and folders only; drop them")
    return open_file(path, source)


def _first_row(rows) -> tuple[dict | None, Skip | None]:
    """The first readable row, for detection, and the first skip before it; the pass is closed again (its file too)."""
    items = iter(rows)
    skipped = None
    try:
        for item in items:
            if type(item) is not Skip:
                return item[1], skipped
            skipped = skipped or item
        return None, skipped
    finally:
        items.close()


def _no_records(label: str, skipped: Skip | None) -> str:
    if skipped is None:
        return f"{label}: no records found; nothing to import"
    return f"{label}: no readable records ({skipped.location}: {skipped.reason}); nothing to import"


def _names(row: dict) -> str:
    return ", ".join(row) or "no fields"


def _renamed(row: dict, mapping: dict[str, str]) -> dict:
    """A copy of the row with each mapped column under its field name (the row may be shared)."""
    renamed = {key: value for key, value in row.items() if key not in mapping.values()}
    renamed.update({field: row.get(column) for field, column in mapping.items()})
    return renamed
