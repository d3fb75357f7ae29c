"""Commands on a workspace and its pairs: init, import, demo, open, info, export, backup, restore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefstudio.cli.common import add_workspace, progress_bar
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
of such files (read file by file, the split from each file's name), a dataset saved
with datasets' save_to_disk, or hf:NAME for any Hugging Face dataset that
`datasets.load_dataset(NAME)` can load. Text fields must be text: a missing value
(null, NaN, an empty CSV cell) or a number skips the row; broken CSV quoting, a
column named twice or a UTF-16 file refuses the file.
"""


def add_parsers(sub) -> None:
    p = sub.add_parser("init", help="make a new workspace folder", description=(
        "Make a workspace: a folder with workspace.duckdb (pairs, annotations, jobs, predictions), "
        "workspace.toml (settings) and jobs/ (one folder per training or evaluation job)."))
    add_workspace(p)
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
  prefstudio import ws pairs.jsonl --test-fraction 0.1 --resplit    # pairs imported before without a test split
  prefstudio import ws ultrafeedback.parquet --margin-from score_chosen,score_rejected:diff
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_workspace(p)
    p.add_argument("source", nargs="+", help="file, folder, saved dataset, or hf:NAME; or several files (or a "
                   "quoted glob such as 'data/train-*.jsonl'), read one after another as one import")
    p.add_argument("--name", help="source name for these pairs (default: a 'source' column; else the dataset's name "
                   "for webgpt, summarize, shp, chatbot-arena, oasst1 and hf:NAME; else the file's name, or its folder's when the file is called "
                   "train/test/validation, as in helpful-base/train.jsonl.gz)")
    p.add_argument("--split", help="split for these pairs, e.g. train or test (default: a 'split' column or the "
                   "Hugging Face split's name; else train)")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="send this fraction of pairs without a split to 'test', chosen by a hash of the prompt: a "
                   "prompt's pairs all land in one split, the same way on every re-import")
    p.add_argument("--resplit", action="store_true",
                   help="with --test-fraction: draw the pairs already in the workspace (those this import has "
                   "without a split of their own) again, between train and test only, and say how many moved; "
                   "without it they keep the split they have")
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
    add_annotator(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("open", help="open a workspace in the terminal app", description=(
        "Open the terminal app on a workspace: browse and search pairs; keys are shown in the footer."))
    add_workspace(p)
    add_annotator(p)
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("info", help="print a workspace's counts per source and split, and prompts shared by splits")
    add_workspace(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "export",
        help="write pairs with their margins (Parquet, JSONL, or a Hugging Face dataset folder)",
        description="Write every pair with the margin its label gives, as columns prompt, chosen, rejected, "
        "margin, source (then split, level, level_name such as '3 · Distinctly superior', flip, pair_id, label_by): "
        "the layout TRL's RewardTrainer reads. The "
        "label that counts is the latest human label, else the LLM judge's (inconsistent = level 0), else the "
        "margin that came with the data (AlpacaEval's preference, SHP's score ratio, --margin-from); its level "
        "becomes a margin through the workspace's [margins] scale (a data label's own value with [margins] "
        "data = \"value\").",
        epilog="OUT ending in .parquet or .jsonl writes that file; any other path becomes a dataset folder "
        "(datasets' save_to_disk, one split per workspace split). Nothing is overwritten.",
    )
    add_workspace(p)
    p.add_argument("out", type=Path, help="output file or folder")
    p.add_argument("--format", default="auto", choices=["auto", "parquet", "jsonl", "hf"], help="default: from OUT")
    p.add_argument("--flips", default="keep", choices=["keep", "swap", "drop"],
                   help="pairs whose label says rejected is better: keep with a negative margin (default), swap chosen "
                   "and rejected, or drop")
    p.add_argument("--unlabelled", default="zero", choices=["zero", "drop"], help="pairs without a label: margin 0 (default) or drop")
    p.add_argument("--split", help="only this split")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("backup", help="write a backup of a workspace's database", description=(
        "Write a consistent copy of the workspace's database (DuckDB's EXPORT DATABASE, as Parquet, with "
        "backup.json) into a new folder under WORKSPACE/backups/ (or --out). prefstudio also backs up before "
        "each schema migration and, unless [backup] daily = false in workspace.toml, on the first open of a "
        "day; the newest [backup] keep daily backups (default 7) are kept."))
    add_workspace(p)
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder to write the backup folder into (default: WORKSPACE/backups)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="replace a workspace's database with a backup", description=(
        "Replace the workspace's database with a backup (default: the newest in WORKSPACE/backups). The "
        "backup is imported into a fresh file and checked first; the database it replaces is kept beside it as "
        "workspace.duckdb.before-restore-TIME, never deleted. Refused while the workspace is open elsewhere."))
    add_workspace(p)
    p.add_argument("backup", nargs="?", help="a backup folder, or its name in WORKSPACE/backups (default: the newest)")
    p.set_defaults(func=cmd_restore)


def add_annotator(p) -> None:
    p.add_argument("--annotator", metavar="NAME",
                   help="whose hand labels these are (default: annotation.annotator in workspace.toml, else the "
                   "login name); `a` on the label screen changes it")


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
    from prefstudio.ingest import DiskFull, import_pairs, reclaim_space
    from prefstudio.workspace import Workspace

    from prefstudio.importers.margins import parse_levels

    levels = parse_levels(args.margin_levels) if args.margin_levels else None
    try:
        with Workspace.open(args.workspace) as ws:
            source = args.source[0] if len(args.source) == 1 else args.source
            reader = open_reader(source, format=args.format, mapping=mapping,
                                 hf_split=args.hf_split, hf_config=args.hf_config, winner=args.winner,
                                 winner_values=args.winner_values, ties=args.ties, margin_from=args.margin_from,
                                 margin_levels=levels, margins=ws.config.margins, keep_order=args.keep_order)
            options = {"format": args.format, "map": mapping, "name": args.name, "split": args.split,
                       "test_fraction": args.test_fraction, "split_by": args.split_by, "resplit": args.resplit,
                       "hf_split": args.hf_split,
                       "hf_config": args.hf_config, "winner": args.winner, "winner_values": args.winner_values,
                       "ties": args.ties, "margin_from": args.margin_from, "margin_levels": levels}
            with progress_bar(f"importing {reader.label}", quiet=args.quiet) as on_progress:
                report = import_pairs(ws, reader, source=args.name, split=args.split,
                                      test_fraction=args.test_fraction, split_by=args.split_by,
                                      resplit=args.resplit, on_progress=on_progress, options=options)
    except DiskFull:
        reclaim_space(args.workspace)  # the rolled-back import's growth, once its connection is closed
        raise
    print(report.summary())
    for source, n in report.by_source.items():
        print(f"  {source}: +{n:,}")
    if report.by_split:
        print(f"  {report.splits_line()}")
    for note in report.split_notes():
        print(f"  {note}")
    for line in report.labels_lines():
        print(f"  {line}")
    for reason, n in report.skip_reasons.most_common():
        print(f"  skipped {n:,}: {reason}")
    for skip in report.skip_examples:
        print(f"  {report.place(skip)}: {skip.reason}", file=sys.stderr)
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

    return run_app(args.workspace, annotator=args.annotator)


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


def cmd_export(args) -> int:
    from prefstudio.export import export_pairs
    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace) as ws:
        n, fmt = export_pairs(ws, args.out, fmt=args.format, flips=args.flips, unlabelled=args.unlabelled, split=args.split)
    print(f"wrote {n:,} pairs to {args.out} ({fmt})")
    return 0


def cmd_backup(args) -> int:
    import time

    from prefstudio.workspace import Workspace

    with Workspace.open(args.workspace, daily_backup=False) as ws:
        started = time.monotonic()
        made = ws.back_up(args.out)
        took = time.monotonic() - started
    print(f"wrote backup {made.folder} ({made.pairs:,} pairs, {made.annotations:,} annotations, "
          f"{made.size_bytes() / 1e6:.1f} MB, {took:.1f} s); restore it with "
          f"`prefstudio restore {args.workspace} {made.folder}`")
    return 0


def cmd_restore(args) -> int:
    from prefstudio.workspace import restore

    chosen, aside = restore(args.workspace, args.backup)
    print(f"restored {args.workspace} from backup {chosen.folder.name} ({chosen.when}: {chosen.pairs:,} pairs, "
          f"{chosen.annotations:,} annotations)")
    if aside is not None:
        print(f"the database it replaced is kept as {aside}")
    return 0
