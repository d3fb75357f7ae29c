"""Commands that make and watch jobs: train, jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefstudio.cli.common import add_workspace, progress_bar
from prefstudio.errors import PrefstudioError
from prefstudio.settings import MIN_MAX_LENGTH, OBJECTIVES, SAMPLINGS, parse_gpus, sampling_needed


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
  seed group_by_length preset

examples:
  prefstudio train ws --backbone ./pythia-410m --objective more --sampling balanced --batch-size 80
  prefstudio train ws --backbone ./minilm --objective margin --set unlabelled=drop --gpus 0
  prefstudio train ws --config more.toml --gpus 0,1,2,3          # 4 GPUs through accelerate
  prefstudio train ws --config more.toml --no-start               # for a cluster: see docs/cluster.md
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("--config", type=Path, help="TOML file with training settings (flags override it)")
    p.add_argument("--backbone", help="Hugging Face model folder (or a hub name where the hub is reachable)")
    p.add_argument("--objective", choices=OBJECTIVES)
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting; repeatable")
    p.add_argument("--gpus", help="GPUs the job takes, e.g. 0 or 0,1 (several: one process each, DDP)")
    p.add_argument("--processes", type=int, default=1, help="processes on the CPU (torchrun, gloo), at least 1; default 1")
    p.add_argument("--name", help="a name for the job")
    p.add_argument("--no-start", action="store_true", help="only make the job folder (to run it elsewhere)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", help="list jobs (training, scoring); cancel, resume or follow one",
                       description="List the workspace's jobs with their state and progress, or act on one. "
                       "Finished scoring jobs' rewards are brought into the workspace on the way. States: held "
                       "(--no-start: run elsewhere, not in the local queue), queued, running (here, or on another "
                       "host while its heartbeat is fresh), done, damaged (a Parquet file it wrote is cut short), "
                       "failed, cancelled; see docs/cluster.md.")
    add_workspace(p)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--cancel", metavar="ID", help="stop a queued, held or running job (it saves a checkpoint first; "
                     "one on another host at its next heartbeat)")
    act.add_argument("--resume", metavar="ID", help="go on with a failed or cancelled job from its last checkpoint, "
                     "or run a held (--no-start) job here; refused while the job's runner lock is fresh")
    act.add_argument("--follow", metavar="ID", help="print the job's progress until it ends")
    p.set_defaults(func=cmd_jobs)


def _settings(args) -> dict:
    import tomllib

    values: dict = {}
    if args.config:
        try:
            values = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PrefstudioError(f"{args.config}: not a readable TOML file ({exc})") from None
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise PrefstudioError(f"--set {item!r}: expected KEY=VALUE, e.g. --set more_loss=margin")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw  # a bare word: a string
    flags = {"backbone": args.backbone, "objective": args.objective, "sampling": args.sampling,
             "sources": args.sources, "batch_size": args.batch_size, "lr": args.lr, "epochs": args.epochs,
             "max_length": args.max_length, "mixed_precision": args.mixed_precision}
    values.update({k: v for k, v in flags.items() if v is not None})
    needed = sampling_needed(values.get("objective"))
    if needed and "sampling" not in values:
        values["sampling"] = needed
    return values


def cmd_train(args) -> int:
    from prefstudio import jobs
    from prefstudio.train.checks import check_launch, training_pairs
    from prefstudio.train.config import make_config
    from prefstudio.train.jobs import create_training_job
    from prefstudio.workspace import Workspace

    values = _settings(args)
    gpus = parse_gpus(args.gpus, "--gpus")
    if args.processes < 1:
        raise PrefstudioError(f"--processes {args.processes}: expected a whole number of at least 1")
    with Workspace.open(args.workspace) as ws:
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
        print(f"not started; run it with: accelerate launch -m prefstudio.jobs {job.folder}")
    elif started is None:
        print("queued: it starts when the running job ends")
    else:
        print(f"running (pid {started.pid}); follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
    return 0


def cmd_jobs(args) -> int:
    import time

    from prefstudio import jobs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:  # opening brings finished jobs in
        statuses = jobs.list_jobs(ws.jobs_dir)
    by_id = {s.id: s for s in statuses}
    target = args.cancel or args.resume or args.follow
    if target and target not in by_id:
        raise PrefstudioError(f"no job {target!r} in {args.workspace} (jobs: {', '.join(by_id) or 'none'})")
    if args.cancel:
        state = jobs.cancel(by_id[args.cancel].folder).state
        print(f"{args.cancel}: " + ("cancel asked for; it saves a checkpoint, then stops (`--resume` goes on from it)"
                                    if state == "running" else state))
    elif args.resume:
        print(f"{args.resume}: {jobs.resume(by_id[args.resume].folder).state}")
    elif args.follow:
        folder = by_id[args.follow].folder
        with progress_bar(f"job {args.follow}") as on_progress:
            while (status := jobs.read_status(folder)).state in ("queued", "running"):
                if on_progress:
                    on_progress(status.step, status.total_steps or None,
                                f"loss {status.loss:.4f}" if status.loss is not None else status.state)
                time.sleep(1)
        if status.state == "done":
            Workspace.open(args.workspace).close()  # opening brings a scoring job's rewards in now
        print(f"{status.id}: {status.state} at step {status.step}/{status.total_steps}"
              + (f"; {status.message}" if status.message else ""))
        if status.state == "failed":
            print(status.log_tail(), file=sys.stderr)
    else:
        width = max((len(s.id) for s in statuses), default=0)  # ids differ in length with their objective
        for s in statuses:
            progress = f"{s.step}/{s.total_steps}" if s.total_steps else "-"
            loss = f"{s.loss:.4f}" if s.loss is not None else "-"
            eta = f"eta {s.eta_seconds / 60:.0f} min" if s.eta_seconds else ""
            print(f"{s.id:<{width}}  {s.kind:<5} {s.state:<9} {progress:>11}  loss {loss:<8} {eta}  {s.message}".rstrip())
    return 0
