"""How fast does a full HH-RLHF-sized import run? Run by hand:

    .venv/bin/python bench/import_bench.py [--pairs 160000]

Generates (once, cached in bench/out/) a synthetic HH-RLHF-shaped .jsonl.gz
shaped like the real one (about 2 KB of JSON per pair: human turns of 5-30
words, assistant turns of 10-80, one to four turns),
times `prefstudio import` of it end to end in a subprocess, splits the
in-process time into reading+splitting and ingest (validate, hash, DuckDB
merge), and times a re-import where every pair is a duplicate.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
REPO = HERE.parent
TURN_WEIGHTS = {1: 0.35, 2: 0.30, 3: 0.20, 4: 0.15}
HUMAN_WORDS, ASSISTANT_WORDS = (5, 30), (10, 80)
EARLY_DIVERGENCE = 0.08  # share of pairs whose transcripts differ before the last answer


class TextMaker:
    """Seeded word salad with a Zipf-like vocabulary, so texts compress like real prose roughly does."""

    def __init__(self, rng: random.Random, vocabulary_size: int = 20_000):
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        self.rng = rng
        self.words = [
            "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(1, 10)))
            for _ in range(vocabulary_size)
        ]
        self.cumulative = list(itertools.accumulate(1 / rank for rank in range(1, vocabulary_size + 1)))

    def sentence(self, low: int, high: int) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=self.rng.randint(low, high))
        return " ".join(words).capitalize() + "."


def make_pair(text: TextMaker, rng: random.Random) -> dict:
    turns = rng.choices(list(TURN_WEIGHTS), weights=list(TURN_WEIGHTS.values()))[0]
    shared = []
    for turn in range(turns):
        shared.append(f"\n\nHuman: {text.sentence(*HUMAN_WORDS)}")
        if turn < turns - 1:
            shared.append(f"\n\nAssistant: {text.sentence(*ASSISTANT_WORDS)}")
    if turns > 1 and rng.random() < EARLY_DIVERGENCE:
        cut = 2 * rng.randrange(turns - 1) + 1  # replace an earlier answer and everything after it
        rejected = shared[:cut] + [f"\n\nAssistant: {text.sentence(*ASSISTANT_WORDS)}", f"\n\nHuman: {text.sentence(*HUMAN_WORDS)}"]
    else:
        rejected = list(shared)
    chosen = "".join(shared) + f"\n\nAssistant: {text.sentence(*ASSISTANT_WORDS)}"
    return {"chosen": chosen, "rejected": "".join(rejected) + f"\n\nAssistant: {text.sentence(*ASSISTANT_WORDS)}"}


def dataset_file(pairs: int, seed: int) -> Path:
    path = OUT / f"hh-like-{pairs}-seed{seed}" / "train.jsonl.gz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {pairs:,} pairs into {path.relative_to(REPO)} (once) ...", flush=True)
    rng = random.Random(seed)
    text = TextMaker(rng)
    partial = path.with_suffix(".partial")
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=6) as out:
        for _ in range(pairs):
            out.write(json.dumps(make_pair(text, rng)) + "\n")
    partial.rename(path)
    return path


def prefstudio(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "prefstudio", *args], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"prefstudio {' '.join(args)} failed:\n{done.stderr}")
    return seconds, done.stdout.splitlines()[0]


def fresh_workspace(name: str):
    from prefstudio.workspace import Workspace

    path = OUT / name
    shutil.rmtree(path, ignore_errors=True)
    return Workspace.init(path)


class TimedReader:
    """Wraps a PairReader and adds up the time spent producing records."""

    def __init__(self, reader):
        self.reader = reader
        self.label, self.format, self.default_source = reader.label, reader.format, reader.default_source
        self.seconds = 0.0

    @property
    def total(self):
        return self.reader.total

    @property
    def position(self):
        return self.reader.position

    def __iter__(self):
        records = iter(self.reader)
        clock = time.perf_counter
        while True:
            started = clock()
            try:
                record = next(records)
            except StopIteration:
                self.seconds += clock() - started
                return
            self.seconds += clock() - started
            yield record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=160_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from prefstudio.importers import open_reader
    from prefstudio.ingest import import_pairs

    path = dataset_file(args.pairs, args.seed)
    size_mb = path.stat().st_size / 1e6
    with gzip.open(path, "rb") as stream:
        raw_mb = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 24), b"")) / 1e6
    print(f"file: {path.relative_to(REPO)}  {args.pairs:,} pairs, {size_mb:.1f} MB gzip ({raw_mb:.1f} MB JSONL)")

    def rates(seconds: float) -> str:
        pairs_per_s, gz_per_s, raw_per_s = args.pairs / seconds, size_mb / seconds, raw_mb / seconds
        return f"{seconds:6.2f}s  {pairs_per_s:>9,.0f} pairs/s  {gz_per_s:6.1f} MB/s gz  {raw_per_s:6.1f} MB/s jsonl"

    workspace = OUT / "ws-cli"
    shutil.rmtree(workspace, ignore_errors=True)
    prefstudio("init", str(workspace))
    relative = str(path.relative_to(REPO))
    seconds, summary = prefstudio("import", str(workspace), relative, "--quiet")
    print(f"cli import (subprocess, end to end):    {rates(seconds)}\n    {summary}")
    seconds, summary = prefstudio("import", str(workspace), relative, "--quiet")
    print(f"cli re-import (all duplicates):         {rates(seconds)}\n    {summary}")

    with fresh_workspace("ws-inprocess") as ws:
        reader = TimedReader(open_reader(str(path)))
        started = time.perf_counter()
        report = import_pairs(ws, reader)
        total = time.perf_counter() - started
    print(f"in-process import:                      {rates(total)}")
    print(f"    reading + splitting (gunzip, JSON, HH split): {reader.seconds:6.2f}s")
    print(f"    ingest (validate, hash, DuckDB insert):       {total - reader.seconds:6.2f}s")
    print(f"    imported {report.n_imported:,}, duplicates {report.n_duplicate:,}, skipped {report.n_skipped:,}")


if __name__ == "__main__":
    main()
