"""Best-of-N candidates without a policy model: a stand-in assembled from the demo's own responses.

No causal LM can be downloaded here, so instead of sampling, each test prompt gets N
"samples" drawn from every response the workspace holds for the same question (any
source, any wording of the request: correct answers of several lengths, paraphrases,
wrong answers, refusals, compliances), shuffled with a fixed seed. Sample 0 is the
win rate's baseline, as for a real policy.

    python docs/guide/make_candidates.py WORKSPACE_DB OUT.jsonl [--n 8] [--per-source 20] [--seed 0]

Reads the workspace's DuckDB file read-only (close the app first). Writes one
{"prompt": ..., "responses": [...], "source": ...} line per prompt, the format
`prefstudio bon import` reads.
"""

from __future__ import annotations

import argparse
import json
import random
import re

import duckdb

from prefstudio.demo import SOURCES


def question_of(prompt: str, patterns: list[re.Pattern]) -> str | None:
    for pattern in patterns:
        match = pattern.fullmatch(prompt)
        if match:
            return match.group(1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt")
    parser.add_argument("--per-source", type=int, default=20, help="test prompts per source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frames = [frame for recipe in SOURCES.values() for frame in recipe.frames]
    patterns = [re.compile(re.escape(frame).replace(re.escape("{q}"), "(.+)"), re.DOTALL) for frame in frames]

    con = duckdb.connect(args.db, read_only=True)
    rows = con.execute("SELECT id, source, split, prompt, chosen, rejected FROM pairs ORDER BY id").fetchall()
    pool: dict[str, list[str]] = {}
    for _, _, _, prompt, chosen, rejected in rows:
        q = question_of(prompt, patterns)
        if q is None:
            continue
        responses = pool.setdefault(q, [])
        for response in (chosen, rejected):
            if response not in responses:
                responses.append(response)

    rng = random.Random(args.seed)
    taken: dict[str, int] = {}
    seen_prompts: set[str] = set()
    with open(args.out, "w", encoding="utf-8") as out:
        for _, source, split, prompt, _, _ in rows:
            if split != "test" or prompt in seen_prompts or taken.get(source, 0) >= args.per_source:
                continue
            q = question_of(prompt, patterns)
            if q is None or len(pool[q]) < args.n:
                continue
            seen_prompts.add(prompt)
            taken[source] = taken.get(source, 0) + 1
            candidates = rng.sample(pool[q], args.n)
            out.write(json.dumps({"prompt": prompt, "responses": candidates, "source": source},
                                 ensure_ascii=False) + "\n")
    print(f"wrote {sum(taken.values())} prompts ({', '.join(f'{s} {n}' for s, n in taken.items())}), "
          f"{args.n} candidates each, to {args.out}")


if __name__ == "__main__":
    main()
