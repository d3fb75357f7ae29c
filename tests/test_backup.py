"""Backups and restores with real files; damaged, missing and unwritable workspaces as the CLI and the app meet them.

The CLI side of each damage is a Case in tests/bad_input_cases/workspace.py (a real subprocess); here: the
round trip, the automatic backups, and the app.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.app import App

from prefstudio import backup, schema, workspace
from prefstudio.cli.main import main
from prefstudio.config import load_config, save_config
from prefstudio.errors import PrefstudioError, WorkspaceBusy
from prefstudio.tui.app import PrefstudioApp, run_app
from prefstudio.workspace import DB_NAME, DatabaseDamaged, Workspace
from tests.bad_input_cases.workspace import DAMAGES, RESTORE_HINT, fill, flip_used_block, sha256

PAIRS = "SELECT * FROM pairs ORDER BY id"
ANNOTATIONS = "SELECT * FROM annotations ORDER BY id"


def labelled(path: Path) -> Path:
    """A workspace of 300 pairs with three labels."""
    Workspace.init(path).close()
    fill(path, 300)
    shutil.rmtree(path / backup.BACKUPS_DIR)
    with Workspace.open(path) as ws:
        ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip) "
                       "VALUES (1, 'human', 'ann', 'label', 2, false), (2, 'human', 'ann', 'label', 0, true), "
                       "(3, 'llm', 'judge', 'inconsistent', 0, false)")
    return path


def rows(path: Path) -> tuple[list, list]:
    with Workspace.open(path) as ws:
        return ws.con.execute(PAIRS).fetchall(), ws.con.execute(ANNOTATIONS).fetchall()


def made_days_ago(made: backup.Backup, days: float) -> None:
    manifest = made.folder / backup.MANIFEST
    data = json.loads(manifest.read_text())
    data["made_at"] = (made.made_at - datetime.timedelta(days=days)).isoformat()
    manifest.write_text(json.dumps(data))


def set_created_at(path: Path, days_ago: float) -> None:
    with Workspace.open(path, daily_backup=False) as ws:
        when = datetime.datetime.now() - datetime.timedelta(days=days_ago)
        ws.con.execute("UPDATE meta SET value = ? WHERE key = 'created_at'", [when.isoformat()])


def one_line(err: str) -> str:
    assert err.startswith("prefstudio: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- backup and restore ----------------------------------------------------------------------------------------
def test_backup_then_damage_then_restore_gives_back_the_same_pairs_and_annotations(tmp_path, capsys):
    path = labelled(tmp_path / "ws")
    before = rows(path)
    assert main(["backup", str(path)]) == 0
    assert "wrote backup" in capsys.readouterr().out
    flip_used_block(path / DB_NAME)
    damaged_hash = sha256(path / DB_NAME)
    with pytest.raises(DatabaseDamaged, match=RESTORE_HINT.replace("(", r"\(")):
        Workspace.open(path)

    assert main(["restore", str(path)]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and "300 pairs, 3 annotations" in out
    assert rows(path) == before
    aside = list(path.glob(f"{DB_NAME}.before-restore-*"))
    assert len(aside) == 1 and sha256(aside[0]) == damaged_hash  # the damaged file is kept, as it was
    with Workspace.open(path) as ws:  # the annotation ids go on after the restored ones
        ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome) "
                       "VALUES (4, 'human', 'ann', 'skip')")
        assert ws.con.execute("SELECT max(id) FROM annotations").fetchone()[0] == 4


def test_restore_by_name_or_folder_and_backup_elsewhere(tmp_path, capsys):
    path = labelled(tmp_path / "ws")
    with Workspace.open(path) as ws:
        first = ws.back_up()
        ws.con.execute("DELETE FROM pairs WHERE id >= 100")
        elsewhere = ws.back_up(tmp_path / "usb")
    assert elsewhere.folder.parent == tmp_path / "usb" and elsewhere.pairs == 100
    assert backup.newest_backup(path / backup.BACKUPS_DIR) == first  # --out is not among the workspace's
    assert main(["restore", str(path), first.folder.name]) == 0
    assert len(rows(path)[0]) == 300
    assert main(["restore", str(path), str(elsewhere.folder)]) == 0
    assert len(rows(path)[0]) == 100
    assert len(list(path.glob(f"{DB_NAME}.before-restore-*"))) == 2


def test_a_backup_that_cannot_be_restored_leaves_the_database_as_it_was(tmp_path):
    path = labelled(tmp_path / "ws")
    with Workspace.open(path) as ws:
        made = ws.back_up()
    before = sha256(path / DB_NAME)
    (made.folder / "pairs.parquet").write_bytes(b"cut")
    with pytest.raises(PrefstudioError, match="cannot be restored.*the database is as it was"):
        workspace.restore(path)
    made_days_ago(made, 0)  # rewrite the manifest only: a newer prefstudio's backup
    data = json.loads((made.folder / backup.MANIFEST).read_text())
    (made.folder / backup.MANIFEST).write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(PrefstudioError, match="newer prefstudio"):
        workspace.restore(path)
    assert sha256(path / DB_NAME) == before
    assert sorted(p.name for p in path.iterdir()) == [".prefstudio.lock", "backups", "jobs", DB_NAME, "workspace.toml"]


def test_restore_is_refused_while_the_workspace_is_open(tmp_path):
    path = labelled(tmp_path / "ws")
    with Workspace.open(path) as ws:
        ws.back_up()
        before = sha256(path / DB_NAME)
        with pytest.raises(WorkspaceBusy, match="in use by prefstudio process"):
            workspace.restore(path)
        assert ws.count_pairs() == 300
    assert sha256(path / DB_NAME) == before and not list(path.glob("*.before-restore-*"))


# -- automatic backups -------------------------------------------------------------------------------------------
def test_a_backup_is_made_before_each_migration_and_restores_the_old_schema(tmp_path, monkeypatch):
    path = labelled(tmp_path / "ws")
    old = schema.latest_version()
    monkeypatch.setitem(schema.MIGRATIONS, old + 1, ["ALTER TABLE pairs ADD COLUMN difficulty DOUBLE"])
    with Workspace.open(path) as ws:
        assert schema.current_version(ws.con) == old + 1
    [made] = backup.list_backups(path / backup.BACKUPS_DIR)
    assert (made.kind, made.schema_version, made.pairs, made.annotations) == ("migration", old, 300, 3)
    workspace.restore(path)
    with Workspace.open(path) as ws:  # the old file again, migrated again on open, with a backup again
        assert "difficulty" in {r[0] for r in ws.con.execute("DESCRIBE pairs").fetchall()}
    assert [b.kind for b in backup.list_backups(path / backup.BACKUPS_DIR)] == ["migration", "migration"]


def test_no_migration_without_its_backup(tmp_path, monkeypatch):
    path = labelled(tmp_path / "ws")
    (path / backup.BACKUPS_DIR).write_text("in the way\n")
    old = schema.latest_version()
    monkeypatch.setitem(schema.MIGRATIONS, old + 1, ["ALTER TABLE pairs ADD COLUMN difficulty DOUBLE"])
    with pytest.raises(PrefstudioError, match=f"not migrating schema v{old} to v{old + 1} without a backup"):
        Workspace.open(path)
    monkeypatch.delitem(schema.MIGRATIONS, old + 1)
    with Workspace.open(path) as ws:
        assert schema.current_version(ws.con) == old


def test_the_daily_backup_is_made_on_the_first_open_a_day_after_the_last(tmp_path):
    path = labelled(tmp_path / "ws")
    backups = path / backup.BACKUPS_DIR
    Workspace.open(path).close()
    assert backup.list_backups(backups) == []  # made today: nothing to back up yet
    set_created_at(path, 2)
    Workspace.open(path).close()
    [daily] = backup.list_backups(backups)
    assert (daily.kind, daily.pairs, daily.annotations) == ("daily", 300, 3)
    Workspace.open(path).close()
    assert len(backup.list_backups(backups)) == 1  # once a day
    made_days_ago(daily, 1.01)
    Workspace.open(path).close()
    assert [b.kind for b in backup.list_backups(backups)] == ["daily", "daily"]

    config = load_config(path / "workspace.toml")
    config.backup.daily = False
    save_config(path / "workspace.toml", config)
    made_days_ago(backup.newest_backup(backups), 3)
    Workspace.open(path).close()
    assert len(backup.list_backups(backups)) == 2


def test_a_daily_backup_that_cannot_be_written_is_a_warning_and_the_command_goes_on(tmp_path, capsys, caplog):
    path = labelled(tmp_path / "ws")
    set_created_at(path, 2)
    (path / backup.BACKUPS_DIR).write_text("in the way\n")
    assert main(["info", str(path)]) == 0
    assert "300 pairs" in capsys.readouterr().out
    assert "no daily backup of" in caplog.text and "is a file, not a folder for backups" in caplog.text


def test_daily_backups_rotate_keeping_manual_and_migration_ones(tmp_path):
    path = labelled(tmp_path / "ws")
    config = load_config(path / "workspace.toml")
    config.backup.keep = 2
    save_config(path / "workspace.toml", config)
    with Workspace.open(path) as ws:
        for days, kind in ((10, "manual"), (9, "daily"), (8, "daily"), (7, "migration"), (6, "daily")):
            made_days_ago(backup.make_backup(ws.con, ws.backups_dir, kind), days)
    Workspace.open(path).close()  # a daily one now, then the oldest daily ones go
    kept = backup.list_backups(path / backup.BACKUPS_DIR)
    assert [b.kind for b in kept] == ["manual", "migration", "daily", "daily"]
    assert kept[-1].made_at.date() == datetime.date.today()


# -- the app -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGES.values(), ids=DAMAGES.keys())
def test_the_app_on_a_damaged_file_prints_the_one_line_and_returns_2(tmp_path, capsys, monkeypatch, how):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    fill(path, 2000)
    how(path / DB_NAME)
    damaged_hash = sha256(path / DB_NAME)

    def run(self):
        raise AssertionError("the app started on a damaged file")

    monkeypatch.setattr(PrefstudioApp, "run", run)  # the one line comes before any full-screen app
    assert run_app(path) == 2
    err = one_line(capsys.readouterr().err)
    assert f"{DB_NAME}: the database file is damaged" in err and RESTORE_HINT in err
    assert f"`prefstudio restore {path}`" in err
    assert sha256(path / DB_NAME) == damaged_hash


def headless_until_it_ends_itself(monkeypatch) -> None:
    """run_app's app.run() without a terminal; it is stopped with code 99 if it has not ended itself in 60 s."""

    async def auto_pilot(pilot):
        deadline = time.monotonic() + 60
        while pilot.app.fatal_error is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        if pilot.app.fatal_error is None:
            pilot.app.exit(return_code=99)

    monkeypatch.setattr(PrefstudioApp, "run", lambda self: App.run(self, headless=True, auto_pilot=auto_pilot))


def test_damage_met_by_a_later_query_ends_the_app_with_the_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    fill(path, 2000)
    flip_used_block(path / DB_NAME)
    monkeypatch.setattr(workspace, "FULL_CHECK_MAX_BYTES", 0)  # as for a file too big to read whole on open
    headless_until_it_ends_itself(monkeypatch)
    assert run_app(path) == 2
    err = one_line(capsys.readouterr().err)
    assert "the database file is damaged (a block at byte" in err and RESTORE_HINT in err


def test_damage_met_by_a_later_query_in_the_cli_is_the_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    fill(path, 2000)
    flip_used_block(path / DB_NAME)
    monkeypatch.setattr(workspace, "FULL_CHECK_MAX_BYTES", 0)
    Workspace.open(path).close()  # opening alone never reads the damaged block now
    for command in (["info", str(path)], ["export", str(path), str(tmp_path / "out.parquet")]):
        assert main(command) == 2
        err = one_line(capsys.readouterr().err)
        assert "the database file is damaged (a block at byte" in err and f"`prefstudio restore {path}`" in err
    assert not (tmp_path / "out.parquet").exists()


def test_the_app_makes_the_daily_backup_after_it_starts(tmp_path, monkeypatch):
    path = labelled(tmp_path / "ws")
    set_created_at(path, 2)
    backups = path / backup.BACKUPS_DIR

    async def auto_pilot(pilot):
        assert backup.list_backups(backups) == []  # not on the way in: the app is up first
        deadline = time.monotonic() + 60
        while not backup.list_backups(backups) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        pilot.app.exit()

    monkeypatch.setattr(PrefstudioApp, "run", lambda self: App.run(self, headless=True, auto_pilot=auto_pilot))
    assert run_app(path) == 0
    [daily] = backup.list_backups(backups)
    assert (daily.kind, daily.pairs) == ("daily", 300)


# -- folders that cannot be written -------------------------------------------------------------------------------
@contextmanager
def read_only(folder: Path):
    """Make `folder` unwritable for real: chmod for a user; for root, whom chmod does not stop, chattr +i."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root, whom chmod does not stop writing, and there is no chattr for chattr +i")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"running as root, whom chmod does not stop writing, and chattr +i fails here: {made.stderr}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefstudio", *args], capture_output=True, text=True, timeout=120)


def test_a_read_only_workspace_folder_is_one_line(tmp_path):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ws.back_up()
    (tmp_path / "p.jsonl").write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    with read_only(path):
        for args in (["info", str(path)], ["import", str(path), str(tmp_path / "p.jsonl")], ["restore", str(path)]):
            done = cli(*args)
            assert done.returncode == 2
            assert "the workspace folder is read-only" in one_line(done.stderr)
            assert "needs write access" in done.stderr


def test_init_in_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    with read_only(folder):
        done = cli("init", str(folder / "ws"))
        assert done.returncode == 2
        assert f"cannot make a workspace there: {folder} is not writable" in one_line(done.stderr)
        done = cli("init", str(folder))
        assert done.returncode == 2 and "is not writable" in one_line(done.stderr)
    assert list(folder.iterdir()) == []


def test_export_into_a_read_only_folder_is_one_line(tmp_path):
    Workspace.init(tmp_path / "ws").close()
    out = tmp_path / "out"
    out.mkdir()
    with read_only(out):
        done = cli("export", str(tmp_path / "ws"), str(out / "pairs.parquet"))
    assert done.returncode == 2
    assert f"cannot write into {out}" in one_line(done.stderr)
    assert list(out.iterdir()) == []

