"""Pages of pairs for any front end, fast on a million rows.

Pages are keyset pages on `id` (no OFFSET, which rescans every skipped row),
and a page is found in two steps: first the ids of the page from the narrow
`id` column and the filter columns, then the wide text columns of just those
rows. Row previews are cut and cleaned in SQL so that no full response text
ever crosses into Python for a table row; a pair's own screen gets the first
SHOWN_CHARS of each text and the size of the rest (a 50 MB response stays in
the database until someone asks for all of it, full_text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import duckdb

from prefstudio.db import source_split_where

LabelState = Literal["any", "unlabelled", "labelled"]
LABEL_STATES: tuple[LabelState, ...] = ("any", "unlabelled", "labelled")
PREVIEW_CHARS = 120
PAGE_SIZE = 100
SHOWN_CHARS = 32 * 1024  # of each text on a pair's screen: 600 wrapped lines, drawn in under 0.1 s
PAIR_TEXTS = ("prompt", "chosen", "rejected", "meta")  # the columns of a pair that can be too big to show


@dataclass(frozen=True)
class PairFilter:
    """Which pairs a list shows; the empty filter shows all of them."""

    source: str | None = None
    split: str | None = None
    annotated: LabelState = "any"
    search: str = ""

    def __post_init__(self) -> None:
        if self.annotated not in LABEL_STATES:
            raise ValueError(f"annotated must be one of {', '.join(LABEL_STATES)}, got {self.annotated!r}")


@dataclass(frozen=True, slots=True)
class PairRow:
    """One line of a pair list: previews, not full texts."""

    id: int
    source: str
    split: str
    n_annotations: int
    prompt: str
    chosen: str
    rejected: str
    data_value: float | None = None  # the latest margin that came with the data: its value and level
    data_level: int | None = None


@dataclass(frozen=True, slots=True)
class PairDetail:
    """A pair to read: each text whole, or its first SHOWN_CHARS characters when `left_out` names it."""

    id: int
    source: str
    split: str
    prompt: str
    chosen: str
    rejected: str
    import_batch: int | None
    content_hash: str
    meta: dict  # empty when the metadata is too big to show
    left_out: dict[str, int] = field(default_factory=dict)  # a cut text's name: its UTF-8 bytes not fetched


@dataclass(frozen=True, slots=True)
class AnnotationRow:
    id: int
    annotator_kind: str
    annotator_id: str
    outcome: str
    level: int | None
    flip: bool
    margin: float | None
    created_at: datetime
    value: float | None = None  # a data label's continuous margin
    expected_level: float | None = None  # a judge's soft label, from its logprobs (docs/methods.md)


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern that uses ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(f: PairFilter) -> tuple[str, list]:
    picked, params = source_split_where(f.source, f.split)
    clauses = ["true", *picked]
    if f.annotated != "any":
        negate = "NOT " if f.annotated == "unlabelled" else ""
        clauses.append(
            f"{negate}EXISTS (SELECT 1 FROM annotations a WHERE a.pair_id = p.id AND a.outcome = 'label')"
        )
    if f.search:
        # An ESCAPE clause makes DuckDB's ILIKE about twice as slow, so only say it when needed.
        escaped = escape_like(f.search)
        like = "ILIKE ? ESCAPE '\\'" if escaped != f.search else "ILIKE ?"
        clauses.append(f"(p.prompt {like} OR p.chosen {like} OR p.rejected {like})")
        params += [f"%{escaped}%"] * 3
    return " AND ".join(clauses), params


def count_pairs(con: duckdb.DuckDBPyConnection, f: PairFilter) -> int:
    where, params = _where(f)
    return con.execute(f"SELECT count(*) FROM pairs p WHERE {where}", params).fetchone()[0]


def fetch_page(
    con: duckdb.DuckDBPyConnection,
    f: PairFilter,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[PairRow]:
    """Up to `limit` matching pairs in id order: the first ones, the ones just
    after `after_id`, or the ones just before `before_id`."""
    if after_id is not None and before_id is not None:
        raise ValueError("give after_id or before_id, not both")
    descending = before_id is not None
    return _rows(con, _page_ids(con, f, above=after_id, below=before_id, descending=descending, limit=limit))


def fetch_last_page(con: duckdb.DuckDBPyConnection, f: PairFilter, *, limit: int = PAGE_SIZE) -> list[PairRow]:
    """The last `limit` matching pairs, in id order (see last_page_size for aligned pages)."""
    return _rows(con, _page_ids(con, f, above=None, below=None, descending=True, limit=limit))


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-total // page_size))


def last_page_size(total: int, page_size: int = PAGE_SIZE) -> int:
    """How many rows the last page holds when pages are cut from the first pair."""
    return total - (page_count(total, page_size) - 1) * page_size


def page_of(
    con: duckdb.DuckDBPyConnection, f: PairFilter, pair_id: int, *, page_size: int = PAGE_SIZE
) -> tuple[int, list[PairRow]]:
    """(page index, rows) of the page, cut from the first pair, that holds `pair_id`."""
    where, params = _where(f)
    rank = con.execute(f"SELECT count(*) FROM pairs p WHERE {where} AND p.id < ?", [*params, pair_id]).fetchone()[0]
    index, into_page = divmod(rank, page_size)
    if index == 0:
        return 0, fetch_page(con, f, limit=page_size)
    # The id just before the page start is `into_page` matching rows back from pair_id.
    row = con.execute(
        f"SELECT p.id FROM pairs p WHERE {where} AND p.id < ? ORDER BY p.id DESC LIMIT 1 OFFSET ?",
        [*params, pair_id, into_page],
    ).fetchone()
    return index, fetch_page(con, f, after_id=row[0], limit=page_size)


def adjacent_pair_id(con: duckdb.DuckDBPyConnection, f: PairFilter, pair_id: int, *, forward: bool) -> int | None:
    """The next (or previous) matching pair's id after `pair_id`, or None at the end."""
    if forward:
        found = _page_ids(con, f, above=pair_id, below=None, descending=False, limit=1)
    else:
        found = _page_ids(con, f, above=None, below=pair_id, descending=True, limit=1)
    return found[0] if found else None


def _page_ids(
    con: duckdb.DuckDBPyConnection,
    f: PairFilter,
    *,
    above: int | None,
    below: int | None,
    descending: bool,
    limit: int,
) -> list[int]:
    """Ascending ids of the first (or with `descending`, the last) `limit` matching
    pairs with above < id < below (None: no bound).

    ORDER BY id LIMIT n reads the whole table, which costs a few milliseconds for
    the narrow columns but seconds when a search reads every text. So a search
    looks through id windows, 8 pages' worth of ids first and then sixteen times
    wider each, and stops as soon as the page is full: a frequent word fills it
    from the first window.
    """
    where, params = _where(f)
    order = "DESC" if descending else "ASC"

    def ids_between(low: int | None, high: int | None, n: int) -> list[int]:
        bounds, values = [], []
        if low is not None:
            bounds.append("AND p.id > ?")
            values.append(low)
        if high is not None:
            bounds.append("AND p.id < ?")
            values.append(high)
        rows = con.execute(
            f"SELECT p.id FROM pairs p WHERE {where} {' '.join(bounds)} ORDER BY p.id {order} LIMIT ?",
            [*params, *values, n],
        ).fetchall()
        return [r[0] for r in rows]

    if not f.search:
        return sorted(ids_between(above, below, limit))
    first, last = con.execute("SELECT min(id), max(id) FROM pairs").fetchone()
    if first is None:
        return []
    low = first - 1 if above is None else above
    high = last + 1 if below is None else below
    found: list[int] = []
    span = limit * 8
    while len(found) < limit and high - low > 1:
        if descending:
            window_low = max(high - span, low)
            found += ids_between(window_low, high, limit - len(found))
            high = window_low + 1
        else:
            window_high = min(low + span, high)
            found += ids_between(low, window_high, limit - len(found))
            low = window_high - 1
        span *= 16
    return sorted(found)


def _preview(column: str) -> str:
    # Cut before the regex so that its cost does not grow with the text.
    return f"left(trim(regexp_replace(left(p.{column}, {PREVIEW_CHARS * 2}), '\\s+', ' ', 'g')), {PREVIEW_CHARS})"


def _rows(con: duckdb.DuckDBPyConnection, ids: list[int]) -> list[PairRow]:
    if not ids:
        return []
    # Joined to a list, not filtered by it: DuckDB pushes a small join's keys down into the
    # scan, so only the row groups holding these ids are read. (A list_contains filter is
    # applied after the scan, reading every text between the first and the last id.)
    rows = con.execute(
        f"""
        WITH page AS (SELECT unnest($ids) AS id),
        counts AS (
            SELECT a.pair_id, count(*) AS n FROM annotations a JOIN page ON a.pair_id = page.id GROUP BY a.pair_id
        ),
        data AS (
            SELECT a.pair_id, a.value, a.level FROM annotations a JOIN page ON a.pair_id = page.id
            WHERE a.annotator_kind = 'data' AND a.outcome = 'label'
            QUALIFY row_number() OVER (PARTITION BY a.pair_id ORDER BY a.id DESC) = 1
        )
        SELECT p.id, p.source, p.split, coalesce(c.n, 0),
               {_preview("prompt")}, {_preview("chosen")}, {_preview("rejected")}, d.value, d.level
        FROM page JOIN pairs p ON p.id = page.id LEFT JOIN counts c ON c.pair_id = p.id
        LEFT JOIN data d ON d.pair_id = p.id
        ORDER BY p.id
        """,
        {"ids": ids},
    ).fetchall()
    return [PairRow(*row) for row in rows]


def get_pair(con: duckdb.DuckDBPyConnection, pair_id: int, *, shown_chars: int = SHOWN_CHARS) -> PairDetail | None:
    """The pair with each text cut to `shown_chars` characters in SQL: a huge one never reaches Python whole."""
    row = con.execute(
        """
        SELECT id, source, split, substr(prompt, 1, $n), substr(chosen, 1, $n), substr(rejected, 1, $n),
               import_batch, content_hash, CASE WHEN length(meta) <= $n THEN meta END,
               strlen(prompt) - strlen(substr(prompt, 1, $n)), strlen(chosen) - strlen(substr(chosen, 1, $n)),
               strlen(rejected) - strlen(substr(rejected, 1, $n)),
               CASE WHEN length(meta) > $n THEN strlen(meta) ELSE 0 END
        FROM pairs WHERE id = $id
        """,
        {"n": shown_chars, "id": pair_id},
    ).fetchone()
    if row is None:
        return None
    meta = json.loads(row[8]) if row[8] is not None else {}
    left_out = {name: n for name, n in zip(PAIR_TEXTS, row[9:]) if n}
    return PairDetail(*row[:8], meta=meta if isinstance(meta, dict) else {"value": meta}, left_out=left_out)


def full_text(con: duckdb.DuckDBPyConnection, pair_id: int, name: str) -> str | None:
    """One of the pair's texts (PAIR_TEXTS) whole, however big; None when the pair is gone."""
    if name not in PAIR_TEXTS:
        raise ValueError(f"name must be one of {', '.join(PAIR_TEXTS)}, got {name!r}")
    row = con.execute(f"SELECT coalesce({name}::VARCHAR, '') FROM pairs WHERE id = ?", [pair_id]).fetchone()
    return None if row is None else row[0]


def size_text(n_bytes: int) -> str:
    """A size as people read it: '812 bytes', '64.0 KB', '49.9 MB' (powers of 1000, as file managers say)."""
    if n_bytes < 1000:
        return f"{n_bytes} byte{'' if n_bytes == 1 else 's'}"
    for unit in ("KB", "MB", "GB"):
        n_bytes /= 1000
        if n_bytes < 999.95 or unit == "GB":
            return f"{n_bytes:.1f} {unit}"
    raise AssertionError("unreachable")


def annotations_for(con: duckdb.DuckDBPyConnection, pair_id: int) -> list[AnnotationRow]:
    rows = con.execute(
        "SELECT id, annotator_kind, annotator_id, outcome, level, flip, margin, created_at, value, expected_level "
        "FROM annotations WHERE pair_id = ? ORDER BY created_at, id",
        [pair_id],
    ).fetchall()
    return [AnnotationRow(*row) for row in rows]


def data_margin_text(value: float | None, level: int | None) -> str:
    """A margin that came with the data, as the browser and the pair view show it: '0.82 → 3'."""
    if level is None:
        return ""
    if value is None:
        return f"→ {level}"
    shown = f"{value:.2f}" if abs(value) < 100 else f"{value:.3g}"
    return f"{shown} → {level}"


def source_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT source, count(*) FROM pairs GROUP BY source ORDER BY source").fetchall())


def sources(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT source FROM pairs ORDER BY source").fetchall()]


def splits(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT split FROM pairs ORDER BY split").fetchall()]
