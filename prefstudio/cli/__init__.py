"""The prefstudio command line (see main.py); `prefstudio = "prefstudio.cli:main"` in pyproject.toml."""

from prefstudio.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
