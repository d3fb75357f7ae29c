"""A workspace that is busy, damaged, missing or on a bad path: one line that says how to recover.

The damage helpers are shared with tests/test_backup.py, which drives the same damage through the app.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import duckdb

from tests.bad_input_cases.case import Case, Fault

DB = "workspace.duckdb"
RESTORE_HINT = "restore the newest backup ("


# -- damage, as a disk, a copy cut short or a careless `>` does it --------------------------------------------
def fill(ws: Path, n: int = 2000) -> None:
    """Put n pairs (some 200 KB of text for 2,000) in the workspace and back it up, as a workspace in use would be."""
    from prefstudio.workspace import Workspace

    with Workspace.open(ws) as opened:
        opened.con.execute("INSERT INTO sources (name) VALUES ('s')")
        opened.con.execute(
            "INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash, import_batch, meta) "
            "SELECT i, 's', 'train', 'prompt ' || i || ' ' || md5(i::VARCHAR) || md5('p' || i), "
            "'chosen ' || md5('c' || i), 'rejected ' || md5('r' || i), md5(i::VARCHAR), NULL, NULL FROM range(?) t(i)",
            [n])
        opened.back_up()


def flip_used_block(db: Path) -> None:
    """Flip 8 bytes inside the pairs' prompts, in the middle of the file: bytes every read of them checks.

    DuckDB's block checksum XORs a product per 8-byte word: it finds any change to one word, but flipping
    two equal words (text that repeats every 32 bytes, flipped 64 bytes at a time) cancels out, and then a
    later query fails inside DuckDB instead (workspace.damaged words that too). A flip in a free block, or in
    a block's unused tail, is harmless: it is never read.
    """
    con = duckdb.connect(str(db), read_only=True)
    block_size, total_blocks = con.execute("SELECT block_size, total_blocks FROM pragma_database_size()").fetchone()
    block_id, offset = con.execute("SELECT block_id, block_offset FROM pragma_storage_info('pairs') "
                                   "WHERE column_name = 'prompt' AND block_id >= 0 LIMIT 1").fetchone()
    con.close()
    header = db.stat().st_size - total_blocks * block_size  # the file's headers come before block 0
    flip(db, (header + block_id * block_size + offset + 1024) // 8 * 8, 8)


def flip_past_the_checksum(ws: Path, file: Path) -> None:
    """A Case setup: prompts that repeat every 32 bytes, 64 of their bytes flipped: the checksum cancels out."""
    from prefstudio.workspace import Workspace

    with Workspace.open(ws) as opened:
        opened.con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash, "
                           "import_batch, meta) SELECT i, 's', 'train', 'prompt ' || i || ' ' || "
                           "repeat(md5(i::VARCHAR), 4), 'c', 'r', md5(i::VARCHAR), NULL, NULL FROM range(300) t(i)")
        opened.back_up()
    db = ws / DB
    con = duckdb.connect(str(db), read_only=True)
    block_size, total_blocks = con.execute("SELECT block_size, total_blocks FROM pragma_database_size()").fetchone()
    block_id, offset = con.execute("SELECT block_id, block_offset FROM pragma_storage_info('pairs') "
                                   "WHERE column_name = 'prompt' AND block_id >= 0 LIMIT 1").fetchone()
    con.close()
    flip(db, (db.stat().st_size - total_blocks * block_size + block_id * block_size + offset + 1024) // 8 * 8, 64)
    file.with_suffix(".sha256").write_text(sha256(db))


def flip(path: Path, offset: int, n: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def cut_in_half(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def empty(db: Path) -> None:
    os.truncate(db, 0)


def random_bytes(db: Path) -> None:
    db.write_bytes(random.Random(0).randbytes(1 << 20))


DAMAGES = {"with flipped bytes in the middle": flip_used_block, "cut in half": cut_in_half,
           "truncated to zero length": empty, "overwritten with random bytes": random_bytes}


def damaged(how):
    """A Case setup: fill and back up the workspace, damage its file, and note the file's hash beside the case's file."""

    def setup(ws: Path, file: Path) -> None:
        fill(ws)
        how(ws / DB)
        file.with_suffix(".sha256").write_text(sha256(ws / DB))

    return setup


def untouched(ws: Path, file: Path) -> None:
    """A Case check: the damaged file is as the damage left it (nothing rewrote or replaced it)."""
    assert sha256(ws / DB) == file.with_suffix(".sha256").read_text()
    assert not list(ws.glob(f"{DB}.before-restore-*"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- other setups ------------------------------------------------------------------------------------------------
def backed_up_then_deleted(ws: Path, file: Path) -> None:
    fill(ws, 10)
    (ws / DB).unlink()


def no_database_made(ws: Path, file: Path) -> None:
    assert not (ws / DB).exists()


def jobs_is_a_file(ws: Path, file: Path) -> None:
    shutil.rmtree(ws / "jobs")
    (ws / "jobs").write_text("not a folder\n")


def jobs_file_kept(ws: Path, file: Path) -> None:
    assert (ws / "jobs").read_text() == "not a folder\n"


def database_deleted(ws: Path, file: Path) -> None:
    (ws / DB).unlink()


def nothing_made(path_in: str):
    def check(ws: Path, file: Path) -> None:
        assert not (file.parent / path_in).exists()

    return check


def nothing_under(ws: Path, file: Path) -> None:
    assert file.read_bytes() == b"a file\n"


def info(ws: Path, file: Path) -> list[str]:
    return ["info", str(ws)]


CASES: list[Case] = [
    *[Case(f"workspace.duckdb {name}", f"damaged-{name.replace(' ', '-')}.txt", b"", RESTORE_HINT, None,
           command=info, setup=damaged(how), check=untouched) for name, how in DAMAGES.items()],
    # DuckDB 2.0.1 then fails inside ("INTERNAL Error: Invalid UTF-8"): the line says the file may be damaged
    Case("workspace.duckdb with flipped bytes its checksum misses", "damaged-past-checksum.txt", b"",
         RESTORE_HINT, None, command=info, setup=flip_past_the_checksum, check=untouched),
    Case("workspace.duckdb cut in half, `jobs`", "damaged-jobs.txt", b"", RESTORE_HINT, None,
         command=lambda ws, file: ["jobs", str(ws)], setup=damaged(cut_in_half), check=untouched),
    Case("workspace.duckdb with flipped bytes, `export`", "damaged-export.txt", b"", RESTORE_HINT, None,
         command=lambda ws, file: ["export", str(ws), str(file.parent / "out-damaged.parquet")],
         setup=damaged(flip_used_block), check=untouched),
    Case("workspace.duckdb with flipped bytes, `import`", "damaged-import.jsonl",
         b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n', RESTORE_HINT, None,
         command=lambda ws, file: ["import", str(ws), str(ws.parent / "damaged-import.jsonl")],
         setup=damaged(flip_used_block), check=untouched),
    Case("workspace.duckdb truncated to zero length, `open` (the app)", "damaged-open.txt", b"", RESTORE_HINT, None,
         command=lambda ws, file: ["open", str(ws)], setup=damaged(empty), check=untouched),
    Case("workspace.duckdb truncated to zero length, `backup`", "damaged-backup.txt", b"", RESTORE_HINT, None,
         command=lambda ws, file: ["backup", str(ws)], setup=damaged(empty), check=untouched),
    Case("workspace.duckdb deleted, workspace.toml still there", "deleted.txt", b"",
         "workspace.duckdb: missing beside", None, command=info, setup=backed_up_then_deleted,
         check=no_database_made),
    Case("workspace.duckdb deleted and no backup", "deleted-no-backup.txt", b"", "there is no backup in", None,
         command=info, setup=database_deleted, check=no_database_made),
    Case("`init` on a folder whose workspace.duckdb is missing", "deleted-init.txt", b"",
         "holds a workspace whose workspace.duckdb is missing", None,
         command=lambda ws, file: ["init", str(ws)], setup=database_deleted, check=no_database_made),
    Case("`restore` with no backup", "restore-none.txt", b"", "no backup to restore", None,
         command=lambda ws, file: ["restore", str(ws)], check=lambda ws, file: None),
    Case("`restore` of a backup that does not exist", "restore-missing.txt", b"", "no such backup", None,
         command=lambda ws, file: ["restore", str(ws), "2020-01-01_000000_manual"], check=lambda ws, file: None),
    Case("`init` at a path under a regular file", "init-under-file.txt", b"a file\n", "is a file, not a folder", None,
         command=lambda ws, file: ["init", str(file / "ws")], workspace=False, check=nothing_under),
    Case("a workspace whose jobs/ is a file, opened", "jobs-file-info.txt", b"",
         "jobs: is a file, but prefstudio keeps one folder per job there", None, command=info,
         setup=jobs_is_a_file, check=jobs_file_kept),
    Case("a workspace whose jobs/ is a file, `jobs`", "jobs-file-jobs.txt", b"",
         "jobs: is a file, but prefstudio keeps one folder per job there", None,
         command=lambda ws, file: ["jobs", str(ws)], setup=jobs_is_a_file, check=jobs_file_kept),
    Case("a workspace whose jobs/ is a file, `train`", "jobs-file-train.txt", b"",
         "jobs: is a file, but prefstudio keeps one folder per job there", None,
         command=lambda ws, file: ["train", str(ws), "--backbone", "gpt2", "--no-start"], setup=jobs_is_a_file,
         check=jobs_file_kept),
    Case("`[backup] keep = 0` in workspace.toml", "keep-zero.txt", b"", "backup.keep: Input should be greater than or "
         "equal to 1", None, command=info, setup=lambda ws, file: (ws / "workspace.toml").write_text(
             'name = "ws"\n[backup]\nkeep = 0\n'), check=lambda ws, file: None),
    Case("`export` into a folder that does not exist", "export-nofolder.txt", b"", "does not exist; make it first",
         None, command=lambda ws, file: ["export", str(ws), str(file.parent / "no-such-folder" / "out.parquet")],
         check=nothing_made("no-such-folder")),
    Case("`export` to a path under a regular file", "export-under-file.txt", b"a file\n", "is a file, not a folder",
         None, command=lambda ws, file: ["export", str(ws), str(file / "out.parquet")], check=nothing_under),
]

FAULTS = [
    Fault("a second prefstudio on the same workspace", "open the app twice",
          "`prefstudio: error: … is in use by prefstudio process PID …`, one line",
          "tests/test_tui_browser.py::test_run_app_on_a_busy_workspace_prints_one_line_and_returns_2"),
    Fault("a damaged database file, in the app", "flip, cut, empty or overwrite workspace.duckdb; `prefstudio open`",
          "the one line naming the newest backup and `prefstudio restore`, exit 2; no app, no traceback",
          "tests/test_backup.py::test_the_app_on_a_damaged_file_prints_the_one_line_and_returns_2"),
    Fault("damage found after the app started (a file too big to read whole on open)",
          "a damaged block that only a later query reads",
          "the app ends with the same one line and exit 2, not an empty-looking browser",
          "tests/test_backup.py::test_damage_met_by_a_later_query_ends_the_app_with_the_one_line"),
    Fault("damage found by a later query in the CLI", "a damaged block that only the command's query reads",
          "the same one line, exit 2",
          "tests/test_backup.py::test_damage_met_by_a_later_query_in_the_cli_is_the_one_line"),
    Fault("`restore` while the workspace is open", "the app open, `prefstudio restore ws` in another terminal",
          "refused: `… is in use by prefstudio process PID …`; the database is untouched",
          "tests/test_backup.py::test_restore_is_refused_while_the_workspace_is_open"),
    Fault("a read-only workspace folder", "chmod a-w ws (as root: chattr +i), then `info` / `import` / `restore`",
          "`…: the workspace folder is read-only (…); prefstudio needs write access to it …`, exit 2",
          "tests/test_backup.py::test_a_read_only_workspace_folder_is_one_line"),
    Fault("`init` in a read-only folder", "chmod a-w (as root: chattr +i) a folder, `prefstudio init folder/ws`",
          "`…: cannot make a workspace there: … is not writable (…)`, exit 2",
          "tests/test_backup.py::test_init_in_a_read_only_folder_is_one_line"),
    Fault("`export` into a read-only folder", "chmod a-w (as root: chattr +i) the folder, then `export`",
          "`…: cannot write into … (…); give a folder you can write to`, exit 2, nothing written",
          "tests/test_backup.py::test_export_into_a_read_only_folder_is_one_line"),
]
