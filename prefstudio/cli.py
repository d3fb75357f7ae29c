"""The prefstudio command line.

Every command is a thin wrapper over the core modules; user errors
(PrefstudioError) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
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
                   help="send this fraction of pairs without a split to 'test', chosen by content hash (stable across re-imports)")
    p.add_argument("--format", default="auto", help="input format (see below; default: auto)")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="read FIELD from COLUMN, before the format is detected: prompt, chosen, rejected, source, "
                   "split, or a field of the dataset formats (e.g. history for shp); repeatable")
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
    p.add_argument("--a", help="first annotator: KIND:ID (human:ana, llm:gpt-4o) or an ID")
    p.add_argument("--b", help="second annotator")
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser(
        "export",
        help="write pairs with their margins (Parquet, JSONL, or a Hugging Face dataset folder)",
        description="Write every pair with the margin its label gives, as columns prompt, chosen, rejected, "
        "margin, source (then split, level, flip, pair_id): the layout TRL's RewardTrainer reads. The label "
        "that counts is the latest human label, else the LLM judge's (inconsistent = level 0); its level "
        "becomes a margin through the workspace's [margins] scale.",
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

    p = sub.add_parser("info", help="print a workspace's counts per source and split")
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

    with Workspace.open(args.workspace) as ws:
        reader = open_reader(args.source, format=args.format, mapping=mapping,
                             hf_split=args.hf_split, hf_config=args.hf_config)
        options = {"format": args.format, "map": mapping, "name": args.name, "split": args.split,
                   "test_fraction": args.test_fraction, "hf_split": args.hf_split, "hf_config": args.hf_config}
        with _progress(f"importing {reader.label}", quiet=args.quiet) as on_progress:
            report = import_pairs(ws, reader, source=args.name, split=args.split,
                                  test_fraction=args.test_fraction, on_progress=on_progress, options=options)
    print(report.summary())
    for source, n in report.by_source.items():
        print(f"  {source}: +{n:,}")
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

    return run_app(args.workspace)


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
    return 0


class _progress:
    """A rich progress bar on stderr, driven by the core's (position, total) callbacks."""

    def __init__(self, description: str, quiet: bool = False):
        self.description = description
        self.quiet = quiet or not sys.stderr.isatty()
        self._bar = None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TimeRemainingColumn(), TextColumn("{task.fields[status]}"), transient=True)
        self._bar.start()
        task = self._bar.add_task(self.description, total=None, status="")

        def update(position: int, total: int | None, status: str = "") -> None:
            self._bar.update(task, completed=position, total=total, status=status)

        return update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


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
