"""The workspace database schema and its migrations.

Each schema version is a list of SQL statements that takes the database from
the previous version to this one. A new workspace runs them all; an older one
is backed up first (the workspace passes `before`), then runs the missing ones in
a single transaction, so a failed migration leaves the file as it was. docs/schema.md describes the tables for people who query the
file with the duckdb CLI; keep it in step with this file.
"""

from __future__ import annotations

from typing import Callable

import duckdb

from prefstudio.db import transaction
from prefstudio.errors import PrefstudioError, first_line

_V1 = [
    """
    CREATE TABLE meta (
        key   VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )""",
    """
    CREATE TABLE sources (
        name        VARCHAR PRIMARY KEY,
        description VARCHAR,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE import_batches (
        id          INTEGER PRIMARY KEY,
        location    VARCHAR NOT NULL,
        format      VARCHAR NOT NULL,
        options     JSON,
        started_at  TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        n_read      BIGINT NOT NULL,
        n_imported  BIGINT NOT NULL,
        n_duplicate BIGINT NOT NULL,
        n_skipped   BIGINT NOT NULL
    )""",
    """
    CREATE TABLE pairs (
        id           BIGINT NOT NULL,
        source       VARCHAR NOT NULL,
        split        VARCHAR NOT NULL,
        prompt       VARCHAR NOT NULL,
        chosen       VARCHAR NOT NULL,
        rejected     VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        import_batch INTEGER,
        meta         JSON
    )""",
    """
    CREATE TABLE annotations (
        id             BIGINT PRIMARY KEY,
        pair_id        BIGINT NOT NULL,
        annotator_kind VARCHAR NOT NULL CHECK (annotator_kind IN ('human', 'llm', 'model')),
        annotator_id   VARCHAR NOT NULL,
        outcome        VARCHAR NOT NULL CHECK (outcome IN ('label', 'inconsistent', 'parse_error', 'skip')),
        level          TINYINT CHECK (level BETWEEN 0 AND 3),
        flip           BOOLEAN NOT NULL DEFAULT false,
        margin         DOUBLE,
        created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
        prompt_version VARCHAR,
        raw_response_ab VARCHAR,
        raw_response_ba VARCHAR,
        tokens_in      INTEGER,
        tokens_out     INTEGER,
        cost_usd       DOUBLE,
        run_id         VARCHAR,
        extra          JSON
    )""",
    """
    CREATE TABLE jobs (
        id          VARCHAR PRIMARY KEY,
        kind        VARCHAR NOT NULL,
        name        VARCHAR,
        state       VARCHAR NOT NULL,
        config      JSON,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
        started_at  TIMESTAMP,
        finished_at TIMESTAMP
    )""",
    """
    CREATE TABLE predictions (
        job_id     VARCHAR NOT NULL,
        checkpoint VARCHAR NOT NULL,
        pair_id    BIGINT NOT NULL,
        r_chosen   DOUBLE NOT NULL,
        r_rejected DOUBLE NOT NULL
    )""",
    """
    CREATE TABLE metrics (
        job_id     VARCHAR NOT NULL,
        checkpoint VARCHAR NOT NULL,
        split      VARCHAR NOT NULL,
        source     VARCHAR NOT NULL,
        name       VARCHAR NOT NULL,
        value      DOUBLE
    )""",
]

# v2: the LLM judge's per-call cache and its runs (docs/methods.md, "The LLM judge": never pay twice).
_V2 = [
    """
    CREATE TABLE judge_calls (
        cache_key      VARCHAR PRIMARY KEY,
        model          VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        pair_id        BIGINT,
        chosen_as      VARCHAR NOT NULL CHECK (chosen_as IN ('A', 'B')),
        response       VARCHAR,
        tokens_in      INTEGER,
        tokens_out     INTEGER,
        cost_usd       DOUBLE,
        run_id         VARCHAR,
        created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE judge_runs (
        id             VARCHAR PRIMARY KEY,
        model          VARCHAR NOT NULL,
        base_url       VARCHAR,
        prompt_version VARCHAR NOT NULL,
        state          VARCHAR NOT NULL,
        message        VARCHAR,
        started_at     TIMESTAMP NOT NULL,
        finished_at    TIMESTAMP,
        n_pairs        BIGINT,
        n_calls        BIGINT,
        n_cached       BIGINT,
        n_inconsistent BIGINT,
        n_parse_errors BIGINT,
        tokens_in      BIGINT,
        tokens_out     BIGINT,
        cost_usd       DOUBLE
    )""",
    # Annotations are written by several writers at once (a person in the TUI, a judge run):
    # ids come from a sequence, not max(id) + 1. No v1 release wrote annotations.
    "CREATE SEQUENCE annotation_id_seq START 1",
    "ALTER TABLE annotations ALTER COLUMN id SET DEFAULT nextval('annotation_id_seq')",
]

# v3: Best-of-N (docs/methods.md, "Best-of-N"): prompts, their sampled candidates, rewards per candidate,
# judged comparisons.
# Keys make every write repeatable: re-importing a file, re-ingesting a job or re-scoring adds no rows.
_V3 = [
    """
    CREATE TABLE bon_runs (
        id          VARCHAR PRIMARY KEY,
        origin      VARCHAR NOT NULL CHECK (origin IN ('hf', 'endpoint', 'file')),
        policy      VARCHAR NOT NULL,
        settings    JSON,
        job_id      VARCHAR,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    "CREATE SEQUENCE bon_prompt_id_seq START 1",
    """
    CREATE TABLE bon_prompts (
        id          BIGINT PRIMARY KEY DEFAULT nextval('bon_prompt_id_seq'),
        run_id      VARCHAR NOT NULL,
        ord         INTEGER NOT NULL,
        prompt      VARCHAR NOT NULL,
        prompt_hash VARCHAR NOT NULL,
        pair_id     BIGINT,
        source      VARCHAR,
        UNIQUE (run_id, prompt_hash)
    )""",
    """
    CREATE TABLE bon_candidates (
        prompt_id   BIGINT NOT NULL,
        idx         INTEGER NOT NULL,
        response    VARCHAR NOT NULL,
        n_tokens    INTEGER,
        finish      VARCHAR,
        PRIMARY KEY (prompt_id, idx)
    )""",
    """
    CREATE TABLE bon_scores (
        prompt_id   BIGINT NOT NULL,
        idx         INTEGER NOT NULL,
        scorer      VARCHAR NOT NULL,
        checkpoint  VARCHAR NOT NULL,
        reward      DOUBLE NOT NULL,
        PRIMARY KEY (prompt_id, idx, scorer, checkpoint)
    )""",
    """
    CREATE TABLE bon_judgements (
        prompt_id      BIGINT NOT NULL,
        idx            INTEGER NOT NULL,
        baseline_idx   INTEGER NOT NULL,
        model          VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        outcome        VARCHAR NOT NULL CHECK (outcome IN ('win', 'loss', 'tie', 'inconsistent', 'parse_error')),
        level          TINYINT,
        key_ab         VARCHAR NOT NULL,
        key_ba         VARCHAR NOT NULL,
        run_id         VARCHAR,
        created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (prompt_id, idx, baseline_idx, model, prompt_version)
    )""",
]

# v4: margins that come with the data (docs/methods.md, "Margins that come with the data"): annotations of
# kind 'data' and their continuous value. DuckDB cannot alter a CHECK constraint, so the table is rebuilt with
# the same columns and rows (ids, defaults and the id sequence kept), plus `value`.
_V4 = [
    """
    CREATE TABLE annotations_v4 (
        id             BIGINT PRIMARY KEY DEFAULT nextval('annotation_id_seq'),
        pair_id        BIGINT NOT NULL,
        annotator_kind VARCHAR NOT NULL CHECK (annotator_kind IN ('human', 'llm', 'model', 'data')),
        annotator_id   VARCHAR NOT NULL,
        outcome        VARCHAR NOT NULL CHECK (outcome IN ('label', 'inconsistent', 'parse_error', 'skip')),
        level          TINYINT CHECK (level BETWEEN 0 AND 3),
        flip           BOOLEAN NOT NULL DEFAULT false,
        margin         DOUBLE,
        created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
        prompt_version VARCHAR,
        raw_response_ab VARCHAR,
        raw_response_ba VARCHAR,
        tokens_in      INTEGER,
        tokens_out     INTEGER,
        cost_usd       DOUBLE,
        run_id         VARCHAR,
        extra          JSON,
        value          DOUBLE
    )""",
    """
    INSERT INTO annotations_v4 (id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, created_at,
                                prompt_version, raw_response_ab, raw_response_ba, tokens_in, tokens_out, cost_usd,
                                run_id, extra)
    SELECT id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, created_at, prompt_version,
           raw_response_ab, raw_response_ba, tokens_in, tokens_out, cost_usd, run_id, extra
    FROM annotations""",
    "DROP TABLE annotations",
    "ALTER TABLE annotations_v4 RENAME TO annotations",
]

# v5: the prompt's turns as chat messages (docs/schema.md, `pairs.prompt_turns`), so a chat model reads the turns the
# data had, not the flattened transcript. Pairs imported before keep NULL, which train/chat.py reads as their prompt
# text says (an HH transcript turn by turn, else one user turn): exactly how they were rendered before v5.
_V5 = ["ALTER TABLE pairs ADD COLUMN prompt_turns JSON"]

# v6: what a labelling judge run was asked for (docs/schema.md, `judge_runs`), so that asking again for the same
# after a cancel goes on with the pairs the limit has left instead of judging `limit` new ones
# (prefstudio/judge/continuation.py). Runs before v6 keep NULL: none of them is continued.
_V6 = [
    "ALTER TABLE judge_runs ADD COLUMN purpose VARCHAR",
    "ALTER TABLE judge_runs ADD COLUMN source VARCHAR",
    "ALTER TABLE judge_runs ADD COLUMN split VARCHAR",
    "ALTER TABLE judge_runs ADD COLUMN pair_limit BIGINT",
    "ALTER TABLE judge_runs ADD COLUMN continues VARCHAR",
]

# v7: the judge of today (docs/schema.md): the verdict distribution a call's logprobs gave, kept with the call so a
# cached answer keeps it; the expected level it implies, beside the hard level of an annotation; and the OpenAI
# Batch API's batches, journaled so that a closed app or a killed process goes on polling (prefstudio/judge/batch.py).
_V7 = [
    "ALTER TABLE judge_calls ADD COLUMN verdict_probs JSON",
    "ALTER TABLE annotations ADD COLUMN expected_level DOUBLE",
    """
    CREATE TABLE judge_batches (
        id             VARCHAR PRIMARY KEY,
        batch_id       VARCHAR,
        input_file_id  VARCHAR,
        output_file_id VARCHAR,
        error_file_id  VARCHAR,
        model          VARCHAR NOT NULL,
        base_url       VARCHAR,
        prompt_version VARCHAR NOT NULL,
        state          VARCHAR NOT NULL,
        message        VARCHAR,
        n_requests     BIGINT NOT NULL,
        selection      JSON,
        created_at     TIMESTAMP NOT NULL,
        finished_at    TIMESTAMP
    )""",
]

# MIGRATIONS[v] takes a database at version v-1 to version v (v=1: empty file).
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7}


def latest_version() -> int:
    return max(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' AND table_schema = 'main'"
    ).fetchone()[0]
    if not has_meta:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, where: str,
            before: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Bring the database to the latest schema; returns (from_version, to_version).

    `before(found, latest)` runs first when a database with data is about to change (the workspace backs
    it up there); if it raises, nothing is migrated.
    """
    found, latest = current_version(con), latest_version()
    if found > latest:
        raise PrefstudioError(
            f"{where}: made by a newer prefstudio (schema v{found}; this one knows up to v{latest}); "
            "upgrade prefstudio to open it"
        )
    if found == latest:
        return found, latest
    if before is not None and found > 0:
        before(found, latest)
    try:
        with transaction(con):
            for version in range(found + 1, latest + 1):
                for statement in MIGRATIONS[version]:
                    con.execute(statement)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(latest)])
    except Exception as exc:
        raise PrefstudioError(
            f"{where}: could not migrate schema v{found} to v{latest} ({first_line(exc)}); the file is unchanged"
        ) from None
    return found, latest
