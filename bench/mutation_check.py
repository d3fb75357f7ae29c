"""Does the suite notice a broken method? Break it on purpose, one way at a time, and see.

    .venv/bin/python bench/mutation_check.py [--only NAME,...] [--tests "tests/a.py tests/b.py"]

Each mutation is a small edit to the package that a plausible bug would make (a margin dropped on the
way to the loss, μ_B left in the graph, λ computed but not applied, ...). For each, the package is
copied to a temporary folder, the edit applied, and the method tests run there; a mutation is
*killed* when at least one test fails. Run by hand, never in CI (it runs the tests once per mutation).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (file, text as it is, text as a bug would make it)
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "margin dropped on the way to the batch": (
        "prefstudio/train/data.py", 'float(row.get("margin") or 0.0)', "0.0"),
    "margin dropped in the loss": (
        "prefstudio/train/objectives.py", "return F.softplus(-(d - margins))", "return F.softplus(-d)"),
    "μ_B not detached": (
        "prefstudio/train/objectives.py", "mu = d.detach().mean()", "mu = d.mean()"),
    "adaptive branch reversed": (
        "prefstudio/train/objectives.py", "torch.where(shifted < 0,", "torch.where(shifted > 0,"),
    "λ solved but not applied": (
        "prefstudio/train/loop.py", "return more_loss(sub_losses, lam), lam",
        "return more_loss(sub_losses, torch.full_like(lam, 1 / len(lam))), lam"),
    "MORE's loss normaliser as Sener-Koltun's g/L": (
        "prefstudio/train/loop.py", "shares = (losses + 1) / (losses + 1).sum()", "shares = losses"),
    "momentum ignored": (
        "prefstudio/train/loop.py", "if config.more_momentum < 1 and momentum is not None:", "if False:"),
    "head gradients before the head's dropout": (
        "prefstudio/train/reward_model.py", "return (rewards, features) if return_pooled",
        "return (rewards, self.pooled(input_ids, attention_mask)) if return_pooled"),
    "balanced sub-batches in the wrong source order": (
        "prefstudio/train/data.py", "for batches in per_source for p in batches[step]]",
        "for batches in reversed(per_source) for p in batches[step]]"),
    "batch statistics on length-grouped batches": (
        "prefstudio/train/config.py", "return (not self.uses_batch_statistic) if self.group_by_length is None",
        "return True if self.group_by_length is None"),
    "the longest pairs left out": (
        "prefstudio/train/data.py", "        rng.shuffle(copy)\n", "        rng.shuffle(copy)\n        copy.sort(key=lambda p: p.length)\n"),
    "prompt cut when it fits (the old joiner)": (
        "prefstudio/train/data.py", "prompt[max(0, len(prompt) - room):]", "prompt[len(prompt) - room:]"),
    "two sides of a pair with different prompt cuts": (
        "prefstudio/train/data.py", "room = budget - max((len(r) for r in kept_responses), default=0)\n"
        "    kept_prompt = prompt[max(0, len(prompt) - room):] if room > 0 else []\n"
        "    return kept_prompt, kept_responses",
        "kept = [prompt[max(0, len(prompt) - budget + len(r)):] if budget > len(r) else [] for r in kept_responses]\n"
        "    return kept[0], kept_responses"),
    "a tie counted wrong": (
        "prefstudio/evaluate/metrics.py", "(np.count_nonzero(d > 0) + 0.5 * np.count_nonzero(d == 0)) / d.size", "np.mean(d > 0)"),
    "ECE: a value on a bin edge goes up": (
        "prefstudio/evaluate/metrics.py", 'np.searchsorted(edges[1:-1], values, side="left")',
        'np.searchsorted(edges[1:-1], values, side="right")'),
    "ECE: one bin edge too few": (
        "prefstudio/evaluate/metrics.py", "edges = np.linspace(low, high, n_bins + 1)", "edges = np.linspace(low, high, n_bins)"),
    "ECE: only the (p, 1) entries": (
        "prefstudio/evaluate/metrics.py", "/ (2 * p.size)", "/ p.size"),
}

METHOD_TESTS = ("tests/test_train_data.py tests/test_objectives.py tests/test_metrics.py tests/test_compare.py "
                "tests/test_reward_model.py tests/test_cli.py::test_train_with_the_more_paper_preset_freezes_its_settings")


def run_tests(folder: Path, tests: str) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests.split()],
                          cwd=folder, capture_output=True, text=True)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode == 0, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated substrings of mutation names")
    parser.add_argument("--tests", default=METHOD_TESTS, help="pytest arguments (default: the method tests)")
    args = parser.parse_args()
    chosen = {name: m for name, m in MUTATIONS.items()
              if not args.only or any(part in name for part in args.only.split(","))}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        shutil.copytree(ROOT / "prefstudio", base / "prefstudio")
        shutil.copytree(ROOT / "tests", base / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", base)
        passed, line = run_tests(base, args.tests)
        print(f"{'unchanged code':<50} {'green' if passed else 'RED: fix the suite first'}  ({line})")
        if not passed:
            raise SystemExit(1)
        killed = 0
        for name, (file, before, after) in chosen.items():
            work = Path(tmp) / "work"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base, work)
            text = (work / file).read_text()
            if text.count(before) != 1:
                print(f"{name:<50} STALE: the text to change is not in {file} exactly once")
                continue
            (work / file).write_text(text.replace(before, after))
            start = time.perf_counter()
            survived, line = run_tests(work, args.tests)
            killed += not survived
            verdict = "survived" if survived else "killed"
            print(f"{name:<50} {verdict:<9} {time.perf_counter() - start:5.0f} s  ({line})")
        print(f"{killed} of {len(chosen)} mutations killed")


if __name__ == "__main__":
    main()
