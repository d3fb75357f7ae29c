import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefstudio.errors import PrefstudioError
from prefstudio.ingest import DataLabel, RawPair, RecordsReader, Skip, import_pairs

REPO = Path(__file__).resolve().parents[1]


def reader(records, source="mem"):
    return RecordsReader(label="mem.jsonl", format="test", default_source=source, records=records)


def pairs(ws):
    return ws.con.execute("SELECT id, source, split, prompt, chosen, rejected FROM pairs ORDER BY id").fetchall()


def test_import_validates_dedups_and_reports(ws):
    records = [
        RawPair("p1", "good", "bad", "line 1"),
        RawPair("p2", "", "bad", "line 2"),
        RawPair("p3", "same", "same ", "line 3"),
        RawPair(None, "a", "b", "line 4"),
        Skip("line 5", "not valid JSON"),
        RawPair("p1", "good", "bad", "line 6"),  # duplicate within the file
        RawPair("p7", {"x": 1}, "bad", "line 7"),
        RawPair("p8", "g", "b", "line 8", source="other", split="test"),
    ]
    report = import_pairs(ws, reader(records))
    assert (report.n_read, report.n_imported, report.n_duplicate, report.n_skipped) == (8, 2, 1, 5)
    assert report.skip_reasons == {
        "empty 'chosen' response": 1,
        "'chosen' and 'rejected' are the same text": 1,
        "missing field 'prompt'": 1,
        "not valid JSON": 1,
        "'chosen' is an object, expected text": 1,
    }
    assert [s.location for s in report.skip_examples] == ["line 2", "line 3", "line 4", "line 5", "line 7"]
    assert pairs(ws) == [(1, "mem", "train", "p1", "good", "bad"), (2, "other", "test", "p8", "g", "b")]
    assert ws.counts_by_source() == {"mem": 1, "other": 1}
    batch = ws.con.execute("SELECT id, n_read, n_imported, n_duplicate, n_skipped FROM import_batches").fetchall()
    assert batch == [(1, 8, 2, 1, 5)]


def test_reimport_adds_nothing_and_ids_continue(ws):
    import_pairs(ws, reader([RawPair("p", "a", "b", "line 1")]))
    again = import_pairs(ws, reader([RawPair("p", "a", "b", "line 1"), RawPair("q", "a", "b", "line 2")]))
    assert (again.n_imported, again.n_duplicate) == (1, 1)
    assert [r[0] for r in pairs(ws)] == [1, 2]


def test_name_and_split_override_record_values(ws):
    import_pairs(ws, reader([RawPair("p", "a", "b", "line 1", source="x", split="train")]), source="hh", split="test")
    assert pairs(ws)[0][1:3] == ("hh", "test")


def test_test_fraction_is_stable_and_roughly_right(ws):
    records = [RawPair(f"p{i}", "a", "b", f"line {i}") for i in range(2000)]
    import_pairs(ws, reader(records), test_fraction=0.25)
    first = dict(ws.con.execute("SELECT prompt, split FROM pairs").fetchall())
    share = sum(s == "test" for s in first.values()) / len(first)
    assert 0.2 < share < 0.3
    ws.con.execute("DELETE FROM pairs")
    import_pairs(ws, reader(records), test_fraction=0.25)
    assert dict(ws.con.execute("SELECT prompt, split FROM pairs").fetchall()) == first


def test_failure_mid_import_leaves_workspace_unchanged(ws):
    import_pairs(ws, reader([RawPair("p0", "a", "b", "line 1")]))

    class Broken:
        label, format, default_source, total, position = "broken.jsonl", "test", "broken", None, 0

        def __iter__(self):
            for i in range(60_000):  # more than one staging chunk is written before the failure
                yield RawPair(f"p{i + 1}", "a", "b", f"line {i}")
            raise PrefstudioError("broken.jsonl: line 60001: file is truncated")

    with pytest.raises(PrefstudioError, match="truncated"):
        import_pairs(ws, Broken())
    assert ws.count_pairs() == 1
    assert ws.con.execute("SELECT count(*) FROM import_batches").fetchone()[0] == 1
    # and the workspace still takes imports
    assert import_pairs(ws, reader([RawPair("p9", "a", "b", "line 1")])).n_imported == 1


def test_bad_source_name_is_refused(ws):
    with pytest.raises(PrefstudioError, match="--name: source name"):
        import_pairs(ws, reader([RawPair("p", "a", "b", "line 1")]), source="  ")
    with pytest.raises(PrefstudioError, match="--name: source name 'sss"):
        import_pairs(ws, reader([RawPair("p", "a", "b", "line 1")]), source="s" * 65)


def test_missing_values_and_non_texts_skip_their_row_and_nothing_is_stringified(ws):
    records = [
        RawPair("p1", float("nan"), "b", "line 1"),
        RawPair("p2", "a", float("-inf"), "line 2"),
        RawPair(None, "a", "b", "line 3"),
        RawPair("p4", 4, "b", "line 4"),
        RawPair("p5", "a", 2.5, "line 5"),
        RawPair(True, "a", "b", "line 6"),
        RawPair("p7", ["a"], "b", "line 7"),
        RawPair("p8", "a", "b", "line 8", source=5),
        RawPair("p9", "a", "b", "line 9", split=["test"]),
        RawPair("None", "nan", "inf", "line 10", source=float("nan"), split=None),  # texts stay texts
    ]
    report = import_pairs(ws, reader(records))
    assert [(s.location, s.reason) for s in report.skip_examples] == [
        ("line 1", "missing field 'chosen' (NaN)"),
        ("line 2", "missing field 'rejected' (-Infinity)"),
        ("line 3", "missing field 'prompt'"),
        ("line 4", "'chosen' is a number (4), expected text"),
        ("line 5", "'rejected' is a number (2.5), expected text"),
        ("line 6", "'prompt' is a boolean (true), expected text"),
        ("line 7", "'chosen' is a list, expected text"),
        ("line 8", "'source' is a number (5), expected text"),
        ("line 9", "'split' is a list, expected text"),
    ]
    assert pairs(ws) == [(1, "mem", "train", "None", "nan", "inf")]


def test_an_over_long_source_or_split_skips_its_row_not_the_import(ws):
    records = [
        RawPair("p1", "a", "b", "line 1", source="s" * 65),
        RawPair("p2", "a", "b", "line 2", split="t" * 200),
        RawPair("p3", "a", "b", "line 3", source="bad\x1bname"),
        RawPair("p4", "a", "b", "line 4", source="s" * 64),
    ]
    report = import_pairs(ws, reader(records))
    assert [(s.location, s.reason) for s in report.skip_examples] == [
        ("line 1", f"source name {'s' * 40 + '...'!r} is 65 characters; at most 64"),
        ("line 2", f"split name {'t' * 40 + '...'!r} is 200 characters; at most 64"),
        ("line 3", "source name 'bad\\x1bname' has control characters"),
    ]
    assert pairs(ws) == [(1, "s" * 64, "train", "p4", "a", "b")]
    assert report.summary().startswith("mem.jsonl: imported 1 pair, 0 already present, 3 skipped (4 read in ")


FULL_DISK_IMPORT = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
limit = os.path.getsize(sys.argv[1]) + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from prefstudio.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def test_import_on_a_full_disk_is_one_line_and_the_file_shrinks_back(ws, tmp_path):
    """A real file size limit (ulimit -f): DuckDB's writes past it fail as on a full disk."""
    import_pairs(ws, reader([RawPair("kept", "a", "b", "line 1")]))
    ws.con.execute("CHECKPOINT")
    ws.close()
    db = ws.path / "workspace.duckdb"
    # 2 MB of text: more than the write-ahead log may grow at COMMIT; 123k pairs: DuckDB writes full row
    # groups (122,880 rows) into the database file itself during the transaction, and the file grows.
    wide = tmp_path / "wide.jsonl"
    wide.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"{i} " + "x" * 2000, "rejected": "r"}) + "\n"
                            for i in range(1000)))
    many = tmp_path / "many.jsonl"
    many.write_text("".join(f'{{"prompt": "q{i}", "chosen": "a", "rejected": "b"}}\n' for i in range(123_000)))
    for path, room in ((wide, 0), (many, 200_000)):
        before = os.path.getsize(db)
        done = subprocess.run([sys.executable, "-c", FULL_DISK_IMPORT, str(db), str(room), "import", str(ws.path),
                               str(path), "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (f"prefstudio: error: {db}: disk full while importing {path} (File too large); nothing "
                               "was imported; free space and run it again\n")
        assert os.path.getsize(db) == before, path.name
        from prefstudio.workspace import Workspace

        with Workspace.open(ws.path) as again:
            assert again.con.execute("SELECT prompt FROM pairs").fetchall() == [("kept",)]
            assert again.con.execute("SELECT count(*) FROM import_batches").fetchone()[0] == 1
    assert not (ws.path / "workspace.duckdb.wal").exists() or (ws.path / "workspace.duckdb.wal").stat().st_size == 0


def data_rows(ws):
    return ws.con.execute("SELECT pair_id, annotator_kind, annotator_id, level, flip, round(margin, 4), value, run_id "
                          "FROM annotations ORDER BY id").fetchall()


def test_data_labels_go_in_with_their_pairs_once_and_roll_back_with_them(ws):
    label = DataLabel("d/score", 0.8, 3)
    records = [RawPair("p1", "a", "b", "line 1", label=label),
               RawPair("p2", "a", "b", "line 2", label=DataLabel("d/score", 0.3, 1, flip=True)),
               RawPair("p1", "a", "b", "line 3", label=DataLabel("d/score", 0.1, 0)),  # a duplicate: first one counts
               RawPair("p3", "a", "b", "line 4")]
    report = import_pairs(ws, reader(records))
    expected = [(1, "data", "d/score", 3, False, 1.0, 0.8, "import-1"),
                (2, "data", "d/score", 1, True, -0.3333, 0.3, "import-1")]
    assert data_rows(ws) == expected
    assert report.labels_lines() == ["data margins d/score: +2 (levels 0/1/2/3: 0/1/0/1)"]
    # a re-import adds no second label from the same data; a pair imported before gets one from new data
    import_pairs(ws, reader([RawPair("p1", "a", "b", "line 1", label=label),
                             RawPair("p3", "a", "b", "line 2", label=DataLabel("e/x", None, 0))]))
    assert data_rows(ws) == expected + [(3, "data", "e/x", 0, False, 0.0, None, "import-2")]

    class Broken:
        label, format, default_source, total, position = "broken.jsonl", "test", "broken", None, 0

        def __iter__(self):
            for i in range(60_000):  # the first chunk's pairs and labels are written before the failure
                yield RawPair(f"q{i}", "a", "b", f"line {i}", label=label)
            raise PrefstudioError("broken.jsonl: line 60001: file is truncated")

    with pytest.raises(PrefstudioError, match="truncated"):
        import_pairs(ws, Broken())
    assert ws.count_pairs() == 3 and len(data_rows(ws)) == 3
