"""Judge throughput: prefstudio's runner against raw AsyncOpenAI calls, same server, same calls.

    .venv/bin/python bench/judge_bench.py [--pairs 200]

A local OpenAI-compatible stub (tests/openai_stub.py) runs in its own process,
answering at once or after 200 ms. For each latency and concurrency (1, 8, 32)
this times (a) N raw `AsyncOpenAI.chat.completions.create` calls with a
semaphore, and (b) a prefstudio judge run over N/2 pairs (both orders = N
calls) into a fresh workspace: parsing, caching, committing every answer.
Overhead = 1 - prefstudio calls/s / raw calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefstudio.config import JudgeConfig  # noqa: E402
from prefstudio.ingest import RawPair, RecordsReader, import_pairs  # noqa: E402
from prefstudio.judge.runner import JudgeRun, prepare_run  # noqa: E402
from prefstudio.workspace import Workspace  # noqa: E402


def start_stub(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.openai_stub", "--latency", str(latency)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def make_pairs(n: int, seed: int) -> list[RawPair]:
    return [RawPair(f"[{seed}] Question {i}: how do I sort a list in Python?",
                    f"Use sorted(xs) for a new list or xs.sort() in place. ({i})",
                    f"Write a bubble sort. ({i})", f"line {i}") for i in range(n)]


async def raw_calls(base_url: str, messages: list[list[dict]], concurrency: int) -> float:
    client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(m):
        async with semaphore:
            reply = await client.chat.completions.create(model="gpt-4o", messages=m, temperature=0.0, max_tokens=200)
            return reply.choices[0].message.content

    t0 = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    elapsed = time.perf_counter() - t0
    await client.close()
    return elapsed


def prefstudio_run(base_url: str, pairs: list[RawPair], concurrency: int, folder: Path) -> tuple[float, list]:
    with Workspace.init(folder) as ws:
        import_pairs(ws, RecordsReader("bench", "bench", "bench", pairs))
        settings = JudgeConfig(model="gpt-4o", base_url=base_url, concurrency=concurrency)
        prompt, plan = prepare_run(ws, settings)
        messages = [prompt.messages(t.prompt, a, b) for t in plan.tasks for a, b in ((t.chosen, t.rejected), (t.rejected, t.chosen))]
        run = JudgeRun.for_workspace(ws, settings, prompt, plan)
        t0 = time.perf_counter()
        stats = asyncio.run(run.run())
        elapsed = time.perf_counter() - t0
        assert stats.state == "done" and stats.calls_made == 2 * len(pairs), stats.summary()
    return elapsed, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs per run at 0 ms (calls = 2x)")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    print(f"{'latency':>8} {'conc':>5} {'calls':>6} {'raw calls/s':>12} {'prefstudio calls/s':>19} {'overhead':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        run_no = 0
        for latency in (0.0, 0.2):
            proc, base_url = start_stub(latency)
            try:
                for concurrency in (1, 8, 32):
                    # keep each run to a few seconds: fewer pairs at 200 ms and low concurrency
                    n_pairs = args.pairs if latency == 0 else max(10, min(args.pairs, 25 * concurrency // 2))
                    run_no += 1
                    pairs = make_pairs(n_pairs, run_no)
                    ours, messages = prefstudio_run(base_url, pairs, concurrency, Path(tmp) / f"w{run_no}")
                    raw = asyncio.run(raw_calls(base_url, messages, concurrency))
                    calls = 2 * n_pairs
                    print(f"{latency * 1000:>6.0f}ms {concurrency:>5} {calls:>6} {calls / raw:>12.1f} "
                          f"{calls / ours:>19.1f} {1 - raw / ours:>8.1%}")
            finally:
                proc.kill()


if __name__ == "__main__":
    main()
