"""Local data files as a stream of rows, each with the line or row it came from.

Files are streamed (text line by line, Parquet by record batch) so memory stays
flat on big datasets, and progress is counted in bytes of the file on disk so a
.gz file's bar follows what has really been read. A bad record becomes a Skip;
a file that stops being readable part-way raises, so the import rolls back.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.ingest import Skip

CONTAINERS = (".jsonl", ".json", ".parquet", ".csv")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_BATCH_ROWS = 2048
MAX_CSV_FIELD = 2**31 - 1
MAX_NAME_LEN = 64
SPLIT_LIKE = re.compile(r"(train|test|validation|dev)(-\d+-of-\d+)?", re.IGNORECASE)
READ_ERRORS = (OSError, EOFError, zlib.error)
LONE_SURROGATE = "has an unpaired \\u surrogate escape (not valid Unicode)"
ENCODING_PROBE = 4096  # bytes read to tell UTF-16 from UTF-8

Row = tuple[str, dict, "str | None"]  # location, fields, split


def container_of(path: Path) -> str | None:
    """The data format named by the file's extension ('.jsonl', ...), ignoring a trailing .gz."""
    name = path.name.lower().removesuffix(".gz")
    return next((suffix for suffix in CONTAINERS if name.endswith(suffix)), None)


def source_name(path: Path) -> str:
    """Default source name: the file name without extensions, or its folder's for train.jsonl & co."""
    stem = data_stem(path)
    if SPLIT_LIKE.fullmatch(stem):
        stem = path.resolve().parent.name or stem
    return stem[:MAX_NAME_LEN]


def data_stem(path: Path) -> str:
    """The file name without its data extensions (.jsonl.gz -> '')."""
    stem = path.name
    while True:
        lowered = stem.lower()
        suffix = next((s for s in (".gz", *CONTAINERS) if lowered.endswith(s)), None)
        if suffix is None or len(stem) == len(suffix):
            return stem
        stem = stem[: -len(suffix)]


def split_of_name(name: str) -> str | None:
    """The split a file or folder name says ('test', 'validation', 'dev'); None for 'train' and anything else.

    'train' is left open so that --test-fraction can carve a test set out of it.
    """
    found = SPLIT_LIKE.fullmatch(name)
    if not found or found.group(1).lower() == "train":
        return None
    return found.group(1).lower()


def split_of_path(path: Path) -> str | None:
    """HH-RLHF's layout: helpful-base/test.jsonl.gz is the test split; so is any file in a folder test/."""
    stem = data_stem(path)
    if SPLIT_LIKE.fullmatch(stem):
        return split_of_name(stem)
    return split_of_name(path.resolve().parent.name)


def open_file(path: Path, label: str) -> "JsonLinesRows | JsonArrayRows | ParquetRows | CsvRows":
    container = container_of(path)
    if container == ".jsonl":
        return JsonLinesRows(path, label)
    if container == ".json":
        return _open_json(path, label)
    if container == ".parquet":
        return ParquetRows(path, label)
    if container == ".csv":
        return CsvRows(path, label)
    raise PrefstudioError(
        f"{label}: unknown file type; expected .jsonl, .json, .parquet or .csv (optionally .gz), "
        "a folder, or hf:NAME"
    )


def _damaged(label: str, exc: BaseException, lines_read: int = 0) -> PrefstudioError:
    reason = getattr(exc, "strerror", None) or first_line(exc)
    where = f" after line {lines_read}" if lines_read else ""
    return PrefstudioError(f"{label}: cannot read{where} ({reason}); the file is damaged or truncated")


@contextmanager
def _open_bytes(path: Path, label: str):
    """(file on disk, byte stream) with gzip undone when the content is gzip, whatever the name."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise PrefstudioError(f"{label}: cannot open ({exc.strerror or exc})") from None
    with raw:
        try:
            compressed = raw.peek(2)[:2] == GZIP_MAGIC
        except OSError as exc:
            raise _damaged(label, exc) from None
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield raw, stream
        else:
            yield raw, raw


def _read_all(path: Path, label: str) -> bytes:
    with _open_bytes(path, label) as (_, stream):
        try:
            return stream.read()
        except READ_ERRORS as exc:
            raise _damaged(label, exc) from None


class DuplicateKey(ValueError):
    """A JSON object that names one key twice: which value is meant is not said, so the row is not read."""

    def __init__(self, key: str):
        super().__init__(f"key {key!r} appears twice in one object; which value is meant is ambiguous")


def _object(pairs: list[tuple[str, object]]) -> dict:
    row = dict(pairs)
    if len(row) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return row


# json.loads would keep the last of two equal keys without a word; one decoder, built once (it is per call in loads).
_JSON = json.JSONDecoder(object_pairs_hook=_object)


def _wide_encoding(head: bytes) -> tuple[str, str] | None:
    """(what it looks like, iconv's name for it) when a file's first bytes are UTF-16 or UTF-32, else None."""
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "UTF-32", "UTF-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16", "UTF-16"  # the byte order mark tells iconv the order
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 4:
        return None
    # UTF-16 puts a NUL beside every ASCII character; UTF-8 JSON and CSV have none.
    half = len(sample) // 2
    if sample[1::2].count(0) > half * 0.3:
        return "UTF-16", "UTF-16LE"
    if sample[0::2].count(0) > half * 0.3:
        return "UTF-16", "UTF-16BE"
    return None


def check_utf8(label: str, head: bytes) -> None:
    """Refuse a UTF-16 (or UTF-32) text file at once: read as UTF-8, every line would be garbage or nothing."""
    wide = _wide_encoding(head)
    if wide is not None:
        raise PrefstudioError(f"{label}: not UTF-8 (looks like {wide[0]}); convert it with iconv -f {wide[1]} -t UTF-8")


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _has_lone_surrogate(row: dict) -> bool:
    """JSON may escape half a surrogate pair (\\ud800); such text cannot be stored as UTF-8."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _ByteProgress:
    """Progress in bytes of the file on disk, read while a pass is open."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label
        self.name = source_name(path)
        self.name_split = split_of_path(path)
        try:
            self.total: int | None = os.path.getsize(path)
        except OSError as exc:
            raise PrefstudioError(f"{label}: cannot open ({exc.strerror or exc})") from None
        with _open_bytes(path, label) as (_, stream):
            try:
                check_utf8(label, stream.read(ENCODING_PROBE))
            except READ_ERRORS as exc:
                raise _damaged(label, exc) from None
        self._raw = None
        self._done = 0

    @property
    def position(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self._done
        return raw.tell()


class JsonLinesRows(_ByteProgress):
    """One JSON object per line; blank lines are ignored."""

    def __iter__(self) -> Iterator[Row | Skip]:
        with _open_bytes(self.path, self.label) as (raw, stream):
            self._raw, self._done = raw, 0
            number = 0
            try:
                for number, line in enumerate(stream, start=1):
                    try:
                        text = line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        reason = f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
                        yield Skip(f"line {number}", reason)
                        continue
                    if number == 1:
                        text = text.removeprefix("\ufeff")
                    if text.isspace() or not text:
                        continue
                    try:
                        row = _JSON.decode(text)
                    except json.JSONDecodeError as exc:
                        yield Skip(f"line {number}", f"not valid JSON ({exc.msg} at column {exc.colno})")
                        continue
                    except DuplicateKey as exc:
                        yield Skip(f"line {number}", str(exc))
                        continue
                    except RecursionError:
                        yield Skip(f"line {number}", "not valid JSON (nested too deeply)")
                        continue
                    if not isinstance(row, dict):
                        yield Skip(f"line {number}", f"not a JSON object (found {_json_kind(row)})")
                    elif ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(row):
                        yield Skip(f"line {number}", LONE_SURROGATE)
                    else:
                        yield f"line {number}", row, None
            except READ_ERRORS as exc:
                raise _damaged(self.label, exc, number) from None
            self._done = self.total


class JsonArrayRows:
    """A JSON array of objects, parsed whole (JSON has no streaming form in the stdlib)."""

    def __init__(self, path: Path, label: str, items: list, check_surrogates: bool):
        self.label = label
        self.name = source_name(path)
        self.name_split = split_of_path(path)
        self.total = len(items)
        self.position = 0
        self._items = items
        self._check_surrogates = check_surrogates

    def __iter__(self) -> Iterator[Row | Skip]:
        for self.position, item in enumerate(self._items, start=1):
            location = f"row {self.position}"
            if not isinstance(item, dict):
                yield Skip(location, f"not a JSON object (found {_json_kind(item)})")
            elif self._check_surrogates and _has_lone_surrogate(item):
                yield Skip(location, LONE_SURROGATE)
            else:
                yield location, item, None


def _open_json(path: Path, label: str) -> JsonArrayRows | JsonLinesRows:
    """A .json file is an array of objects; failing that, it is read as JSON lines."""
    data = _read_all(path, label)
    check_utf8(label, data[:ENCODING_PROBE])
    looks_like_array = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"["
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if looks_like_array:
            raise PrefstudioError(f"{label}: not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
        return JsonLinesRows(path, label)
    try:
        document = _JSON.decode(text)
    except DuplicateKey as exc:
        if looks_like_array:
            raise PrefstudioError(f"{label}: {exc}; keep one of them") from None
        return JsonLinesRows(path, label)  # one object per line: the line is named
    except (ValueError, RecursionError) as exc:
        if looks_like_array:
            if isinstance(exc, json.JSONDecodeError):
                reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            else:
                reason = "nested too deeply"
            raise PrefstudioError(
                f"{label}: not a valid JSON array ({reason}); expected an array of objects or one object per line"
            ) from None
        return JsonLinesRows(path, label)
    if isinstance(document, list):
        return JsonArrayRows(path, label, document, "\\ud" in text or "\\uD" in text)
    if isinstance(document, dict):
        return JsonLinesRows(path, label)
    raise PrefstudioError(f"{label}: holds {_json_kind(document)}; expected an array of objects or one object per line")


class ParquetRows:
    """A Parquet file, read one record batch at a time; progress in rows."""

    def __init__(self, path: Path, label: str):
        self.label = label
        self.name = source_name(path)
        self.name_split = split_of_path(path)
        self.position = 0
        try:
            with open(path, "rb") as probe:
                compressed = probe.read(2) == GZIP_MAGIC
            source = pa.BufferReader(_read_all(path, label)) if compressed else str(path)
            self._file = pq.ParquetFile(source)
        except OSError as exc:
            raise PrefstudioError(f"{label}: cannot open ({exc.strerror or first_line(exc)})") from None
        except pa.ArrowException as exc:
            raise PrefstudioError(f"{label}: not a readable Parquet file ({first_line(exc)})") from None
        self.total = self._file.metadata.num_rows
        twice = _repeated(self._file.schema_arrow.names)
        if twice is not None:
            raise PrefstudioError(f"{label}: column {twice!r} appears twice; which one is meant is ambiguous; "
                                  "rename one")

    def __iter__(self) -> Iterator[Row | Skip]:
        self.position = 0
        try:
            for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for row in batch.to_pylist():
                    self.position += 1
                    yield f"row {self.position}", row, None
        except (pa.ArrowException, OSError) as exc:
            raise PrefstudioError(
                f"{self.label}: cannot read after row {self.position} ({first_line(exc)}); the file is damaged"
            ) from None


class _Utf8Lines:
    """Lines decoded one by one, remembering the last line that was not UTF-8."""

    def __init__(self, stream):
        self._lines = iter(stream)
        self.number = 0
        self.last_bad = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.last_bad = self.number
            return line.decode("utf-8", "replace")


class CsvRows(_ByteProgress):
    """A CSV file with a header line; a record may span lines (quoted newlines).

    Quoting is read strictly: a quote left open would otherwise swallow every
    later line into one field (rows merged without a word), so broken quoting
    refuses the file, naming the line where the open quote starts. An empty
    cell is a missing value; any other cell is text exactly as written ("NaN",
    "None" and "4" included).
    """

    def __iter__(self) -> Iterator[Row | Skip]:
        # Whole transcripts can exceed the csv module's 128 KiB default field limit.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
        with _open_bytes(self.path, self.label) as (raw, stream):
            self._raw, self._done = raw, 0
            lines = _Utf8Lines(stream)
            records = csv.reader(lines, strict=True)
            end = 0
            try:
                header = next(records, None)
                if header is None:
                    return
                if lines.last_bad:
                    raise PrefstudioError(f"{self.label}: line 1 (the header) is not valid UTF-8; save it as UTF-8")
                header[0] = header[0].removeprefix("\ufeff")
                twice = _repeated(header)
                if twice is not None:
                    raise PrefstudioError(f"{self.label}: line 1: column {twice!r} appears twice in the header; "
                                          "which one is meant is ambiguous; rename one")
                width = len(header)
                end = records.line_num
                for record in records:
                    start, end = end + 1, records.line_num
                    if not record:
                        continue
                    location = f"line {start}"
                    if lines.last_bad >= start:
                        yield Skip(location, "not valid UTF-8")
                    elif len(record) > width:
                        yield Skip(location, f"{len(record)} fields, but the header names {width}")
                    else:
                        row = {name: value if value != "" else None for name, value in zip(header, record)}
                        for name in header[len(record):]:
                            row[name] = None
                        yield location, row, None
            except csv.Error as exc:
                raise self._broken_quote(end + 1, exc) from None
            except READ_ERRORS as exc:
                raise _damaged(self.label, exc, lines.number) from None
            self._done = self.total

    def _broken_quote(self, first: int, exc: csv.Error) -> PrefstudioError:
        """The error for quoting the csv module cannot parse, naming the line where the bad quoted field opens."""
        opened, broken = _open_quote(self.path, self.label, first)
        fix = 'write a quote inside a quoted field as ""; nothing was imported'
        if broken is None:
            return PrefstudioError(f"{self.label}: line {opened}: a quote opened here is never closed; the rest of "
                                   f"the file would be read as one field; close it; {fix}")
        if broken > opened:
            return PrefstudioError(f"{self.label}: line {opened}: a quote opened here is not closed on its line; it "
                                   f"runs on to line {broken}, where the quoting breaks; close it; {fix}")
        if opened:
            return PrefstudioError(f"{self.label}: line {opened}: text follows the closing quote of a field; {fix}")
        return PrefstudioError(f"{self.label}: line {first}: {exc}; check the CSV quoting; nothing was imported")


def _open_quote(path: Path, label: str, first: int) -> tuple[int, int | None]:
    """Where the quoting of a CSV record starting at line `first` breaks: (line the quoted field opens, line it
    breaks at, or None when the file ends inside it). Reads the file again: only when the strict parse failed."""
    opened, state = 0, "start"  # start of a field, unquoted, quoted, quote (closing, or the first of "")
    with _open_bytes(path, label) as (_, stream):
        for number, line in enumerate(stream, start=1):
            if number < first:
                continue
            for char in line.decode("utf-8", "replace"):
                if state == "quoted":
                    if char == '"':
                        state = "quote"
                elif state == "quote":
                    if char == '"':
                        state = "quoted"
                    elif char in ",\r\n":
                        state = "start"
                    else:
                        return opened, number
                elif char == '"' and state == "start":
                    state, opened = "quoted", number
                elif char in ",\r\n":
                    state = "start"
                else:
                    state = "unquoted"
    return opened, None if state == "quoted" else opened


def _repeated(names: list[str]) -> str | None:
    """The first name given twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
