import subprocess
import sys
import textwrap

import duckdb
import pytest

from prefstudio import schema
from prefstudio.config import load_config
from prefstudio.errors import PrefstudioError, WorkspaceBusy
from prefstudio.workspace import DB_NAME, Workspace


def test_init_makes_folder_db_config_and_jobs(tmp_path):
    with Workspace.init(tmp_path / "w", name="mine") as ws:
        assert ws.name == "mine"
        assert (tmp_path / "w" / DB_NAME).exists()
        assert (tmp_path / "w" / "workspace.toml").exists()
        assert (tmp_path / "w" / "jobs").is_dir()
        tables = {r[0] for r in ws.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"meta", "sources", "pairs", "annotations", "jobs", "predictions", "metrics", "import_batches"} <= tables
        assert schema.current_version(ws.con) == schema.latest_version()


def test_init_refuses_existing_workspace(tmp_path):
    Workspace.init(tmp_path / "w").close()
    with pytest.raises(PrefstudioError, match="already a workspace"):
        Workspace.init(tmp_path / "w")


def test_annotation_columns_cover_spec_fields(ws):
    cols = {r[0] for r in ws.con.execute("DESCRIBE annotations").fetchall()}
    # what an annotation keeps (docs/methods.md, "Margin labels", "The LLM judge"): pair id, annotator kind and id,
    # level, flip, margin, time, raw responses, prompt version, tokens, cost
    assert {"pair_id", "annotator_kind", "annotator_id", "level", "flip", "margin", "created_at",
            "raw_response_ab", "raw_response_ba", "prompt_version", "tokens_in", "tokens_out", "cost_usd"} <= cols


def _make_v1_workspace(path):
    """A workspace as a schema-v1 prefstudio left it, with a pair in it."""
    Workspace.init(path).close()
    (path / DB_NAME).unlink()
    con = duckdb.connect(str(path / DB_NAME))
    for statement in schema.MIGRATIONS[1]:
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                "VALUES (1, 's', 'train', 'p', 'c', 'r', 'h')")
    con.close()


def test_open_migrates_a_v1_workspace_keeping_its_pairs(tmp_path):
    _make_v1_workspace(tmp_path / "w")
    with Workspace.open(tmp_path / "w") as ws:
        assert schema.current_version(ws.con) == schema.latest_version() >= 2
        assert ws.con.execute("SELECT count(*) FROM judge_calls").fetchone()[0] == 0
        assert ws.count_pairs() == 1
        ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome) VALUES (1, 'human', 'me', 'skip')")
        assert ws.con.execute("SELECT id FROM annotations").fetchall() == [(1,)]


def test_open_runs_pending_migration_steps(tmp_path, monkeypatch):
    Workspace.init(tmp_path / "w").close()
    nxt = schema.latest_version() + 1
    monkeypatch.setitem(schema.MIGRATIONS, nxt, ["ALTER TABLE pairs ADD COLUMN difficulty DOUBLE"])
    with Workspace.open(tmp_path / "w") as ws:
        assert schema.current_version(ws.con) == nxt
        cols = {r[0] for r in ws.con.execute("DESCRIBE pairs").fetchall()}
        assert "difficulty" in cols


def test_failed_migration_leaves_file_unchanged(tmp_path, monkeypatch):
    _make_v1_workspace(tmp_path / "w")
    nxt = schema.latest_version() + 1
    monkeypatch.setitem(schema.MIGRATIONS, nxt, ["CREATE TABLE extra (x INT)", "ALTER TABLE nope ADD COLUMN y INT"])
    with pytest.raises(PrefstudioError, match=f"could not migrate schema v1 to v{nxt}.*unchanged"):
        Workspace.open(tmp_path / "w")
    con = duckdb.connect(str(tmp_path / "w" / DB_NAME))
    assert schema.current_version(con) == 1
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='judge_calls'").fetchone()[0]
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='extra'").fetchone()[0]
    con.close()


def test_newer_workspace_is_refused_with_a_clear_message(tmp_path):
    Workspace.init(tmp_path / "w").close()
    con = duckdb.connect(str(tmp_path / "w" / DB_NAME))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(PrefstudioError, match=r"newer prefstudio \(schema v99"):
        Workspace.open(tmp_path / "w")


def test_second_process_gets_one_line_error_naming_the_holder(tmp_path):
    path = tmp_path / "w"
    Workspace.init(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from prefstudio.workspace import Workspace
            ws = Workspace.open({str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WorkspaceBusy) as err:
            Workspace.open(path)
        assert err.value.pid == holder.pid
        out = subprocess.run([sys.executable, "-m", "prefstudio", "info", str(path)], capture_output=True, text=True)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and f"process {holder.pid}" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock with its holder: a killed process leaves no stale lock
    Workspace.open(path).close()


def test_config_unknown_key_is_refused(tmp_path):
    p = tmp_path / "workspace.toml"
    p.write_text('name = "x"\n[margins]\nscael = "large"\n')
    with pytest.raises(PrefstudioError, match=r"unknown key 'margins.scael'"):
        load_config(p)


def test_margin_scales(tmp_path):
    p = tmp_path / "workspace.toml"
    p.write_text('name = "x"\n')
    cfg = load_config(p)
    assert [cfg.margins.margin(level) for level in range(4)] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    p.write_text('name = "x"\n[margins]\nscale = "large"\n')
    assert [load_config(p).margins.margin(level) for level in range(4)] == [0, 1, 2, 3]
    p.write_text('name = "x"\n[margins]\nscale = "custom"\ncustom = [0, 0.5, 1, 4]\n')
    assert load_config(p).margins.margin(3) == 4
    p.write_text('name = "x"\n[margins]\nscale = "custom"\ncustom = [0, 0.5]\n')
    with pytest.raises(PrefstudioError, match="4 margins"):
        load_config(p)


def test_open_migrates_a_v3_workspace_keeping_annotations_and_taking_data_labels(tmp_path):
    """v4 rebuilds `annotations` to accept kind 'data' and a continuous value: nothing stored before is lost."""
    path = tmp_path / "w"
    Workspace.init(path).close()
    (path / DB_NAME).unlink()
    con = duckdb.connect(str(path / DB_NAME))
    for version in (1, 2, 3):
        for statement in schema.MIGRATIONS[version]:
            con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                "VALUES (1, 's', 'train', 'p', 'c', 'r', 'h')")
    con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, "
                "raw_response_ab, extra) VALUES (1, 'human', 'ana', 'label', 2, true, -0.5, NULL, '{\"k\": 1}'), "
                "(1, 'llm', 'gpt-4o', 'inconsistent', NULL, false, NULL, 'A>B', NULL)")
    before = con.execute("SELECT * FROM annotations ORDER BY id").fetchall()
    con.close()
    with Workspace.open(path) as ws:
        assert schema.current_version(ws.con) == schema.latest_version() >= 4
        assert ws.con.execute("SELECT * EXCLUDE (value, expected_level) FROM annotations ORDER BY id").fetchall() == before
        new_id = ws.con.execute(
            "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, value) "
            "VALUES (1, 'data', 'shp/score_ratio', 'label', 2, 2.3) RETURNING id").fetchone()[0]
        assert new_id == 3  # the id sequence goes on
        with pytest.raises(duckdb.ConstraintException):
            ws.con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome) "
                           "VALUES (1, 'robot', 'x', 'label')")


def test_data_margin_settings(tmp_path):
    p = tmp_path / "workspace.toml"
    p.write_text('name = "x"\n[margins]\ndata = "value"\n[margins.data_levels]\nalpaca-eval = [0.1, 0.2, 0.3]\n')
    margins = load_config(p).margins
    assert margins.data == "value" and margins.thresholds("alpaca-eval") == (0.1, 0.2, 0.3)
    assert margins.thresholds("shp") == (1.0, 2.0, 3.0) and margins.thresholds("abs-from") is None
    p.write_text('name = "x"\n[margins.data_levels]\ndiff = [3, 2, 1]\n')
    with pytest.raises(PrefstudioError, match=r"margins.data_levels.diff must be 3 increasing thresholds"):
        load_config(p)
    p.write_text('name = "x"\n[margins.data_levels]\nhelpsteer = [1, 2, 3]\n')
    with pytest.raises(PrefstudioError, match=r"unknown kind 'helpsteer'"):
        load_config(p)
