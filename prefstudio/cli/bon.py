"""`prefstudio bon …`: best-of-N from the command line (sample, import, score, show, winrate, list).

One module of the command-line package like the others; `bon` is one command with actions of its
own. Each action is a thin wrapper over the bon modules.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

from prefstudio.cli.common import add_workspace, confirm, follow_job, progress_bar
from prefstudio.errors import PrefstudioError

EPILOG = """examples:
  prefstudio bon sample ws --policy ./pythia-1b-sft --n 16 --prompts test/helpful-base --limit 500 \\
      --rm 20261124-101500-bt-3f2a --rm 20261124-121500-more-9c1e --wait
  prefstudio bon sample ws --policy Qwen/Qwen2.5-7B-Instruct --base-url http://localhost:8000/v1 --n 16 --prompts test
  prefstudio bon import ws samples.jsonl --run pythia-n16       # {"prompt": "...", "responses": ["...", ...]} per line
  prefstudio bon score ws pythia-n16 --rm 20261124-101500-bt-3f2a --wait
  prefstudio bon show ws pythia-n16 --prompt 3
  prefstudio bon winrate ws pythia-n16 --judge --model gpt-4o --out report/
  prefstudio bon winrate ws pythia-n16 --rm 20261124-101500-bt-3f2a --evaluator 20261125-090000-bt-large-77aa
then: F7 Best-of-N in the app (`prefstudio open ws`)"""


def _fill(text: str) -> str:
    """A description wrapped by hand: the raw formatter that keeps the examples' layout would not wrap it."""
    return textwrap.fill(text, 79)


def add_parser(sub) -> None:
    """Mount `bon` and its actions on the main parser's subcommands."""

    p = sub.add_parser(
        "bon",
        help="best-of-N: sample N responses per prompt, score them with reward models, measure win rate",
        description=_fill("Best-of-N, the downstream check of a reward model: does a better reward model pick better "
        "responses? Sample N candidates per prompt from a policy (a Hugging Face causal LM on the GPU when there "
        "is one, or an OpenAI-compatible endpoint; a background job), or import them from JSONL; score every "
        "candidate with trained reward models; then the win rate of best-of-N against the first sample, for "
        "N = 1, 2, 4, ..., N_max, judged by the LLM judge (both orders, ties count half, cached: nothing is paid "
        "twice) or by an evaluator reward model."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="bon_action", metavar="ACTION", required=True)

    a = actions.add_parser(
        "sample", help="sample N responses per prompt from a policy (a background job)",
        description=_fill("Make a run: the distinct prompts of --prompts' pairs, N responses each, sampled by a background "
        "job (batched generation, on the GPU when there is one; resumable). With --base-url the policy is a model "
        "behind an OpenAI-compatible endpoint (key from OPENAI_API_KEY, never stored). Each --rm scores the samples "
        "in the same job once they are made."), epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workspace(a)
    a.add_argument("--policy", required=True, metavar="MODEL", help="causal LM folder or hub name; with --base-url, "
                   "the endpoint's model name")
    a.add_argument("--base-url", help="sample from this OpenAI-compatible endpoint instead of a local model")
    a.add_argument("--n", type=int, default=16, help="samples per prompt (default 16)")
    a.add_argument("--prompts", default="test", metavar="SPLIT[/SOURCE]",
                   help="the prompts of these pairs, each once (default: test)")
    a.add_argument("--limit", type=int, help="at most this many prompts")
    a.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 is greedy (default 1.0)")
    a.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    a.add_argument("--max-new-tokens", type=int, default=128, help="tokens per response at most (default 128)")
    a.add_argument("--batch-size", type=int, default=16,
                   help="sequences per generate() call, or requests in flight for an endpoint (default 16)")
    a.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    a.add_argument("--template", default="{prompt}\n\nAssistant: {response}",
                   help="how the policy sees a prompt: the text up to {response} (default: the reward models')")
    a.add_argument("--rm", action="append", default=[], metavar="JOB[@step-N]",
                   help="score the samples with this training job's checkpoint (JOB: its id or name; latest unless "
                   "@step-N); repeatable")
    a.add_argument("--run", metavar="NAME", help="the run's name (default: the policy's name and the time)")
    a.add_argument("--wait", action="store_true", help="follow the job, then bring its results into the workspace")
    a.set_defaults(func=cmd_sample)

    a = actions.add_parser(
        "import", help="import candidates from a JSONL file (prompt, responses[])",
        description="Import candidates: one JSON object per line, {\"prompt\": ..., \"responses\": [...]}, "
        "responses in sample order (the first is the win rate's baseline). Into run --run (default: the file's "
        "name), made if missing. Importing again adds nothing; extra responses for a prompt are appended; a "
        "different text at a stored position is an error.")
    add_workspace(a)
    a.add_argument("file", type=Path, help="JSONL file")
    a.add_argument("--run", metavar="NAME", help="run to import into (default: the file's name)")
    a.set_defaults(func=cmd_import)

    a = actions.add_parser(
        "score", help="score a run's candidates with trained reward models (a background job)",
        description="Score every candidate of a run that lacks a reward from these models, as a background job "
        "(each model scores as it was trained: same template and length). Scoring again adds nothing twice.")
    add_workspace(a)
    a.add_argument("run", help="the run (see `prefstudio bon list`)")
    a.add_argument("--rm", action="append", default=[], required=True, metavar="JOB[@step-N]",
                   help="a training job's checkpoint (JOB: its id or name; latest unless @step-N), or model:NAME "
                   "(a reward model scored by `eval --model`); repeatable")
    a.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    a.add_argument("--wait", action="store_true", help="follow the job, then bring the rewards into the workspace")
    a.set_defaults(func=cmd_score)

    a = actions.add_parser("list", help="list best-of-N runs", description="List the runs: origin, policy, "
                           "prompts, candidates, largest N and the reward models that scored them.")
    add_workspace(a)
    a.set_defaults(func=cmd_list)

    a = actions.add_parser("show", help="one prompt's candidates ranked by each reward model",
                           description="Print a prompt of a run with its candidates, best first by the first reward "
                           "model, with every model's reward and rank and the reward spread.")
    add_workspace(a)
    a.add_argument("run", help="the run")
    a.add_argument("--prompt", type=int, default=0, metavar="K", help="the K-th prompt of the run, from 0 (default 0)")
    a.set_defaults(func=cmd_show)

    a = actions.add_parser(
        "winrate", help="win rate of best-of-N against the first sample, for N = 1, 2, 4, ...",
        description=_fill("For N = 1, 2, 4, ..., N_max: each reward model's best of the first N samples against sample 0. "
        "--judge asks the LLM judge (both orders: a win needs both; a tie or a disagreement counts half; every call "
        "cached, so comparisons judged before cost nothing); --evaluator uses a (larger) reward model's rewards "
        "instead (win if it rewards best-of-N higher, half if equal). Where best-of-N is sample 0 it counts half "
        "with no call. Draws the curve; --out writes winrate.csv, winrate.md and winrate.png."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workspace(a)
    a.add_argument("run", help="the run")
    a.add_argument("--rm", action="append", default=[], metavar="JOB[@step-N]",
                   help="reward models whose best-of-N to judge (default: every one that scored the run but the evaluator)")
    how = a.add_mutually_exclusive_group(required=True)
    how.add_argument("--judge", action="store_true", help="judge with the LLM judge ([judge] in workspace.toml)")
    how.add_argument("--evaluator", metavar="JOB[@step-N]", help="judge with this reward model's rewards (score the "
                     "run with it first)")
    a.add_argument("--n-max", type=int, help="largest N (default: the run's)")
    a.add_argument("--model", help="judge model (default: [judge] model)")
    a.add_argument("--base-url", help="the judge's OpenAI-compatible endpoint")
    a.add_argument("--prompt", help="judge prompt name or .toml path (default: [judge] prompt)")
    a.add_argument("--concurrency", type=int, help="judge calls in flight")
    a.add_argument("--yes", action="store_true", help="do not ask before spending")
    a.add_argument("--out", type=Path, metavar="DIR", help="write winrate.csv, winrate.md and winrate.png here")
    a.set_defaults(func=cmd_winrate)


def _follow(args, job, started, description: str) -> int:
    """Say where the job is; with --wait, follow it and list the runs (opening the workspace brings its results in)."""

    if not args.wait:
        print("running" if started and started.id == job.id else "queued: it starts when the running job ends",
              f"- follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
        return 0
    follow_job(job, description)
    return cmd_list(args)


def _job_ids(ws, specs: list[str]) -> list[str]:
    """--rm's JOB[@step-N] with a job's name put as its id: a name is taken wherever a job id is."""
    from prefstudio import jobs
    from prefstudio.jobs.names import with_job_id

    statuses = jobs.list_jobs(ws.jobs_dir)
    return [with_job_id(ws.jobs_dir, spec, statuses) for spec in specs]


def cmd_sample(args) -> int:
    from prefstudio import jobs
    from prefstudio.bon import job as bon_job
    from prefstudio.bon import runs
    from prefstudio.bon.sampling import SampleConfig
    from prefstudio.workspace import Workspace

    sample = SampleConfig(policy=args.policy, origin="endpoint" if args.base_url else "hf", base_url=args.base_url,
                          n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                          batch_size=args.batch_size, seed=args.seed, template=args.template)
    with Workspace.open(args.workspace) as ws:
        prompts = runs.select_prompts(ws.con, args.prompts, args.limit)
        run_id, job = bon_job.launch_sample(ws, args.run, prompts, sample, _job_ids(ws, args.rm))
        started = jobs.start_next(ws.jobs_dir)
    print(f"run {run_id}: {len(prompts):,} prompts x {args.n} samples from {args.policy}; job {job.id}")
    return _follow(args, job, started, f"best-of-{args.n}")


def cmd_import(args) -> int:
    from prefstudio.bon import runs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        summary = runs.import_jsonl(ws.con, args.file, args.run)
    print(f"run {summary.run_id}: {summary.n_prompts:,} prompts read, {summary.n_new_prompts:,} new prompts, "
          f"{summary.n_new_candidates:,} new candidates")
    return 0


def cmd_score(args) -> int:
    from prefstudio import jobs
    from prefstudio.bon import job as bon_job
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        job = bon_job.launch_score(ws, args.run, _job_ids(ws, args.rm), batch_size=args.batch_size)
        started = jobs.start_next(ws.jobs_dir) if job else None
    if job is None:
        print(f"run {args.run}: every candidate already has a reward from {', '.join(args.rm)}")
        return 0
    print(f"job {job.id}: scores run {args.run} with {', '.join(args.rm)}")
    return _follow(args, job, started, f"scoring {args.run}")


def cmd_list(args) -> int:
    from prefstudio.bon import runs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:  # a finished job's candidates and rewards come in as it opens
        found = runs.list_runs(ws.con)
    if not found:
        print("no best-of-N runs; make one with `prefstudio bon sample` or `prefstudio bon import`")
    for run in found:
        print(f"{run.id}  {run.origin:<8} {run.n_prompts:>6,} prompts {run.n_candidates:>8,} candidates  N {run.max_n:<4} "
              f"{run.policy}")
        for scorer in run.scorers:
            print(f"    scored by {scorer.job_id}@{scorer.checkpoint}")
    return 0


def cmd_show(args) -> int:
    from prefstudio.bon import runs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        run = runs.get_run(ws.con, args.run)
        prompts = runs.prompt_ids(ws.con, run.id)
        if not 0 <= args.prompt < len(prompts):
            raise PrefstudioError(f"--prompt {args.prompt}: run {run.id} has prompts 0 to {len(prompts) - 1}")
        pid, _, text = prompts[args.prompt]
        found = runs.candidates(ws.con, pid, list(run.scorers))
    print(f"prompt {args.prompt} of {len(prompts)} in run {run.id}:\n{text}\n")
    ranked = {s: runs.ranks([c.rewards.get(s) for c in found]) for s in run.scorers}
    first = run.scorers[0] if run.scorers else None
    order = sorted(found, key=lambda c: (ranked[first][c.idx] or math.inf) if first else c.idx)
    for scorer in run.scorers:
        values = [c.rewards[scorer] for c in found if scorer in c.rewards]
        if values:
            print(f"{scorer.label}: reward spread {max(values) - min(values):.4f} (min {min(values):.4f}, "
                  f"max {max(values):.4f})")
    for c in order:
        scores = "  ".join(f"#{ranked[s][c.idx]} {c.rewards[s]:+.4f}" if s in c.rewards else "-" for s in run.scorers)
        print(f"--- sample {c.idx}  {scores}\n{c.response}")
    return 0


def cmd_winrate(args) -> int:
    import asyncio

    from prefstudio.bon import report, runs, winrate
    from prefstudio.evaluate.compare import colour_slots, slots_for
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        run = runs.get_run(ws.con, args.run)
        evaluator = runs.find_scorer(ws.con, run.id, _job_ids(ws, [args.evaluator])[0]) if args.evaluator else None
        chosen = [runs.find_scorer(ws.con, run.id, name) for name in _job_ids(ws, args.rm)] or \
            [s for s in run.scorers if s != evaluator]
        if not chosen:
            raise PrefstudioError(f"run {run.id} has no reward model's rewards to pick best-of-N with; "
                                  f"score it with `prefstudio bon score {args.workspace} {run.id} --rm JOB`")
        if evaluator is not None:
            outcome, judged_by = winrate.evaluator_outcomes(ws.con, run.id, evaluator), f"evaluator {evaluator.label}"
        else:
            outcome, judged_by = _judge(args, ws, run, chosen, asyncio)
        curves = winrate.curves(ws.con, run.id, chosen, outcome, args.n_max)
        slots = slots_for([s.job_id for s in curves], colour_slots(ws.con))
    labelled = {s.label: points for s, points in curves.items()}
    print(f"win rate of best-of-N against sample 0 in run {run.id}, judged by {judged_by}")
    print("\n".join(report.chart(labelled)))
    print("\n".join(report.table(labelled)))
    if args.out:
        paths = report.write(args.out, run.id, judged_by, labelled, slots)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _judge(args, ws, run, chosen, asyncio):
    """Judge what is missing (asking first unless --yes); the stored outcomes and who judged them."""
    from prefstudio.bon import winrate

    from prefstudio.settings import judge_settings

    settings = judge_settings(ws.config.judge, model=args.model, base_url=args.base_url, prompt=args.prompt,
                              concurrency=args.concurrency)
    judging = winrate.plan_judging(ws, run.id, chosen, settings, n_max=args.n_max)
    if judging.n_comparisons:
        print(f"{judging.n_comparisons:,} comparisons of best-of-N with sample 0 to judge: "
              f"{judging.plan.describe(settings.model)} (prompt {judging.prompt.identity})")
    else:
        print(f"every comparison is judged already (by {settings.model}, prompt {judging.prompt.identity}): "
              "nothing to pay")
    if judging.plan.tasks and (args.yes or confirm("go on?")):
        with progress_bar("judging") as on_progress:
            def progress(stats):
                if on_progress:
                    on_progress(stats.pairs_done, stats.pairs_total, f"${stats.cost_usd:.4f}")
            stats = asyncio.run(winrate.WinRateJudgeRun.for_plan(ws, settings, judging, on_progress=progress).run())
        print(stats.summary())
    return (winrate.judged_outcomes(ws.con, run.id, settings.model, judging.prompt.identity),
            f"{settings.model} ({judging.prompt.identity})")
