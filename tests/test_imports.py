"""Import hygiene: the terminal app sits on top of the core, and the light commands stay light.

Textual belongs to prefstudio.tui alone, so the core can run (jobs, scripts,
a cluster node) without a terminal UI. torch and transformers take seconds to
import: `prefstudio --help`, `jobs`, `info` and the app's start must not pay
for them (they are imported where a model is trained or scored).
"""

import ast
import json
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "prefstudio"
HEAVY = ("torch", "transformers")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function ('from . import x' resolved)."""
    names = set()
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1]  # a module's package; an __init__'s is its own
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def outside_the_app() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if "tui" not in path.relative_to(PACKAGE).parts]


def test_nothing_outside_the_app_imports_textual():
    offenders = {str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "textual")
                 for path in outside_the_app()}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_only_prefstudio_open_imports_the_app():
    importers = {str(path.relative_to(ROOT)) for path in outside_the_app()
                 if any(m == "prefstudio.tui" or m.startswith("prefstudio.tui.") for m in imported_modules(path))}
    assert importers == {"prefstudio/cli/workspace.py"}  # cmd_open, inside the function


def test_the_import_contract_covers_every_module_but_the_app():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = config["contracts"]
    top_level = {f"prefstudio.{p.stem}" for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert set(contract["source_modules"]) == top_level - {"prefstudio.tui"}
    assert set(contract["forbidden_modules"]) == {"prefstudio.tui", "textual"}


def test_the_import_contract_is_kept():
    lint_imports = shutil.which("lint-imports") or shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def heavy_modules_after(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported once `code` ran."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def workspace(tmp_path):
    from prefstudio.workspace import Workspace

    Workspace.init(tmp_path / "ws").close()
    return tmp_path / "ws"


@pytest.mark.parametrize("argv", [["--help"], ["jobs", "{ws}"], ["info", "{ws}"]])
def test_light_commands_import_no_torch(workspace, argv):
    argv = [arg.format(ws=workspace) for arg in argv]
    assert heavy_modules_after(f"""
        import contextlib, io
        from prefstudio.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main({argv!r})
            except SystemExit as exit:  # --help
                code = exit.code
        assert code == 0, code
    """) == []


def test_the_app_starts_without_torch(workspace):
    assert heavy_modules_after(f"""
        import asyncio
        from prefstudio.tui.app import PrefstudioApp
        from prefstudio.workspace import Workspace

        async def start():
            with Workspace.open({str(workspace)!r}) as ws:
                app = PrefstudioApp(ws)
                async with app.run_test() as pilot:
                    await pilot.pause(0.5)

        asyncio.run(start())
    """) == []
