"""Pairs out, with the margins their labels give, in the layout TRL's RewardTrainer reads.

Columns: prompt, chosen, rejected, margin, source (then split, level,
level_name, flip, pair_id and label_by, the kind:annotator whose label counts,
for those who want them, and expected_level, the judge's soft label where its
logprobs gave one: docs/methods.md). level_name names the level as the app and `agreement`
do ("3 · Distinctly superior", labels.level_label). The margin comes from the label that counts (prefstudio.labels) through
the workspace's *current* level->margin map, so switching the scale in
workspace.toml and exporting again gives the other scale; with `[margins] data
= "value"`, a data label gives its continuous value instead. A flipped pair
(the annotator preferred `rejected`) is kept with a negative margin by
default, or swapped, or dropped; an unlabelled pair gets margin 0 or is dropped.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import duckdb

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.labels import RESOLVED_LABELS_SQL, level_label
from prefstudio.paths import cannot_write

Flips = Literal["keep", "swap", "drop"]
Unlabelled = Literal["zero", "drop"]
DataMargin = Literal["level", "value"]


def export_query(margins: tuple[float, float, float, float], flips: Flips, unlabelled: Unlabelled,
                 split: str | None, data: DataMargin = "level") -> tuple[str, list]:
    """The SELECT behind export and a job's snapshot; `data`: a data label's margin, its level's or its value."""
    margin = "list_extract(?::DOUBLE[], level + 1)"
    if data == "value":
        margin = f"CASE WHEN annotator_kind = 'data' AND value IS NOT NULL THEN value ELSE {margin} END"
    swap = "l.flip" if flips == "swap" else "FALSE"
    where = ["TRUE"]
    params: list = [list(margins), [level_label(level) for level in range(len(margins))]]
    if flips == "drop":
        where.append("NOT coalesce(l.flip, FALSE)")
    if unlabelled == "drop":
        where.append("l.level IS NOT NULL")
    if split:
        where.append("p.split = ?")
        params.append(split)
    sql = f"""
        SELECT p.prompt,
               CASE WHEN {swap} THEN p.rejected ELSE p.chosen END AS chosen,
               CASE WHEN {swap} THEN p.chosen ELSE p.rejected END AS rejected,
               CASE WHEN l.level IS NULL THEN 0.0
                    WHEN l.flip AND NOT {swap} THEN -l.m ELSE l.m END AS margin,
               p.source, p.split, l.level::INTEGER AS level, l.level_name, coalesce(l.flip, FALSE) AS flip,
               p.id AS pair_id,
               l.annotator_kind || ':' || l.annotator_id AS label_by,
               CASE WHEN {swap} THEN -x.expected_level ELSE x.expected_level END AS expected_level
        FROM pairs p LEFT JOIN (
            SELECT *, {margin} AS m, list_extract(?::VARCHAR[], level + 1) AS level_name FROM ({RESOLVED_LABELS_SQL})
        ) l ON l.pair_id = p.id
        LEFT JOIN LATERAL (  -- the soft label of the label that counts, where its judge gave logprobs
            SELECT a.expected_level FROM annotations a WHERE a.pair_id = p.id AND a.annotator_kind = l.annotator_kind
            AND a.annotator_id = l.annotator_id AND a.outcome IN ('label', 'inconsistent') ORDER BY a.id DESC LIMIT 1
        ) x ON TRUE
        WHERE {' AND '.join(where)}
        ORDER BY p.id
    """
    return sql, params


def export_pairs(ws, out: Path, *, fmt: str = "auto", flips: Flips = "keep", unlabelled: Unlabelled = "zero",
                 split: str | None = None) -> tuple[int, str]:
    """Write the pairs; returns (rows written, format used)."""
    out = Path(out)
    if fmt == "auto":
        name = out.name.lower()
        fmt = "parquet" if name.endswith(".parquet") else "jsonl" if name.endswith((".jsonl", ".json")) else "hf"
    if fmt not in ("parquet", "jsonl", "hf"):
        raise PrefstudioError(f"--format {fmt!r}: expected parquet, jsonl or hf")
    empty_folder = out.is_dir() and not any(out.iterdir())
    if out.exists() and not empty_folder:
        raise PrefstudioError(f"{out}: already exists; give a new path (nothing is overwritten)")
    check_writable_parent(out)
    values = tuple(ws.config.margins.margin(level) for level in range(4))
    sql, params = export_query(values, flips, unlabelled, split, data=ws.config.margins.data)
    cursor = ws.cursor()  # its own cursor, for every statement: the shared connection may hold an unfinished result
    try:
        table = cursor.sql(sql, params=params).to_arrow_table()
        try:
            _write(cursor, table, out, fmt)
        except BaseException as exc:
            _remove(out, keep_folder=empty_folder)  # nothing half-written is left behind
            if isinstance(exc, (OSError, duckdb.IOException)) or type(exc).__module__.startswith("pyarrow"):
                reason = getattr(exc, "strerror", None) or first_line(exc)
                raise PrefstudioError(f"{out}: could not write the export ({reason}); nothing was kept") from None
            raise
    finally:
        cursor.close()
    return table.num_rows, fmt


def check_writable_parent(out: Path) -> None:
    """Refuse, in one line, an output path whose folder is missing, is a file, or cannot be written."""
    parent = out.parent
    if not parent.is_dir():
        blocking = parent
        while not blocking.exists() and blocking != blocking.parent:
            blocking = blocking.parent
        if blocking.exists() and not blocking.is_dir():
            raise PrefstudioError(f"{out}: {blocking} is a file, not a folder; give another path")
        raise PrefstudioError(f"{out}: folder {parent} does not exist; make it first (mkdir -p {parent}) "
                              "or check the path")
    reason = cannot_write(parent)
    if reason:
        raise PrefstudioError(f"{out}: cannot write into {parent} ({reason}); give a folder you can write to")


def _write(cursor, table, out: Path, fmt: str) -> None:
    if fmt == "jsonl":
        cursor.register("_export", table)
        cursor.execute(f"COPY _export TO '{_quote(out)}' (FORMAT json)")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        import datasets
        import pyarrow.compute as pc

        splits = {
            name: datasets.Dataset(table.filter(pc.equal(table["split"], name)))
            for name in sorted(set(table["split"].to_pylist()))
        }
        datasets.DatasetDict(splits).save_to_disk(str(out))


def _remove(out: Path, keep_folder: bool) -> None:
    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
        if keep_folder:
            out.mkdir(exist_ok=True)
    else:
        out.unlink(missing_ok=True)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
