"""The prefstudio command line: the parser, made of each command group's parsers, and main().

Every command is a thin wrapper over the core modules; user errors
(PrefstudioError), and DuckDB meeting a damaged database file, become one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from prefstudio import __version__
from prefstudio.cli import bon, evaluation, labelling, training, workspace
from prefstudio.errors import PrefstudioError


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
    workspace.add_parsers(sub)
    labelling.add_parsers(sub)
    training.add_parsers(sub)
    evaluation.add_parsers(sub)
    bon.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that left (`| head`) shows here, inside the guard, not at exit
        return status
    except PrefstudioError as exc:
        print(f"prefstudio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prefstudio: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `prefstudio info ws | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        damage = _damage(args, exc)
        if damage is None:
            raise
        print(f"prefstudio: error: {damage}", file=sys.stderr)
        return 2


def _damage(args: argparse.Namespace, exc: Exception) -> PrefstudioError | None:
    """The one line for DuckDB meeting a damaged block after the workspace opened (a file too big to read whole)."""
    workspace = getattr(args, "workspace", None)
    if workspace is None or type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
        return None
    from prefstudio.workspace import damage_error

    return damage_error(workspace, exc)
