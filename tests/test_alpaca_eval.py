"""The eight real AlpacaEval annotation files: every record's pair points the way its preference does.

The files hold output_1 (the gpt4_1106_preview baseline), output_2 and a
preference p in [1, 2]; the baseline wins most, so a reader that takes
output_1 as chosen is right 95% of the time and silently wrong on the rest.
"""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefstudio.importers import open_reader
from prefstudio.ingest import import_pairs, shared_prompts, validate, RawPair
from prefstudio.workspace import Workspace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval"
FILES = sorted(DATA.glob("*.annotations.json.gz")) if DATA.is_dir() else []
pytestmark = pytest.mark.skipif(not FILES, reason=f"{DATA}: the shared AlpacaEval files are not beside this clone")


def records(path: Path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """All eight files in one workspace, with a prompt-grouped tenth for test; (workspace, reports, records)."""
    ws = Workspace.init(tmp_path_factory.mktemp("alpaca") / "ws")
    reports, rows = [], []
    for path in FILES:
        reader = open_reader(str(path))  # auto-detected
        assert (reader.format, reader.default_source) == ("alpaca-eval", "alpaca-eval")
        reports.append(import_pairs(ws, reader, test_fraction=0.1))
        rows += records(path)
    yield ws, reports, rows
    ws.close()


def test_every_record_of_the_eight_files_is_oriented_by_its_preference(imported):
    ws, reports, rows = imported
    assert len(rows) == 6438
    stored = set(ws.con.execute("SELECT prompt, chosen, rejected FROM pairs").fetchall())
    won_by_output_2 = ties = unusable = 0
    for row in rows:
        p = float(row["preference"])
        a, b = row["output_1"], row["output_2"]
        if p == 1.5:
            ties += 1
            continue
        winner, loser = (a, b) if p < 1.5 else (b, a)
        won_by_output_2 += p > 1.5
        assert (row["instruction"], loser, winner) not in stored  # never reversed
        if validate(RawPair(row["instruction"], winner, loser, ""))[1] is not None:
            unusable += 1  # an empty response: skipped with its reason, not stored either way
            continue
        assert (row["instruction"], winner, loser) in stored
    assert (won_by_output_2, ties, unusable) == (332, 17, 2)
    assert sum(r.n_read for r in reports) == 6438
    assert sum(r.n_imported + r.n_duplicate + r.n_skipped for r in reports) == 6438
    skipped = sum((r.skip_reasons for r in reports), start=type(reports[0].skip_reasons)())
    assert skipped == {"tie: preference 1.5 (--ties keep keeps ties at level 0)": 17, "empty 'rejected' response": 2}


def test_soft_margins_sources_and_a_split_without_shared_prompts(imported):
    ws, reports, rows = imported
    by_pair = {(r["instruction"], *((r["output_1"], r["output_2"]) if float(r["preference"]) < 1.5
                                    else (r["output_2"], r["output_1"]))): r for r in rows}
    labelled = ws.con.execute(
        "SELECT p.prompt, p.chosen, p.rejected, p.source, a.annotator_id, a.value, a.level, a.flip "
        "FROM pairs p JOIN annotations a ON a.pair_id = p.id WHERE a.annotator_kind = 'data'"
    ).fetchall()
    assert len(labelled) == ws.count_pairs() == sum(r.n_imported for r in reports)
    for prompt, chosen, rejected, source, annotator, value, level, flip in labelled:
        row = by_pair[(prompt, chosen, rejected)]
        assert value == pytest.approx(abs(float(row["preference"]) - 1.5) * 2)
        assert level == sum(value >= t for t in (0.25, 0.5, 0.75)) and not flip
        assert source == row["dataset"]
        assert annotator == "alpaca-eval/weighted_alpaca_eval_gpt4_turbo"
    assert set(ws.counts_by_source()) == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    assert shared_prompts(ws.con) == {}
    test_prompts, all_prompts = ws.con.execute(
        "SELECT count(DISTINCT prompt) FILTER (WHERE split = 'test'), count(DISTINCT prompt) FROM pairs").fetchone()
    assert all_prompts == 805 and 0.05 < test_prompts / all_prompts < 0.15


def test_cli_import_says_where_the_pairs_went_and_what_was_skipped(tmp_path):
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    path = next(p for p in FILES if p.name.startswith("text_davinci_003"))
    done = subprocess.run([sys.executable, "-m", "prefstudio", "import", str(ws), str(path), "--test-fraction", "0.1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "imported 799 pairs, 0 already present, 6 skipped" in out
    assert "(--test-fraction 0.1, grouped by prompt)" in out and "split: train +" in out
    assert "data margins alpaca-eval/weighted_alpaca_eval_gpt4_turbo: +799" in out
    assert "skipped 4: tie: preference 1.5" in out and "skipped 2: empty 'rejected' response" in out
