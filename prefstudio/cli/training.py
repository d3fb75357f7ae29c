"""Commands that make and watch jobs: train, sweep, jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefstudio.cli.common import add_workspace, progress_bar
from prefstudio.errors import PrefstudioError
from prefstudio.settings import MIN_MAX_LENGTH, OBJECTIVES, SAMPLINGS, parse_gpus, sampling_needed, setting_value
from prefstudio.train import truncation

STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")  # TrainConfig.strategy's values (tests/test_sharding.py keeps them so)


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="start a background job that trains a reward model (bt, margin, adaptive or MORE)",
        description="Make a training job: the settings and a snapshot of the workspace's pairs (with the margins "
        "their labels give) are frozen into jobs/<id>/, and the job runs as its own process, after any job already "
        "running. It writes log.txt, metrics.jsonl (loss, per-source loss, MORE's λ, lr, pairs/s) and checkpoints "
        "that load with transformers' AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).",
        epilog="""objectives (docs/methods.md): bt = -log σ(d); margin = -log σ(d - m), m from the pair's label;
adaptive = the batch-mean margin of the margin paper; more = MORE's reweighting of per-source losses
(needs --sampling balanced; its per-source loss is --set more_loss=bt|margin|adaptive).

checked at launch: a margin job with no labelled training pair is refused (every margin would be 0,
which is bt): label pairs, run `prefstudio annotate --judge`, or import margins with --margin-from;
--set unlabelled=zero trains it anyway. A balanced batch size must be divisible by the number of
sources (those named with --source, else every source of the split).

batches: bt and margin batch pairs of similar length together (less padding, faster; a per-pair loss
is unchanged by it). adaptive and more draw random batches, because their batch statistic (μ_B, λ)
changes when a batch holds only short or only long pairs and d correlates with length;
--set group_by_length=true|false overrides either default.

truncation: a text longer than --max-length keeps the start of its response and the end of the
prompt; both sides of a pair keep the same prompt tokens. The job log and the Jobs screen count the
pairs that lost prompt or response tokens, and those whose two sides became identical (no signal).

checkpoints: --set checkpoint_every=N saves one every N steps (and one is saved at the end, or on a
cancel); the newest --set keep_checkpoints=K (default 3) are kept, and only the newest holds the
optimiser's state (resume goes on from it); the older ones hold the model, for scoring. A full disk
fails the job with "disk full at step N, last good checkpoint step-M"; free space, then resume.

--set preset=more-paper: MORE's official run as closely as one job allows (one pair per source per
micro-batch, 16 accumulation steps, l2 normalisation, momentum 0.99, lr 1e-6, 40k pairs per source);
settings given beside it win. The differences left are in docs/methods.md.

Every setting has a --set KEY=VALUE form, and a TOML file (--config) may hold them all:
  backbone objective more_loss sampling sources quota split unlabelled pooling template max_length
  batch_size grad_accum epochs lr weight_decay warmup_ratio schedule mixed_precision
  gradient_checkpointing freeze_layers more_momentum more_normalize checkpoint_every keep_checkpoints
  seed group_by_length preset strategy

strategies (docs/cluster.md): ddp (default) copies the model to every process; fsdp shards weights,
gradients and AdamW states over them (FSDP2); zero2 / zero3 are DeepSpeed's (pip install
'prefstudio[deepspeed]'). A sharded job gets accelerate.yaml in its folder and runs on GPUs with
`accelerate launch --config_file JOB/accelerate.yaml`; several CPU processes (--processes) shard
fsdp themselves. On one process there is nothing to shard: the model trains whole. Checkpoints
are always gathered into one Hugging Face folder.

examples:
  prefstudio train ws --backbone ./pythia-410m --objective more --sampling balanced --batch-size 80
  prefstudio train ws --backbone ./minilm --objective margin --set unlabelled=drop --gpus 0
  prefstudio train ws --config more.toml --gpus 0,1,2,3          # 4 GPUs through accelerate
  prefstudio train ws --config more.toml --gpus 0,1,2,3,4,5,6,7 --strategy fsdp   # a 7B, sharded
  prefstudio train ws --config more.toml --no-start               # for a cluster: see docs/cluster.md
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("--objective", choices=OBJECTIVES)
    _add_settings(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sweep",
        help="queue a grid of training jobs (objectives x seeds x settings), each scored on the test split when done",
        description="Make one training job per objective, seed and combination of the settings given several "
        "values (--set KEY=V1,V2), all with the same sweep id, and for each a scoring job on --split that the queue "
        "starts once its training job is done (it scores the latest checkpoint then). Every run's settings are "
        "checked first, as `train` checks them: one bad value makes no job at all. A run's cell is its settings "
        "without its seed: `prefstudio report WS sweep:ID` gives each cell's mean and 95% interval over its seeds "
        "and compares cells on the same test pairs.",
        epilog="""examples:
  prefstudio sweep ws --backbone ./minilm --objective bt,margin,adaptive,more --seeds 3
  prefstudio sweep ws --backbone ./minilm --objective bt,margin --seeds 0,1,7 --set lr=1e-4,3e-4 --name lr
  prefstudio sweep ws --config base.toml --objective bt,more --seeds 5 --no-start   # for a cluster

--seeds N takes seeds 0..N-1 (default 3); a comma list takes those seeds. --set KEY=VALUE sets every run;
--set KEY=V1,V2 makes an axis of the grid (a TOML list, --set 'sources=["a","b"]', is one value).
more trains with --sampling balanced unless --sampling says otherwise. The queue runs the jobs one at a
time, the first seed of every cell first; `prefstudio jobs WS` shows them grouped under the sweep.
A sweep of more than 200 training jobs needs --yes.
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("--objective", metavar="LIST", help=f"objectives separated by commas, from {', '.join(OBJECTIVES)} "
                   "(default: the --config's, else bt)")
    p.add_argument("--seeds", metavar="N|LIST", help="how many seeds (0..N-1), or the seeds, e.g. 0,1,7; default 3")
    p.add_argument("--split", default="test", help="the split each run is scored on (default: test)")
    p.add_argument("--yes", action="store_true", help="make a sweep of more than 200 training jobs")
    _add_settings(p, sweep=True)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("jobs", help="list jobs (training, scoring); cancel, resume or follow one",
                       description="List the workspace's jobs with their state and progress, or act on one. "
                       "Finished scoring jobs' rewards are brought into the workspace on the way. States: held "
                       "(--no-start: run elsewhere, not in the local queue), queued, running (here, or on another "
                       "host while its heartbeat is fresh), done, damaged (a Parquet file it wrote is cut short), "
                       "failed, cancelled; see docs/cluster.md. A sweep's jobs are listed under a line that "
                       "says the sweep's id, its grid and how many of its jobs are done; a scoring job waits "
                       "for its training job and says so.")
    add_workspace(p)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--cancel", metavar="ID", help="stop a queued, held or running job (it saves a checkpoint first; "
                     "one on another host at its next heartbeat), or every such job of a sweep (ID: its sweep id)")
    act.add_argument("--resume", metavar="ID", help="go on with a failed or cancelled job from its last checkpoint, "
                     "or run a held (--no-start) job here; refused while the job's runner lock is fresh")
    act.add_argument("--follow", metavar="ID", help="print the job's progress until it ends (ID, here and above: "
                     "a job's id or its name)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser(
        "retrain", help="train a job's settings again on the pairs as they are now (a new job, linked to it)",
        description="Make a training job with JOB's frozen settings, unchanged, and a new snapshot of the pairs: "
        "after labelling, the same run on the new labels. The new job is named after its parent (NAME-r1, "
        "NAME-r2, …), records its parent, and runs after any job already running; a scoring job on the test "
        "split runs after it, and one scores the parent too where nothing has, so `prefstudio report` and the "
        "Evaluate screen (p: parent vs child) compare the two on the same test pairs. The label screen's `t` "
        "does the same for the newest training job.",
        epilog="""examples:
  prefstudio retrain ws my-run              # my-run-r1: my-run's settings on today's labels
  prefstudio retrain ws                     # the newest training job
  prefstudio retrain ws my-run --no-start   # for a cluster: see docs/cluster.md
""", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workspace(p)
    p.add_argument("job", nargs="?", metavar="JOB", help="the job to retrain, by id or name (default: the newest "
                   "training job)")
    p.add_argument("--no-score", action="store_true", help="make no scoring jobs on the test split")
    p.add_argument("--no-start", action="store_true", help="only make the job folders (to run them elsewhere)")
    p.set_defaults(func=cmd_retrain)


def cmd_retrain(args) -> int:
    from prefstudio import jobs
    from prefstudio.jobs.retrain import plan_retrain, start_retrain
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        plan = plan_retrain(ws, args.job)
        child = start_retrain(ws, plan, held=args.no_start, score=not args.no_score)
        started = None if args.no_start else jobs.start_next(ws.jobs_dir)
    print(plan.describe(score=not args.no_score))
    print(f"job {child} ({plan.name}): retrain of {plan.parent.name or plan.parent.id} -> {ws.jobs_dir / child}")
    if args.no_start:
        print(f"not started; run it with: python -m prefstudio.jobs {ws.jobs_dir / child} (docs/cluster.md)")
    else:
        state = "running" if started is not None and started.id == child else \
            "queued: it starts when the running job ends"
        print(f"{state}; follow it with: prefstudio jobs {args.workspace} --follow {plan.name}")
    return 0


def _add_settings(p, sweep: bool = False) -> None:
    """The settings flags `train` and `sweep` share."""
    p.add_argument("--config", type=Path, help="TOML file with training settings (flags override it)")
    p.add_argument("--backbone", help="Hugging Face model folder (or a hub name where the hub is reachable)")
    p.add_argument("--sampling", choices=SAMPLINGS)
    p.add_argument("--source", action="append", dest="sources", metavar="NAME", help="train on this source; repeatable")
    p.add_argument("--batch-size", type=int, help="pairs per step (balanced: divisible by the number of sources)")
    p.add_argument("--lr", type=float, help="learning rate, above 0 (default 9e-6)")
    p.add_argument("--epochs", type=float, help="passes over the pairs, above 0; a fraction trains part of one")
    p.add_argument("--max-length", type=int, metavar="TOKENS",
                   help=f"tokens per text (prompt + response), at least {MIN_MAX_LENGTH}; default 512. Longer texts "
                   "are cut (see truncation below); pairs whose two sides become identical carry no signal, and the "
                   "job log says how many")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"])
    if sweep:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE[,VALUE...]",
                       help="any other setting; several values make an axis of the grid; repeatable")
    else:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting; repeatable")
    p.add_argument("--gpus", help="GPUs the job takes, e.g. 0 or 0,1 (several: one process each, DDP)")
    p.add_argument("--strategy", choices=STRATEGIES, help="how the model is spread over the processes: ddp (a copy "
                   "each, the default), fsdp, zero2 or zero3 (sharded; see docs/cluster.md)")
    p.add_argument("--processes", type=int, default=1, help="processes on the CPU (torchrun, gloo), at least 1; default 1")
    p.add_argument("--name", help="a name for the sweep (one word: it goes into the sweep id)" if sweep
                   else "a name for the job")
    p.add_argument("--no-start", action="store_true", help="only make the job folders (to run them elsewhere)")


def _settings(args, sets: dict | None = None, objective: str | None = None) -> dict:
    """The settings the flags, --config and --set give; `sets`, `objective`: a sweep's, instead of args'."""
    import tomllib

    values: dict = {}
    if args.config:
        try:
            values = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PrefstudioError(f"{args.config}: not a readable TOML file ({exc})") from None
    if sets is not None:
        values.update(sets)
        flags_objective = objective
    else:
        flags_objective = args.objective
    for item in args.set if sets is None else []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise PrefstudioError(f"--set {item!r}: expected KEY=VALUE, e.g. --set more_loss=margin")
        values[key.strip()] = setting_value(raw)
    flags = {"backbone": args.backbone, "objective": flags_objective, "sampling": args.sampling,
             "sources": args.sources, "batch_size": args.batch_size, "lr": args.lr, "epochs": args.epochs,
             "max_length": args.max_length, "mixed_precision": args.mixed_precision, "strategy": args.strategy}
    values.update({k: v for k, v in flags.items() if v is not None})
    needed = sampling_needed(values.get("objective"))
    if needed and "sampling" not in values and sets is None:
        values["sampling"] = needed
    return values


def cmd_train(args) -> int:
    from prefstudio import jobs
    from prefstudio.train.checks import check_launch, training_pairs
    from prefstudio.train.config import make_config
    from prefstudio.train.jobs import create_training_job
    from prefstudio.jobs.queue import ACCELERATE_CONFIG
    from prefstudio.train.strategy import check_available
    from prefstudio.workspace import Workspace

    values = _settings(args)
    check_available(str(values.get("strategy", "ddp")))  # before the backbone is read: DeepSpeed or not
    gpus = parse_gpus(args.gpus, "--gpus")
    if args.processes < 1:
        raise PrefstudioError(f"--processes {args.processes}: expected a whole number of at least 1")
    with Workspace.open(args.workspace) as ws:
        from prefstudio.jobs.names import check_new_name

        check_new_name(ws.jobs_dir, args.name)  # a name finds one job, wherever a job id is taken
        counts = training_pairs(ws, values.get("split", "train"))  # the sources a preset's batch depends on
        config = make_config(values, str(args.config) if args.config else "training settings", sources=list(counts))
        # refused here, not once the job has loaded its backbone
        notes = check_launch(ws, config, given=values, counts=counts)
        job = create_training_job(ws, config, gpus=gpus, num_processes=len(gpus) if gpus else args.processes,
                                  name=args.name, held=args.no_start)
        started = None if args.no_start else jobs.start_next(ws.jobs_dir)
    for note in notes:
        print(f"note: {note}")
    print(f"job {job.id}: {config.objective} on {config.backbone} -> {job.folder}")
    if args.no_start:
        own = job.folder / ACCELERATE_CONFIG  # a sharded job's (train/strategy.py)
        how = f"--config_file {own} " if own.exists() else ""
        print(f"not started; run it with: accelerate launch {how}-m prefstudio.jobs {job.folder} (docs/cluster.md)")
    elif started is None:
        print("queued: it starts when the running job ends")
    else:
        print(f"running (pid {started.pid}); follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
    return 0


def cmd_sweep(args) -> int:
    from prefstudio import jobs
    from prefstudio.train import sweep
    from prefstudio.train.strategy import check_available
    from prefstudio.workspace import Workspace

    fixed, varied = sweep.parse_set(args.set)
    fixed = _settings(args, sets=fixed)
    objectives = sweep.parse_objectives(args.objective or str(fixed.pop("objective", "bt")))
    fixed.pop("objective", None)
    if "seed" in fixed or "sweep" in fixed:  # from --config
        raise PrefstudioError(f"{args.config}: a sweep takes seed from --seeds and makes its own sweep id; "
                              "leave seed and sweep out of the file")
    seeds = sweep.parse_seeds(args.seeds)
    gpus = parse_gpus(args.gpus, "--gpus")
    if args.processes < 1:
        raise PrefstudioError(f"--processes {args.processes}: expected a whole number of at least 1")
    plan = sweep.plan_sweep(fixed, objectives, seeds, varied, split=args.split, name=args.name)
    with Workspace.open(args.workspace) as ws:
        configs, notes = sweep.check_sweep(ws, plan, yes=args.yes)  # every run, before any job is made
        for config in configs:
            check_available(config.strategy)
        runs = sweep.make_sweep(ws, plan, configs, gpus=gpus, num_processes=len(gpus) if gpus else args.processes,
                                held=args.no_start)
        started = None if args.no_start else jobs.start_next(ws.jobs_dir)
    for note in notes:
        print(f"note: {note}")
    print(f"sweep {plan.id}: {plan.describe()}")
    width = max(len(run.training.id) for run in runs)
    for run in runs:
        print(f"  {run.training.id:<{width}}  {run.label}  (scored by {run.scoring.id})")
    if args.no_start:
        print("not started; run each training job's folder, then its scoring job's: "
              "python -m prefstudio.jobs FOLDER (docs/cluster.md)")
    else:
        print(("running: " if started else "queued: ") + f"follow them with `prefstudio jobs {args.workspace}`; "
              f"when done, `prefstudio report {args.workspace} sweep:{plan.id}`")
    return 0


def _job_line(s, width: int, indent: str = "") -> str:
    progress = f"{s.step}/{s.total_steps}" if s.total_steps else "-"
    loss = f"{s.loss:.4f}" if s.loss is not None else "-"
    eta = f"eta {s.eta_seconds / 60:.0f} min" if s.eta_seconds else ""
    return f"{indent}{s.id:<{width}}  {s.kind:<5} {s.state:<9} {progress:>11}  loss {loss:<8} {eta}  {s.message}".rstrip()


def _cancel_sweep(sweep_id: str, statuses) -> int:
    """Cancel every job of the sweep that has not ended, the newest first: a running job that ends on the
    way finds no job of the sweep left to start."""
    from prefstudio import jobs

    open_jobs = [s for s in statuses if s.sweep == sweep_id and s.state in ("queued", "held", "running")]
    for s in reversed(open_jobs):
        jobs.cancel(s.folder)
    ended = sum(1 for s in statuses if s.sweep == sweep_id) - len(open_jobs)
    print(f"sweep {sweep_id}: {len(open_jobs)} jobs cancelled ({ended} had ended already); "
          "a running one saves a checkpoint, then stops; `--resume ID` goes on with any of them")
    return 0


def _print_lost_pairs(status, indent: str) -> None:
    """Under a training job whose max_length left pairs identical on both sides (no signal): its truncation line."""
    found = truncation.read_report(status.folder)
    if found and found[0].identical:
        print(f"{indent}{found[0].line(found[1])}")


def cmd_jobs(args) -> int:
    import time

    from prefstudio import jobs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:  # opening brings finished jobs in
        statuses = jobs.list_jobs(ws.jobs_dir)
    by_id = {s.id: s for s in statuses}
    target = args.cancel or args.resume or args.follow
    if target and target not in by_id and any(s.name == target for s in statuses):
        from prefstudio.jobs.names import job_id

        target = job_id(ws.jobs_dir, target, statuses)  # a job's name finds it as its id does
    if args.cancel and target not in by_id and any(s.sweep == target for s in statuses):
        return _cancel_sweep(target, statuses)
    if target and target not in by_id and target.startswith("sw-"):
        sweeps = sorted({s.sweep for s in statuses if s.sweep})
        raise PrefstudioError(f"no job or sweep {target!r} in {args.workspace} (sweeps: {', '.join(sweeps) or 'none'})")
    if target and target not in by_id:
        from prefstudio.jobs.names import job_id

        job_id(ws.jobs_dir, target, statuses, where=str(args.workspace))  # says: no such job, and the jobs
    if args.cancel:
        state = jobs.cancel(by_id[target].folder).state
        print(f"{target}: " + ("cancel asked for; it saves a checkpoint, then stops (`--resume` goes on from it)"
                                    if state == "running" else state))
    elif args.resume:
        print(f"{target}: {jobs.resume(by_id[target].folder).state}")
    elif args.follow:
        folder = by_id[target].folder
        with progress_bar(f"job {args.follow}") as on_progress:
            while (status := jobs.read_status(folder)).state in ("queued", "running") and not status.stuck:
                if on_progress:
                    on_progress(status.step, status.total_steps or None,
                                f"loss {status.loss:.4f}" if status.loss is not None else status.state)
                time.sleep(1)
        if status.state == "done":
            Workspace.open(args.workspace).close()  # opening brings a scoring job's rewards in now
        print(f"{status.id}: {status.state} at step {status.step}/{status.total_steps}"
              + (f"; {status.message}" if status.message else ""))
        if line := truncation.read_line(folder):
            print(line)
        if status.state == "failed":
            print(status.log_tail(), file=sys.stderr)
    else:
        from prefstudio.train.sweep import group_by_sweep, summary

        width = max((len(s.id) for s in statuses), default=0)  # ids differ in length with their objective
        for sweep_id, members in group_by_sweep(statuses):
            if sweep_id is None:
                print(_job_line(members[0], width))
                _print_lost_pairs(members[0], "  ")
                continue
            print(f"sweep {summary(ws.jobs_dir, sweep_id, members)}")
            for s in members:
                print(_job_line(s, width, indent="  "))
                _print_lost_pairs(s, "    ")
    return 0
