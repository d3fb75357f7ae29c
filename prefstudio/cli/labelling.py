"""Commands that label margins: annotate (the LLM judge), agreement."""

from __future__ import annotations

import argparse

from prefstudio.cli.common import add_workspace, confirm, progress_bar
from prefstudio.config import REASONING_EFFORTS
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
  prefstudio annotate ws --judge --model gpt-4o --model Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1
                                                             # a jury: two judges, then their median label
  prefstudio annotate ws --jury gpt-4o,Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1 --yes  # the same
  prefstudio annotate ws --retry-errors --yes                # ask again where no verdict could be read
  prefstudio annotate ws --batch --limit 5000                # as an OpenAI batch: half price, within 24 h;
                                                             # run it again to go on polling after a stop

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
    mode.add_argument("--batch", action="store_true",
                      help="run the LLM judge as one OpenAI Batch API job: half the price, answered within 24 h; "
                           "polled until done, and run again (any options) to go on polling after a stop")
    mode.add_argument("--jury", metavar="MODEL,MODEL[,...]",
                      help="a jury: run these judges (what they answered before is free) and store their median "
                           "label as annotator jury:A+B, the judge label that counts; MODEL@URL for its own endpoint")
    p.add_argument("--model", action="append",
                   help="judge model (default: [judge] model, gpt-4o); give it several times for a jury, "
                        "MODEL@URL for a judge on its own endpoint")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, llama.cpp, Ollama)")
    p.add_argument("--prompt", help="prompt name in prompts/ (general, helpful, harmless) or a .toml path")
    p.add_argument("--source", help="only pairs of this source")
    p.add_argument("--split", help="only pairs of this split")
    p.add_argument("--limit", type=int, help="at most this many pairs, counted over this run and the runs it "
                   "continues: asked again with the same options after a cancel, a run judges only what is left")
    p.add_argument("--concurrency", type=int, help="calls in flight at once (default: [judge] concurrency, 8)")
    p.add_argument("--reasoning-effort", choices=REASONING_EFFORTS,
                   help="how hard a reasoning model (o1, o3, o4-mini, GPT-5) thinks before its verdict (default: "
                        "[judge] reasoning_effort, the model's own)")
    p.add_argument("--yes", action="store_true", help="do not ask before spending")
    p.add_argument("--poll-every", type=float, default=60.0, metavar="SECONDS",
                   help="with --batch: seconds between polls of the batch (default 60)")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser(
        "agreement",
        help="how far annotators agree: confusion matrix, weighted kappa, flips, judge consistency",
        description="Compare two annotators' latest labels on the pairs both labelled: the 4x4 confusion "
        "matrix of levels, Cohen's kappa with quadratic weights, exact agreement, flip rates; then the kappa of "
        "every annotator against every other (judges, juries, people), each LLM judge's inconsistency across "
        "the two orders and position bias (docs/methods.md, \"A jury\"), and the levels per source. Without "
        "--a/--b, lists who has labelled what.",
    )
    add_workspace(p)
    p.add_argument("--a", help="first annotator: KIND:ID (human:ana, llm:gpt-4o, data:alpaca-eval/"
                   "weighted_alpaca_eval_gpt4_turbo for a margin that came with the data) or an ID")
    p.add_argument("--b", help="second annotator")
    p.set_defaults(func=cmd_agreement)


def cmd_annotate(args) -> int:
    import asyncio

    from prefstudio.judge.batch import pending_batch
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
        if args.reasoning_effort:  # for every judge of this command, whichever way it runs; never saved
            ws.config.judge = ws.config.judge.model_copy(update={"reasoning_effort": args.reasoning_effort})
        judges = _judges(args)
        if args.batch and len(judges) > 1:
            raise PrefstudioError("--batch sends one judge's calls: give one --model (for a jury, one --batch per "
                                  "judge, then --jury labels from their answers, free)")
        if len(judges) > 1:
            return _annotate_jury(ws, args, judges)
        settings = judge_settings(ws.config.judge, model=judges[0].model if judges else None,
                                  base_url=(judges[0].base_url if judges else None) or args.base_url,
                                  prompt=args.prompt, concurrency=args.concurrency)
        if args.batch:
            return _annotate_batch(ws, args, settings)
        prompt, plan = prepare_run(ws, settings, source=args.source, split=args.split, limit=args.limit,
                                   retry_errors=args.retry_errors)
        if args.retry_errors:
            print(f"re-asking {len(plan.tasks):,} pairs whose stored answers had no verdict")
        print(f"{plan.describe(settings.model)} (prompt {prompt.identity})")
        if plan.calls_needed and (pending := pending_batch(ws.con)) is not None:
            print(f"note: {pending.describe()} is not finished; `annotate --batch` collects it at half price, "
                  f"while this run pays again for any call they share")
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


def _annotate_batch(ws, args, settings) -> int:
    """Submit the plan's calls as one batch, or go on with the workspace's unfinished one; wait; collect; label.

    The workspace is closed while the batch is polled (hours, maybe): the app and other commands may use it.
    """
    import asyncio

    from prefstudio.judge import batch as judge_batch
    from prefstudio.judge.runner import JudgeRun, prepare_run
    from prefstudio.workspace import Workspace

    if args.poll_every < 0:
        raise PrefstudioError(f"--poll-every {args.poll_every}: give a number of seconds of at least 0")
    record = judge_batch.pending_batch(ws.con)
    if record is not None:  # it is polled with the judge it asked, whatever this command names
        print(f"{record.describe()} is not finished: going on with it (its own judge and pairs); nothing new "
              f"is submitted")
        asked = record.settings(ws.config.judge)
        client = judge_batch.make_batch_client(asked)
        record = judge_batch.resume(ws, record, client, asked)
        settings = asked if record is not None else settings
    if record is None:
        prompt, plan = prepare_run(ws, settings, source=args.source, split=args.split, limit=args.limit)
        print(f"{plan.describe(settings.model)} (prompt {prompt.identity})")
        if not plan.tasks:
            return 0
        if not plan.calls_needed:  # every call answered before: the labels come from the cache, free
            stats = asyncio.run(JudgeRun.for_workspace(ws, settings, prompt, plan).run())
            print(stats.summary())
            return 0 if stats.state == "done" and not stats.failed_pairs else 1
        if not args.yes and not confirm("send them as a batch?"):
            print("nothing spent")
            return 1
        client = judge_batch.make_batch_client(settings)
        record = judge_batch.submit(ws, settings, prompt, plan, client)
        print(f"{record.describe()}; polling every {args.poll_every:g} s (Ctrl-C stops the polling, "
              f"not the batch: run annotate --batch again to go on)")
    ws.close()  # free for the app while the provider works
    try:
        batch = judge_batch.wait(client, record, settings, poll_s=args.poll_every,
                                 on_poll=lambda polled: print(judge_batch.poll_line(polled), flush=True))
    except KeyboardInterrupt:
        print(f"stopped polling; batch {record.batch_id} goes on at the provider: run annotate --batch again to "
              f"collect it")
        return 130
    with Workspace.open(args.workspace) as ws:
        result = judge_batch.collect(ws, record, batch, client, settings)
        print(result.summary())
        stats = judge_batch.label(ws, record, settings)
        if stats is not None:
            print(stats.summary())
    if result.status != "completed":
        raise PrefstudioError(result.summary())
    return 0 if result.complete and (stats is None or stats.state == "done") else 1


def _judges(args) -> list:
    """The judges asked for: by --jury or by --model given several times (none: the workspace's default)."""
    from prefstudio.judge.jury import parse_judges

    if args.jury:
        if args.model:
            raise PrefstudioError("--jury names the judges itself; leave out --model (or give --judge --model A --model B)")
        judges = parse_judges([name.strip() for name in args.jury.split(",")], "--jury")
        if len(judges) < 2:
            raise PrefstudioError(f"--jury {args.jury}: a jury needs at least two judges, as MODEL,MODEL")
        return judges
    return parse_judges(args.model or [], "--model")


def _annotate_jury(ws, args, judges) -> int:
    """Each judge over the same pairs, one after the other, then the jury's labels (judge/jury.py)."""
    import asyncio

    from prefstudio.judge.jury import compute_jury, plan_jury
    from prefstudio.judge.runner import JudgeRun

    settings = [judge_settings(ws.config.judge, model=judge.model, base_url=judge.base_url or args.base_url,
                               prompt=args.prompt, concurrency=args.concurrency) for judge in judges]
    runs = plan_jury(ws, settings, source=args.source, split=args.split, limit=args.limit,
                     retry_errors=args.retry_errors)
    for judge, prompt, plan in runs:
        print(f"{plan.describe(judge.model)} at {judge.base_url or 'the OpenAI API'} (prompt {prompt.identity})")
    if any(plan.tasks for _, _, plan in runs) and not args.yes and not confirm("go on?"):
        print("nothing spent")
        return 1
    ok = True
    for judge, prompt, plan in runs:
        if not plan.tasks:
            continue
        with progress_bar(f"judging with {judge.model}", quiet=False) as on_progress:
            def progress(stats):
                if on_progress:
                    on_progress(stats.pairs_done, stats.pairs_total, stats.live_status())
            stats = asyncio.run(JudgeRun.for_workspace(ws, judge, prompt, plan, on_progress=progress).run())
        print(stats.summary())
        ok = ok and stats.state == "done" and not stats.failed_pairs
    models, identity = [judge.model for judge in settings], runs[0][1].identity
    print(compute_jury(ws.con, models, identity, ws.config.margins, source=args.source, split=args.split).summary())
    return 0 if ok else 1


def cmd_agreement(args) -> int:
    from prefstudio.agreement import (BIAS_NOTE, agreement_matrix, annotators, bias_table, check_known,
                                      compare, judge_consistency, level_distribution, matrix_lines, position_bias)
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
        lines = matrix_lines(*agreement_matrix(ws.con))
        if lines:
            print("weighted kappa (pairs labelled by both), every annotator against every other:")
            print("\n".join("  " + line for line in lines))
        lines = bias_table(judge_consistency(ws.con), position_bias(ws.con))
        if lines:
            print("judges across the two orders:")
            print("\n".join("  " + line for line in lines))
            print(f"  ({BIAS_NOTE})")
        dist = level_distribution(ws.con)
        if dist:
            print("levels per source (resolved labels): " + " | ".join(level_label(level) for level in range(4)))
            width = max(len(s) for s in dist)
            for source, counts in dist.items():
                total = sum(counts) or 1
                bars = "  ".join(f"{i} {'█' * round(10 * n / total):<10}{n:>6,}" for i, n in enumerate(counts))
                print(f"  {source:<{width}} {bars}")
    return 0
