"""Bulk ingest of preference pairs into a workspace.

Importers (prefstudio.importers) turn a file or dataset into a stream of
RawPair / Skip records; this module validates them into Arrow chunks (in a
reading thread, one chunk ahead) and lets DuckDB do the bulk work per chunk
(hashing, de-duplication, id assignment), all in one transaction, so an import
either lands whole or not at all. A margin that came with the data (a
DataLabel) is stored in the same transaction, as an annotation of kind 'data'.

Splits: `--split`, else the record's own (a split column, the Hugging Face
split, a file or folder named test/validation), else `--test-fraction` decides
by a hash of the normalised prompt, so one prompt never lands in both splits
and a re-import or another file with the same prompts lands the same way.

Over 400 lines because one transaction spans validation, chunking, splits and data
labels; cutting it would split one invariant (all or nothing) across modules.
"""

from __future__ import annotations

import json
import math
import queue
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, Literal, Protocol

import duckdb
import pyarrow as pa

from prefstudio.db import transaction
from prefstudio.errors import PrefstudioError
from prefstudio.labels import signed_margin
from prefstudio.workspace import DB_NAME, Workspace

CHUNK_ROWS = 50_000
# What the OS says when a write does not fit: no space, a quota, a file size limit (ulimit -f).
DISK_FULL = r"No space left on device|Disk quota exceeded|File too large"
MAX_NAME_LEN = 64
SplitBy = Literal["prompt", "pair"]
SPLIT_BY: tuple[SplitBy, ...] = ("prompt", "pair")

# The prompt as --test-fraction groups it and `info` compares it across splits:
# case and runs of whitespace do not make two prompts different.
PROMPT_KEY_SQL = "lower(regexp_replace(trim({col}), '\\s+', ' ', 'g'))"


class DiskFull(PrefstudioError):
    """An import that ran out of disk; it was rolled back, and `reclaim_space` gives the file's growth back."""


@dataclass(slots=True, frozen=True)
class DataLabel:
    """A margin that came with the data (docs/methods.md, "Margins that come with the data").

    `value` is the continuous margin on the data's own scale (None when the
    data gives only a level, e.g. a kept tie); `level` is that value through
    the documented thresholds; `flip` when the data says `rejected` is better.
    """

    annotator: str  # DATASET/FIELD, e.g. alpaca-eval/weighted_alpaca_eval_gpt4_turbo
    value: float | None
    level: int
    flip: bool = False
    extra: dict | None = None


@dataclass(slots=True)
class RawPair:
    """One pair as an importer read it; fields are checked by ingest, not by importers."""

    prompt: object
    chosen: object
    rejected: object
    location: str  # where it came from, for messages: "line 17", "row 3"
    source: object = None
    split: object = None
    meta: dict | None = None
    label: DataLabel | None = None  # a margin the data gives, stored as a 'data' annotation
    swapped: bool = False  # chosen is the file's second response (a winner column said so)
    turns: list[dict] | None = None  # the prompt's chat messages, where the data had turns (pairs.prompt_turns)


@dataclass(slots=True)
class Skip:
    """A record an importer could not turn into a pair (undecodable line, tie, ...)."""

    location: str
    reason: str


class PairReader(Protocol):
    """What an importer hands to import_pairs."""

    label: str  # the file path or dataset name, for messages
    format: str  # the format name, stored with the import batch
    default_source: str  # source name when neither the user nor the record gives one
    total: int | None  # size in the unit of `position` (bytes or rows), None if unknown
    position: int  # how far the reader has got, for progress bars

    def __iter__(self) -> Iterator[RawPair | Skip]: ...


@dataclass
class ImportReport:
    label: str
    format: str
    batch_id: int
    n_read: int = 0
    n_imported: int = 0
    n_duplicate: int = 0
    n_skipped: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    skip_examples: list[Skip] = field(default_factory=list)
    by_source: dict[str, int] = field(default_factory=dict)
    by_split: dict[str, int] = field(default_factory=dict)
    split_rule: str = ""  # why the pairs went to the splits they did, for the summary
    locations_name_files: bool = False  # a reader of several files puts the file in each location
    data_labels: dict[str, list[int]] = field(default_factory=dict)  # annotator -> pairs per level 0..3
    seconds: float = 0.0
    no_test_split: bool = False  # every new pair went to train by default, and the workspace has no test pairs
    # Pairs already present whose --test-fraction draw names the other split: moved (--resplit) or left,
    # as {split they go or would go to: n}
    resplit: dict[str, int] = field(default_factory=dict)
    resplit_applied: bool = False

    def summary(self) -> str:
        rate = self.n_read / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.label}: imported {self.n_imported:,} pair{'' if self.n_imported == 1 else 's'}, "
            f"{self.n_duplicate:,} already present, "
            f"{self.n_skipped:,} skipped ({self.n_read:,} read in {self.seconds:.1f}s, {rate:,.0f} pairs/s)"
        )

    def place(self, skip: Skip) -> str:
        """Where a skipped record is, for messages: 'pairs.jsonl:line 7', 'data/test.jsonl:line 3'."""
        return skip.location if self.locations_name_files else f"{self.label}:{skip.location}"

    def splits_line(self) -> str:
        """Which split the new pairs went to, and why."""
        if not self.by_split:
            return ""
        parts = ", ".join(f"{split} +{n:,}" for split, n in self.by_split.items())
        return f"split: {parts}" + (f" ({self.split_rule})" if self.split_rule else "")

    def split_notes(self) -> list[str]:
        """What the user must know about the splits: no test split yet, pairs (re)split or left as they were."""
        notes = []
        if self.no_test_split:
            which = "the 1 pair" if self.n_imported == 1 else f"all {self.n_imported:,} pairs"
            notes.append(f"{which} went to train; evaluation needs a test split (`--test-fraction 0.1`)")
        moved = sum(self.resplit.values())
        if moved:
            parts = ", ".join(f"{n:,} to {split}" for split, n in sorted(self.resplit.items()))
            if self.resplit_applied:
                notes.append(f"re-split {moved:,} pairs already present ({parts}), each prompt's pairs together")
            else:
                notes.append(f"{moved:,} pairs already present keep their split ({parts} by --test-fraction); "
                             "--resplit moves them")
        return notes

    def labels_lines(self) -> list[str]:
        """One line per data annotator: how many margins came with the data, per level."""
        return [
            f"data margins {annotator}: +{sum(levels):,} (levels 0/1/2/3: {'/'.join(f'{n:,}' for n in levels)})"
            for annotator, levels in self.data_labels.items()
        ]


def is_missing(value: object) -> bool:
    """None, or the NaN / infinity that JSON, pandas or a float column put where a value is missing."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def kind_of(value: object) -> str:
    """What a value that should be text is, for a skip reason: 'a number (4)', 'a list', 'an object'."""
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__} value"


def not_text(value: object, name: str) -> str | None:
    """Why the field is not usable text (missing, a number, a list ...), or None when it is text.

    A number is refused, not stringified: a column of numbers where a text
    belongs is a mapping or export mistake, and "4" stored as a response would hide it.
    """
    if isinstance(value, str):
        return None
    if is_missing(value):
        return f"missing field '{name}'" + ("" if value is None else f" ({json.dumps(value)})")
    return f"'{name}' is {kind_of(value)}, expected text"


def _text(value: object, name: str) -> tuple[str | None, str | None]:
    """The field as text, or (None, reason) when it is not usable text."""
    why = not_text(value, name)
    if why:
        return None, why
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value, None


def validate(raw: RawPair) -> tuple[tuple[str, str, str] | None, str | None]:
    """Check one pair; returns ((prompt, chosen, rejected), None) or (None, reason)."""
    prompt, why = _text(raw.prompt, "prompt")
    if why:
        return None, why
    chosen, why = _text(raw.chosen, "chosen")
    if why:
        return None, why
    rejected, why = _text(raw.rejected, "rejected")
    if why:
        return None, why
    if not chosen.strip():
        return None, "empty 'chosen' response"
    if not rejected.strip():
        return None, "empty 'rejected' response"
    if chosen.strip() == rejected.strip():
        return None, "'chosen' and 'rejected' are the same text"
    return (prompt, chosen, rejected), None


def _bad_name(text: str, what: str) -> str | None:
    """Why a source or split name cannot be stored, or None."""
    if not text:
        return f"empty {what} name"
    if len(text) > MAX_NAME_LEN:
        return f"{what} name {text[:40] + '...'!r} is {len(text):,} characters; at most {MAX_NAME_LEN}"
    if any(ord(c) < 32 for c in text):
        return f"{what} name {text[:80]!r} has control characters"
    return None


def _name(value: object, what: str, where: str) -> str:
    """A name the user gave (--name, --split) or the reader's default: refused as a whole when unusable."""
    text = str(value).strip()
    if _bad_name(text, what):
        raise PrefstudioError(f"{where}: {what} name {text[:80]!r} must be 1-{MAX_NAME_LEN} printable characters")
    return text


def _record_name(value: object, what: str) -> tuple[str | None, str | None]:
    """A record's own source or split: (name, None), (None, None) when it has none, or (None, why) to skip it."""
    if is_missing(value) or value == "":
        return None, None
    if not isinstance(value, str):
        return None, f"'{what}' is {kind_of(value)}, expected text"
    text = value.strip()
    why = _bad_name(text, what) if text else None
    return (text or None), why


_CHUNK_SCHEMA = pa.schema(
    [
        ("ord", pa.int64()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("prompt", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("meta", pa.string()),
        ("prompt_turns", pa.string()),
        ("label_annotator", pa.string()),
        ("label_value", pa.float64()),
        ("label_level", pa.int8()),
        ("label_flip", pa.bool_()),
        ("label_margin", pa.float64()),
        ("label_extra", pa.string()),
    ]
)


def _label_columns(cols: dict[str, list], label: DataLabel | None, margins) -> None:
    """The record's data label, if any, as the chunk's label_* columns."""
    if label is None:
        for name in ("label_annotator", "label_value", "label_level", "label_flip", "label_margin", "label_extra"):
            cols[name].append(None)
        return
    cols["label_annotator"].append(label.annotator)
    cols["label_value"].append(label.value)
    cols["label_level"].append(label.level)
    cols["label_flip"].append(label.flip)
    # as any label stores it: the level through the scale at the time
    cols["label_margin"].append(signed_margin(margins, label.level, label.flip))
    cols["label_extra"].append(json.dumps(label.extra, ensure_ascii=False, default=str) if label.extra else None)


def import_pairs(
    ws: Workspace,
    reader: PairReader,
    *,
    source: str | None = None,
    split: str | None = None,
    test_fraction: float = 0.0,
    split_by: SplitBy = "prompt",
    resplit: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
    max_skip_examples: int = 20,
    options: dict | None = None,
    con=None,
) -> ImportReport:
    """Read every record of `reader` into the workspace, in one transaction.

    `on_progress(position, total)` is called from the reading thread.

    `source` / `split` override what the records say; a record without a split
    goes to 'test' with probability `test_fraction`, decided by a hash of its
    normalised prompt (`split_by="prompt"`: a prompt's pairs stay together, so
    no prompt is in both splits) or of the whole pair (`"pair"`), so that
    re-imports land the same way. Pairs already present keep their split unless
    `resplit`: then those of them the records give no split are drawn again by
    the same rule (only between train and test), and the report counts the moves.
    `con`: a cursor to use instead of the workspace's connection (from a worker thread).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise PrefstudioError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if resplit and (test_fraction == 0.0 or split is not None):
        raise PrefstudioError("--resplit draws the pairs already present again by --test-fraction: give "
                              "--test-fraction F (e.g. 0.1) and no --split")
    if split_by not in SPLIT_BY:
        raise PrefstudioError(f"--split-by {split_by!r}: expected prompt or pair")
    forced_source = _name(source, "source", "--name") if source is not None else None
    forced_split = _name(split, "split", "--split") if split is not None else None
    default_source = _name(reader.default_source, "source", reader.label)

    con = con or ws.con
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    t0 = time.perf_counter()
    batch_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM import_batches").fetchone()[0]
    report = ImportReport(label=reader.label, format=reader.format, batch_id=batch_id,
                          locations_name_files=getattr(reader, "names_files", False))

    threshold = int(round(test_fraction * 2**32))
    margins = ws.config.margins
    n_valid = 0
    try:
        with transaction(con):
            chunks = _chunks(reader, report, forced_source, forced_split, default_source, on_progress,
                             max_skip_examples, margins)
            for chunk in _read_ahead(chunks):
                n_valid += chunk.num_rows
                for moved_to, n in _insert_chunk(con, chunk, batch_id, threshold, split_by, resplit).items():
                    report.resplit[moved_to] = report.resplit.get(moved_to, 0) + n
            report.resplit_applied = resplit

            report.n_imported = con.execute(
                "SELECT count(*) FROM pairs WHERE import_batch = ?", [batch_id]).fetchone()[0]
            report.n_duplicate = n_valid - report.n_imported
            report.by_source = dict(con.execute(
                "SELECT source, count(*) FROM pairs WHERE import_batch = ? GROUP BY source ORDER BY source",
                [batch_id],
            ).fetchall())
            report.by_split = dict(con.execute(
                "SELECT split, count(*) FROM pairs WHERE import_batch = ? "
                "GROUP BY split ORDER BY count(*) DESC, split",
                [batch_id],
            ).fetchall())
            report.split_rule = _split_rule(reader, forced_split, test_fraction, split_by)
            report.no_test_split = (forced_split is None and test_fraction == 0.0 and set(report.by_split) == {"train"}
                                    and con.execute("SELECT 1 FROM pairs WHERE split = 'test' LIMIT 1").fetchone() is None)
            for annotator, level, n in con.execute(
                "SELECT annotator_id, level, count(*) FROM annotations WHERE run_id = ? GROUP BY ALL ORDER BY ALL",
                [_run_id(batch_id)],
            ).fetchall():
                report.data_labels.setdefault(annotator, [0, 0, 0, 0])[level] = n
            con.execute(
                "INSERT OR IGNORE INTO sources (name) SELECT DISTINCT source FROM pairs WHERE import_batch = ?",
                [batch_id],
            )
            finished = datetime.now(timezone.utc).replace(tzinfo=None)
            con.execute(
                "INSERT INTO import_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    batch_id,
                    reader.label,
                    reader.format,
                    json.dumps(options or {}),
                    started,
                    finished,
                    report.n_read,
                    report.n_imported,
                    report.n_duplicate,
                    report.n_skipped,
                ],
            )
    except duckdb.Error as exc:
        reason = disk_full(exc)
        if reason is None:
            raise
        raise DiskFull(f"{ws.path / DB_NAME}: disk full while importing {reader.label} ({reason}); nothing was "
                       "imported; free space and run it again") from None
    report.seconds = time.perf_counter() - t0
    return report


def disk_full(exc: BaseException) -> str | None:
    """The OS's words when a DuckDB error (or the one it masks, e.g. a failed COMMIT) is a full disk."""
    while exc is not None:
        found = re.search(DISK_FULL, str(exc))
        if found:
            return found.group(0)
        exc = exc.__context__
    return None


def reclaim_space(path) -> None:
    """Give back the space a failed import took: DuckDB keeps the grown file until a checkpoint writes.

    Called after the workspace that failed is closed (that connection still
    counts the rolled-back blocks as used). Best effort: the data is intact either way.
    """
    try:
        with Workspace.open(path) as ws:
            ws.con.execute("CREATE TABLE _reclaim (x INTEGER)")
            ws.con.execute("DROP TABLE _reclaim")
            ws.con.execute("CHECKPOINT")
    except (duckdb.Error, PrefstudioError, OSError):
        pass


def _run_id(batch_id: int) -> str:
    """The run_id of the data annotations an import stores."""
    return f"import-{batch_id}"


def _split_rule(reader: PairReader, forced_split: str | None, test_fraction: float, split_by: SplitBy) -> str:
    if forced_split:
        return "--split"
    rules = []
    name_split = getattr(reader, "name_split", None)
    if name_split:
        rules.append(f"'{name_split}' from the file or folder name")
    if test_fraction > 0:
        grouped = "grouped by prompt" if split_by == "prompt" else "pair by pair (--split-by pair)"
        rules.append(f"--test-fraction {test_fraction:g}, {grouped}")
    return "; ".join(rules)


def _chunks(reader: PairReader, report: ImportReport, forced_source: str | None, forced_split: str | None,
            default_source: str, on_progress, max_skip_examples: int, margins) -> Iterator[pa.Table]:
    """The reader's valid pairs as Arrow chunks; skips are counted in `report` on the way."""
    cols: dict[str, list] = {name: [] for name in _CHUNK_SCHEMA.names}
    for record in reader:
        report.n_read += 1
        if isinstance(record, Skip):
            _note_skip(report, record, max_skip_examples)
        else:
            texts, why = validate(record)
            source, split = forced_source, forced_split
            if not why and source is None:
                source, why = _record_name(record.source, "source")
            if not why and split is None:
                split, why = _record_name(record.split, "split")
            if why:
                _note_skip(report, Skip(record.location, why), max_skip_examples)
            else:
                cols["ord"].append(report.n_read)
                cols["source"].append(source or default_source)
                cols["split"].append(split)
                cols["prompt"].append(texts[0])
                cols["chosen"].append(texts[1])
                cols["rejected"].append(texts[2])
                cols["meta"].append(json.dumps(record.meta, ensure_ascii=False, default=str) if record.meta else None)
                cols["prompt_turns"].append(json.dumps(record.turns, ensure_ascii=False) if record.turns else None)
                _label_columns(cols, record.label, margins)
                if len(cols["ord"]) >= CHUNK_ROWS:
                    yield pa.Table.from_pydict(cols, schema=_CHUNK_SCHEMA)
                    cols = {name: [] for name in _CHUNK_SCHEMA.names}
        if on_progress and report.n_read % 2000 == 0:
            on_progress(reader.position, reader.total)
    if cols["ord"]:
        yield pa.Table.from_pydict(cols, schema=_CHUNK_SCHEMA)
    if on_progress:
        on_progress(reader.position, reader.total)


def _read_ahead(items: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Run `items` in a thread, up to `depth` chunks ahead of the consumer.

    Reading and parsing is Python (it holds the GIL) while DuckDB's insert
    releases it, so on two cores the two overlap. Errors in the reader are
    raised here; stopping early (an error, Ctrl-C) stops the reader.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _note_skip(report: ImportReport, skip: Skip, max_examples: int) -> None:
    report.n_skipped += 1
    report.skip_reasons[skip.reason] += 1
    if len(report.skip_examples) < max_examples:
        report.skip_examples.append(skip)


def _insert_chunk(con, chunk: pa.Table, batch_id: int, test_fraction_threshold: int,
                  split_by: SplitBy = "prompt", resplit: bool = False) -> dict[str, int]:
    """Hash, de-duplicate and insert one chunk, straight into `pairs`, then its data labels.

    Earlier chunks of the same import are already in `pairs` (inside the open
    transaction), so the anti-join also removes duplicates across chunks; each
    text is written once, with no staging copy. A data label goes to its pair
    whether the pair is new or was already there, unless that pair already has
    a label from the same data annotator (a re-import adds none). Returns the
    pairs already present that the draw sends to the other split (_draw_again).
    """
    group = "content_hash" if split_by == "pair" else f"sha256({PROMPT_KEY_SQL.format(col='prompt')})"
    drawn = f"CASE WHEN ('0x' || left({group}, 8))::BIGINT < ? THEN 'test' ELSE 'train' END"
    if test_fraction_threshold == 0:  # nothing to draw: no prompt needs hashing
        drawn = "CASE WHEN ? = 0 THEN 'train' END"
    con.register("_chunk", chunk)
    try:
        con.execute(
            f"""
            INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash, import_batch, meta,
                               prompt_turns)
            WITH hashed AS (
                SELECT *, sha256(prompt || chr(31) || chosen || chr(31) || rejected) AS content_hash FROM _chunk
            ), fresh AS (
                SELECT * FROM hashed h
                WHERE NOT EXISTS (SELECT 1 FROM pairs p WHERE p.content_hash = h.content_hash)
                QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY ord) = 1
            )
            SELECT (SELECT coalesce(max(id), 0) FROM pairs) + row_number() OVER (ORDER BY ord),
                   source,
                   coalesce(split, {drawn}),
                   prompt, chosen, rejected, content_hash, ?, meta::JSON, prompt_turns::JSON
            FROM fresh ORDER BY ord
            """,
            [test_fraction_threshold, batch_id],
        )
        if chunk.column("label_annotator").null_count < chunk.num_rows:
            con.execute(
                """
                INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, value,
                                         run_id, extra)
                WITH labelled AS (
                    SELECT *, sha256(prompt || chr(31) || chosen || chr(31) || rejected) AS content_hash
                    FROM _chunk WHERE label_annotator IS NOT NULL
                )
                SELECT p.id, 'data', c.label_annotator, 'label', c.label_level, c.label_flip, c.label_margin,
                       c.label_value, ?, c.label_extra::JSON
                FROM labelled c JOIN pairs p ON p.content_hash = c.content_hash
                WHERE NOT EXISTS (SELECT 1 FROM annotations a WHERE a.pair_id = p.id AND a.annotator_kind = 'data'
                                  AND a.annotator_id = c.label_annotator)
                QUALIFY row_number() OVER (PARTITION BY p.id, c.label_annotator ORDER BY c.ord) = 1
                ORDER BY c.ord
                """,
                [_run_id(batch_id)],
            )
        return _draw_again(con, drawn, test_fraction_threshold, batch_id, resplit)
    finally:
        con.unregister("_chunk")


def _draw_again(con, drawn: str, threshold: int, batch_id: int, apply: bool) -> dict[str, int]:
    """{split: n} of the chunk's pairs already present, without a split of their own, that `drawn` puts elsewhere.

    Only train and test swap: a split the data named (validation, dev) is never
    moved. The draw hashes the prompt as on a first import, so a prompt's pairs
    move together. With `apply` they are moved, else only counted.
    """
    if threshold == 0:
        return {}
    where = f"""
        content_hash IN (SELECT sha256(prompt || chr(31) || chosen || chr(31) || rejected) FROM _chunk
                         WHERE split IS NULL)
        AND import_batch IS DISTINCT FROM ? AND split IN ('train', 'test') AND split <> {drawn}
    """
    if apply:
        rows = con.execute(f"UPDATE pairs SET split = {drawn} WHERE {where} RETURNING split",
                           [threshold, batch_id, threshold]).fetchall()
        counts: dict[str, int] = {}
        for (split,) in rows:
            counts[split] = counts.get(split, 0) + 1
        return counts
    return dict(con.execute(f"SELECT {drawn} AS moved_to, count(*) FROM pairs WHERE {where} GROUP BY ALL",
                            [threshold, batch_id, threshold]).fetchall())


def shared_prompts(con) -> dict[tuple[str, ...], int]:
    """Prompts (normalised as --test-fraction groups them) found in more than one split: splits -> count.

    A prompt in both train and test leaks: a model can be scored on a prompt
    it was trained on, with another response pair.
    """
    rows = con.execute(
        f"""
        SELECT splits, count(*) FROM (
            SELECT list_sort(list(DISTINCT split)) AS splits FROM pairs
            GROUP BY {PROMPT_KEY_SQL.format(col='prompt')} HAVING count(DISTINCT split) > 1
        ) GROUP BY splits ORDER BY count(*) DESC, splits
        """
    ).fetchall()
    return {tuple(splits): n for splits, n in rows}


@dataclass
class RecordsReader:
    """A PairReader over records already in memory (demo data, tests, the HF loader)."""

    label: str
    format: str
    default_source: str
    records: list
    position: int = 0

    @property
    def total(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[RawPair | Skip]:
        for self.position, record in enumerate(self.records, start=1):
            yield record
