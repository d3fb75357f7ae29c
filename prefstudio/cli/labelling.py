"""Commands that label margins: annotate (the LLM judge), agreement."""

from __future__ import annotations

import argparse

from prefstudio.cli.common import add_workspace, confirm, progress_bar
from prefstudio.errors import PrefstudioError
from prefstudio.settings import judge_settings


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "annotate",
        help="label pair margins with an LLM judge (both orders), or re-parse stored answers",
        description="Ask an LLM judge (any OpenAI-compatible endpoint) how much better each pair's chosen "
        "response is, on four levels. Every pair is judged twice, chosen shown first as A and then as B; "
        "if the two answers name different winners the pair is 'inconsistent' (level 0), if they agree on "
        "the winner the lower level is kept. Each answer is stored as it arrives and cached: an interrupted "
        "run loses at most the calls in flight, and a rerun pays for nothing twice.",
        epilog="""The API key is read from OPENAI_API_KEY and never written anywhere. Defaults for every
option can be set in the workspace's workspace.toml under [judge].

examples:
  prefstudio annotate ws --judge --limit 100                 # GPT-4 (gpt-4o) on 100 unlabelled pairs
  prefstudio annotate ws --judge --source harmless-base --prompt harmless
  prefstudio annotate ws --judge --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --yes
  prefstudio annotate ws --reparse                           # re-read stored answers, no API call
  prefstudio annotate ws --retry-errors --yes                # ask again where no verdict could be read

A server's Retry-After is honoured up to [judge] retry_after_cap_s (120 s), with a countdown.
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--judge", action="store_true", help="run the LLM judge")
    mode.add_argument("--reparse", action="store_true", help="parse the judge's stored raw answers again (no API call)")
    mode.add_argument("--retry-errors", action="store_true",
                      help="ask the judge again for the pairs whose latest label is a parse error; only their "
                           "answers without a verdict are paid for again")
    p.add_argument("--model", help="judge model (default: [judge] model, gpt-4o)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, llama.cpp, Ollama)")
    p.add_argument("--prompt", help="prompt name in prompts/ (general, helpful, harmless) or a .toml path")
    p.add_argument("--source", help="only pairs of this source")
    p.add_argument("--split", help="only pairs of this split")
    p.add_argument("--limit", type=int, help="at most this many pairs, counted over this run and the runs it "
                   "continues: asked again with the same options after a cancel, a run judges only what is left")
    p.add_argument("--concurrency", type=int, help="calls in flight at once (default: [judge] concurrency, 8)")
    p.add_argument("--yes", action="store_true", help="do not ask before spending")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser(
        "agreement",
        help="how far annotators agree: confusion matrix, weighted kappa, flips, judge consistency",
        description="Compare two annotators' latest labels on the pairs both labelled: the 4x4 confusion "
        "matrix of levels, Cohen's kappa with quadratic weights, exact agreement, flip rates; then each LLM "
        "judge's inconsistency (position-bias) rate and the levels per source. Without --a/--b, lists who "
        "has labelled what.",
    )
    add_workspace(p)
    p.add_argument("--a", help="first annotator: KIND:ID (human:ana, llm:gpt-4o, data:alpaca-eval/"
                   "weighted_alpaca_eval_gpt4_turbo for a margin that came with the data) or an ID")
    p.add_argument("--b", help="second annotator")
    p.set_defaults(func=cmd_agreement)


def cmd_annotate(args) -> int:
    import asyncio

    from prefstudio.judge.runner import JudgeRun, prepare_run, reparse
    from prefstudio.workspace import Workspace

    if args.limit is not None and args.limit < 1:
        raise PrefstudioError(f"--limit {args.limit}: give a whole number of at least 1 (or leave it out for all pairs)")
    if args.concurrency is not None and args.concurrency < 1:
        raise PrefstudioError(f"--concurrency {args.concurrency}: give a whole number of at least 1 (calls in flight)")
    with Workspace.open(args.workspace) as ws:
        if args.reparse:
            looked, fixed = reparse(ws.con, ws.config.margins)
            print(f"re-parsed {looked:,} stored parse errors: {fixed:,} now labelled, {looked - fixed:,} still unparseable")
            return 0
        settings = judge_settings(ws.config.judge, model=args.model, base_url=args.base_url, prompt=args.prompt,
                                  concurrency=args.concurrency)
        prompt, plan = prepare_run(ws, settings, source=args.source, split=args.split, limit=args.limit,
                                   retry_errors=args.retry_errors)
        if args.retry_errors:
            print(f"re-asking {len(plan.tasks):,} pairs whose stored answers had no verdict")
        print(f"{plan.describe(settings.model)} (prompt {prompt.identity})")
        if not plan.tasks:
            return 0
        if not args.yes and not confirm("go on?"):
            print("nothing spent")
            return 1
        with progress_bar("judging", quiet=False) as on_progress:
            def progress(stats):
                if on_progress:  # "rate limited; retrying in 37 s · ..." while calls wait on a retry
                    on_progress(stats.pairs_done, stats.pairs_total, stats.live_status())
            run = JudgeRun.for_workspace(ws, settings, prompt, plan, on_progress=progress)
            stats = asyncio.run(run.run())
        print(stats.summary())
        return 0 if stats.state == "done" and not stats.failed_pairs else 1


def cmd_agreement(args) -> int:
    from prefstudio.agreement import annotators, check_known, compare, judge_consistency, level_distribution
    from prefstudio.labels import level_label
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        if bool(args.a) != bool(args.b):
            raise PrefstudioError("give both --a and --b to compare two annotators")
        if args.a:
            check_known(ws.con, args.a, "--a")
            check_known(ws.con, args.b, "--b")
            result = compare(ws.con, args.a, args.b)
            print(f"{result.a} vs {result.b}: {result.n:,} pairs labelled by both")
            print(f"confusion: rows {args.a}'s level, columns {args.b}'s (levels as `export` writes them)")
            names = [level_label(level) for level in range(4)]
            width = max(len(name) for name in names)
            print(f"{'':<{width}}" + "".join(f"{level:>8}" for level in range(4)))
            for name, row in zip(names, result.confusion):
                print(f"{name:<{width}}" + "".join(f"{n:>8,}" for n in row))
            print(f"weighted kappa (quadratic) {result.kappa:.3f} · exact {result.exact:.1%} · flip rate "
                  f"{result.flip_rate_a:.1%} / {result.flip_rate_b:.1%} · flipped by one only {result.flip_disagreements:,}")
            if result.value_by_level is not None:
                holder, means = result.value_by_level
                other = args.b if holder == args.a else args.a
                cells = " · ".join(f"{level}: {'-' if m is None else f'{m:.3g}'}" for level, m in enumerate(means))
                print(f"mean {holder} value by {other}'s level: {cells}")
        else:
            for kind, name, n in annotators(ws.con):
                print(f"{kind}:{name}  {n:,} pairs")
        for model, version, n, k, rate in judge_consistency(ws.con):
            print(f"judge {model} ({version}): {k:,} of {n:,} inconsistent across orders ({rate:.1%})")
        dist = level_distribution(ws.con)
        if dist:
            print("levels per source (resolved labels): " + " | ".join(level_label(level) for level in range(4)))
            width = max(len(s) for s in dist)
            for source, counts in dist.items():
                total = sum(counts) or 1
                bars = "  ".join(f"{i} {'█' * round(10 * n / total):<10}{n:>6,}" for i, n in enumerate(counts))
                print(f"  {source:<{width}} {bars}")
    return 0
