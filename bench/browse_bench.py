"""Is browsing a million pairs fast enough? (targets: first screen < 0.5 s, page move < 100 ms)

Builds bench/out/browse-1000000 once with DuckDB SQL (texts cut from a generated
word corpus, so the build takes a minute, not an hour), then times the query
layer alone and the real app driven headless by Textual's Pilot.

    .venv/bin/python bench/browse_bench.py [--rebuild] [--pairs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from textual.geometry import Region

from prefstudio import browse
from prefstudio.browse import PairFilter
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.widgets import PageTable
from prefstudio.workspace import Workspace

OUT = Path(__file__).resolve().parent / "out"
SOURCES = ["helpful", "harmless", "concise", "detailed", "safety"]
RARE_WORD = "zyzzogeton"  # in the chosen text of every RARE_EVERY-th pair
RARE_EVERY = 20_011
CORPUS_CHARS = 400_000


def make_corpus(seed: int = 0) -> str:
    """Word salad with sentences and paragraphs; rows are slices of it."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    vocab = ["".join(rng.choices(letters, weights, k=rng.randint(2, 9))) for _ in range(3000)]
    parts, size = [], 0
    while size < CORPUS_CHARS:
        sentence = " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 22))).capitalize() + "."
        sentence += "\n\n" if rng.random() < 0.15 else " "
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def build(path: Path, n_pairs: int) -> None:
    """Make the workspace under a temporary name, so that an interrupted build is never reused."""
    partial = path.with_name(path.name + ".partial")
    for stale in (path, partial):
        if stale.exists():
            shutil.rmtree(stale)
    t0 = time.perf_counter()
    with Workspace.init(partial, name=path.name) as ws:
        con = ws.con
        con.execute("SET enable_progress_bar = false")
        con.execute(
            "CREATE TEMP TABLE corpus AS SELECT ?::VARCHAR AS text, ?::BIGINT AS n", [make_corpus(), CORPUS_CHARS]
        )

        def cut(salt: str, shortest: int, longest: int) -> str:
            # A slice of the corpus at a hashed offset, of a hashed length in [shortest, longest].
            return (
                f"substr(c.text, 1 + (hash(r.i, '{salt}') % (c.n - {longest}))::BIGINT, "
                f"{shortest} + (hash(r.i, '{salt}len') % {longest - shortest + 1})::BIGINT)"
            )

        con.execute(
            f"""
            INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash, import_batch, meta)
            SELECT i, source, split, prompt, chosen, rejected,
                   sha256(prompt || chr(31) || chosen || chr(31) || rejected), 1,
                   json_object('row', i, 'lang', 'en', 'bench', true)
            FROM (
                SELECT r.i,
                       ({SOURCES!r})[1 + (hash(r.i, 'source') % {len(SOURCES)})::INTEGER] AS source,
                       CASE WHEN hash(r.i, 'split') % 10 = 0 THEN 'test' ELSE 'train' END AS split,
                       {cut('prompt', 60, 500)} AS prompt,
                       {cut('chosen', 200, 1500)}
                           || CASE WHEN r.i % {RARE_EVERY} = 0 THEN ' {RARE_WORD}.' ELSE '' END AS chosen,
                       {cut('rejected', 200, 1500)} AS rejected
                FROM range(1, {n_pairs + 1}) r(i), corpus c
            )
            ORDER BY i
            """
        )
        con.execute("INSERT INTO sources (name) SELECT unnest(?::VARCHAR[])", [SOURCES])
        con.execute(
            "INSERT INTO import_batches VALUES (1, 'bench', 'sql', '{}', now(), now(), ?, ?, 0, 0)",
            [n_pairs, n_pairs],
        )
        # Every 7th pair has a human label, every 13th an LLM verdict (1 in 10 of them a parse error).
        con.execute(
            """
            INSERT INTO annotations
                (id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, created_at)
            SELECT row_number() OVER (ORDER BY pair_id, kind), pair_id, kind, annotator,
                   outcome, CASE WHEN outcome = 'label' THEN level END, flip,
                   CASE WHEN outcome = 'label' THEN level / 3.0 END, now()
            FROM (
                SELECT i AS pair_id, 'human' AS kind, 'alice' AS annotator, 'label' AS outcome,
                       (hash(i, 'lvl') % 4)::TINYINT AS level, false AS flip
                FROM range(7, ?, 7) t(i)
                UNION ALL
                SELECT i, 'llm', 'judge-v1',
                       CASE WHEN hash(i, 'err') % 10 = 0 THEN 'parse_error' ELSE 'label' END,
                       (hash(i, 'lvl2') % 4)::TINYINT, hash(i, 'flip') % 2 = 0
                FROM range(13, ?, 13) t(i)
            )
            """,
            [n_pairs + 1, n_pairs + 1],
        )
        con.execute("CHECKPOINT")
        n_ann = con.execute("SELECT count(*) FROM annotations").fetchone()[0]
    partial.rename(path)
    size_mb = (path / "workspace.duckdb").stat().st_size / 2**20
    seconds = time.perf_counter() - t0
    print(f"built {path}: {n_pairs:,} pairs, {n_ann:,} annotations, {size_mb:,.0f} MiB in {seconds:.1f}s")


def timed(fn, runs: int = 7) -> tuple[float, float]:
    """(median, max) seconds over `runs` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def bench_queries(ws: Workspace, n_pairs: int) -> list[tuple[str, float, float, str]]:
    con = ws.cursor()
    everything, by_source = PairFilter(), PairFilter(source="concise")
    rare, unlabelled = PairFilter(search=RARE_WORD.upper()), PairFilter(annotated="unlabelled")
    frequent = PairFilter(search="ee")  # in nearly every text: the page stops early
    deep = n_pairs * 3 // 4
    cases = [
        ("first page", lambda: browse.fetch_page(con, everything), "< 100 ms"),
        ("next page, 3/4 deep", lambda: browse.fetch_page(con, everything, after_id=deep), "< 100 ms"),
        ("previous page, 3/4 deep", lambda: browse.fetch_page(con, everything, before_id=deep), "< 100 ms"),
        ("last page", lambda: browse.fetch_last_page(con, everything), "< 100 ms"),
        ("count, no filter", lambda: browse.count_pairs(con, everything), "< 100 ms"),
        ("source: first page", lambda: browse.fetch_page(con, by_source), "< 100 ms"),
        ("source: page 3/4 deep", lambda: browse.fetch_page(con, by_source, after_id=deep), "< 100 ms"),
        ("source: count", lambda: browse.count_pairs(con, by_source), "< 100 ms"),
        ("unlabelled: first page", lambda: browse.fetch_page(con, unlabelled), "< 100 ms"),
        ("unlabelled: count", lambda: browse.count_pairs(con, unlabelled), "< 100 ms"),
        ("frequent text: first page", lambda: browse.fetch_page(con, frequent), "< 100 ms"),
        ("rare word: first page", lambda: browse.fetch_page(con, rare), "full scan"),
        ("rare word: count", lambda: browse.count_pairs(con, rare), "full scan"),
        ("get pair + annotations", lambda: (browse.get_pair(con, deep), browse.annotations_for(con, deep)), "< 100 ms"),
        ("adjacent pair (source)", lambda: browse.adjacent_pair_id(con, by_source, deep, forward=True), "< 100 ms"),
    ]
    results = []
    for name, fn, target in cases:
        runs = 3 if target == "full scan" else 9
        median, worst = timed(fn, runs)
        results.append((name, median, worst, target))
    con.close()
    return results


async def bench_app(ws: Workspace, moves: int) -> list[tuple[str, float, float, str]]:
    """Times from a key to the new page in the table and its visible lines rendered."""

    def first_id(table: PageTable) -> int | None:
        return table.keys[0] if table.keys else None

    async def shown_after(table: PageTable, before: int | None, t0: float) -> float:
        while first_id(table) == before:
            await asyncio.sleep(0.001)
        table.render_lines(Region(0, 0, table.size.width, table.size.height))
        return time.perf_counter() - t0

    app = PrefstudioApp(ws)
    t0 = time.perf_counter()
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one(PageTable)
        first_screen = await shown_after(table, None, t0)
        await pilot.pause()
        results = [("app: start to first page", [first_screen], "< 500 ms")]
        for key, n in (("n", moves), ("p", moves // 2), ("G", 1), ("g", 1)):
            times = []
            for _ in range(n):
                before, t1 = first_id(table), time.perf_counter()
                app.simulate_key(key)  # pilot.press would also wait for the app to go idle
                times.append(await shown_after(table, before, t1))
                await pilot.pause()
            results.append((f"app: '{key}' x{n}", times, "< 100 ms"))
    return [(name, statistics.median(times), max(times), target) for name, times, target in results]


def import_seconds(runs: int = 3) -> float:
    """What a cold `prefstudio open` pays before any of the app runs: Python and the imports."""

    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - t0

    bare = statistics.median(run("pass") for _ in range(runs))
    return statistics.median(run("import prefstudio.tui.app") for _ in range(runs)) - bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()
    path = OUT / f"browse-{args.pairs}"
    if args.rebuild or not path.exists():
        build(path, args.pairs)
    t0 = time.perf_counter()
    with Workspace.open(path) as ws:
        opened = time.perf_counter() - t0
        n = ws.count_pairs()
        threads = ws.con.execute("SELECT current_setting('threads')").fetchone()[0]
        imports = import_seconds()
        rows = [
            ("import textual, duckdb, ...", imports, imports, "(before the app starts)"),
            ("open the workspace", opened, opened, "(before the app starts)"),
        ]
        rows += bench_queries(ws, n) + asyncio.run(bench_app(ws, args.moves))
    print(f"\n{n:,} pairs, {os.cpu_count()} CPUs, DuckDB threads: {threads}, python {sys.version.split()[0]}")
    print(f"{'what':<28} {'median':>9} {'max':>9}  target")
    for name, median, worst, target in rows:
        print(f"{name:<28} {median * 1000:>7.1f}ms {worst * 1000:>7.1f}ms  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
