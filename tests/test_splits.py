"""Splits as the data says, without leakage: file and folder names, prompt-grouped test fractions, `info`."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

from prefstudio.importers import open_reader
from prefstudio.ingest import RawPair, RecordsReader, import_pairs, shared_prompts
from prefstudio.workspace import Workspace


def write_jsonl(path: Path, rows, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def hh(i: int, answer: str = "ok") -> dict:
    return {"chosen": f"\n\nHuman: question {i}?\n\nAssistant: good {answer}",
            "rejected": f"\n\nHuman: question {i}?\n\nAssistant: bad {answer}"}


def splits(ws) -> list[tuple[str, str, int]]:
    return ws.con.execute("SELECT source, split, count(*) FROM pairs GROUP BY ALL ORDER BY ALL").fetchall()


def test_hh_rlhf_layout_test_file_and_test_folder_are_the_test_split(ws, tmp_path):
    train = write_jsonl(tmp_path / "helpful-base" / "train.jsonl.gz", [hh(1), hh(2)], gz=True)
    test = write_jsonl(tmp_path / "helpful-base" / "test.jsonl.gz", [hh(3)], gz=True)
    in_folder = write_jsonl(tmp_path / "mine" / "test" / "part-0.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    reports = [import_pairs(ws, open_reader(str(path))) for path in (train, test, in_folder)]
    assert splits(ws) == [("helpful-base", "test", 1), ("helpful-base", "train", 2), ("part-0", "test", 1)]
    assert [r.splits_line() for r in reports] == [
        "split: train +2",
        "split: test +1 ('test' from the file or folder name)",
        "split: test +1 ('test' from the file or folder name)",
    ]


def test_a_folder_named_test_read_by_datasets_is_the_test_split(ws, tmp_path):
    folder = tmp_path / "prefs" / "test"
    write_jsonl(folder / "data.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    report = import_pairs(ws, open_reader(str(folder)))
    assert report.by_split == {"test": 1}


def test_split_option_and_a_split_column_come_before_the_file_name(ws, tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [{"prompt": "p1", "chosen": "c", "rejected": "r"},
                                                 {"prompt": "p2", "chosen": "c", "rejected": "r", "split": "dev"}])
    import_pairs(ws, open_reader(str(path)))
    assert ws.con.execute("SELECT prompt, split FROM pairs ORDER BY id").fetchall() == [("p1", "test"), ("p2", "dev")]
    ws.con.execute("DELETE FROM pairs")
    report = import_pairs(ws, open_reader(str(path)), split="train")
    assert report.by_split == {"train": 2} and report.split_rule == "--split"


def prompt_groups(n_prompts: int, per_prompt: int) -> list[RawPair]:
    return [RawPair(f"Prompt {i}", f"good answer {j}", f"bad answer {j}", f"line {i * per_prompt + j}")
            for i in range(n_prompts) for j in range(per_prompt)]


def test_test_fraction_keeps_every_prompt_in_one_split_and_lands_the_same_way_again(ws):
    pairs = prompt_groups(400, 5)
    report = import_pairs(ws, RecordsReader("a.jsonl", "test", "a", pairs), test_fraction=0.2)
    assert shared_prompts(ws.con) == {}
    assert 0.14 < report.by_split["test"] / 2000 < 0.26
    assert report.split_rule == "--test-fraction 0.2, grouped by prompt"
    # another file with the same prompts (other spacing and case) follows them into their split
    again = [RawPair(f"  prompt {i}\n", "another", "one more", f"line {i}") for i in range(400)]
    import_pairs(ws, RecordsReader("b.jsonl", "test", "b", again), test_fraction=0.2)
    assert shared_prompts(ws.con) == {}


def test_split_by_pair_opts_out_and_info_reports_the_shared_prompts(tmp_path):
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        import_pairs(ws, RecordsReader("a.jsonl", "test", "a", prompt_groups(200, 5)), test_fraction=0.3,
                     split_by="pair")
        shared = shared_prompts(ws.con)
    assert list(shared) == [("test", "train")] and shared[("test", "train")] > 50
    done = subprocess.run([sys.executable, "-m", "prefstudio", "info", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert f"prompts in more than one split: {shared[('test', 'train')]:,} (test & train:" in done.stdout


def test_cli_import_prints_the_split_each_file_went_to(tmp_path):
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    test = write_jsonl(tmp_path / "harmless-base" / "test.jsonl.gz", [hh(1), hh(2)], gz=True)
    done = subprocess.run([sys.executable, "-m", "prefstudio", "import", str(ws), str(test)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "  split: test +2 ('test' from the file or folder name)" in done.stdout.splitlines()
    info = subprocess.run([sys.executable, "-m", "prefstudio", "info", str(ws)], capture_output=True, text=True,
                          timeout=60)
    assert "harmless-base" in info.stdout and "prompts in more than one split" not in info.stdout


def run_import(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefstudio", "import", str(ws), *args], capture_output=True,
                          text=True, timeout=60)


def test_an_import_with_no_split_says_evaluation_needs_a_test_split_and_resplit_moves_prompts_together(tmp_path):
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    rows = [{"prompt": f"Prompt {i}", "chosen": f"good {j}", "rejected": f"bad {j}"} for i in range(100) for j in range(3)]
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    first = run_import(ws, str(data))
    assert first.returncode == 0, first.stderr
    assert "  all 300 pairs went to train; evaluation needs a test split (`--test-fraction 0.1`)" in first.stdout.splitlines()

    # the same file again with --test-fraction: nothing is new, and the pairs that would move are named, not moved
    again = run_import(ws, str(data), "--test-fraction", "0.2")
    with Workspace.open(ws) as opened:
        assert splits(opened) == [("prefs", "train", 300)]
    with Workspace.init(tmp_path / "fresh") as expected:  # where the draw sends these prompts on a first import
        import_pairs(expected, open_reader(str(data)), test_fraction=0.2)
        to_test = expected.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    assert 30 <= to_test <= 90 and to_test % 3 == 0  # whole prompts: three pairs each
    assert (f"  {to_test} pairs already present keep their split ({to_test} to test by --test-fraction); "
            "--resplit moves them") in again.stdout.splitlines()

    moved = run_import(ws, str(data), "--test-fraction", "0.2", "--resplit")
    assert moved.returncode == 0, moved.stderr
    assert f"  re-split {to_test} pairs already present ({to_test} to test), each prompt's pairs together" in (
        moved.stdout.splitlines())
    with Workspace.open(ws) as opened:
        assert opened.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0] == to_test
        assert shared_prompts(opened.con) == {}  # no prompt straddles train and test
    assert "went to train" not in moved.stdout  # the workspace has a test split now
    assert run_import(ws, str(data), "--test-fraction", "0.2", "--resplit").stdout.count("re-split") == 0


def test_resplit_never_moves_a_split_the_data_named(ws, tmp_path):
    data = write_jsonl(tmp_path / "named.jsonl", [{"prompt": f"p{i}", "chosen": "c", "rejected": "r", "split": "dev"}
                                                  for i in range(50)])
    import_pairs(ws, open_reader(str(data)))
    unnamed = [RawPair(f"p{i}", "c", "r", f"line {i}") for i in range(50)]
    report = import_pairs(ws, RecordsReader("again", "test", "again", unnamed), test_fraction=0.5, resplit=True)
    assert report.resplit == {} and splits(ws)[0][1:] == ("dev", 50)
