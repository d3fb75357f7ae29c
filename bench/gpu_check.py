"""The GPU check: training at the papers' sizes through the product's own job path, against TRL.

    bench/gpu_check.sh [--tiny] [--steps N] [--only pythia-1.4b,llama-3-8b] [--budget-s 450] [--json PATH]

In bf16 on a GPU; the tiny run is fp32 (a CPU only emulates bf16). A GPU is lent only now and then, and then for minutes, so this runs in one go with nothing to download:
the models are random weights under real configs (Pythia-1.4B, MORE's first backbone, trained whole;
Llama-3-8B, a 7-8B chat backbone, trained with LoRA r16), the tokenizer is trained here, and the data is a
generated workspace of pairs whose lengths differ by source, as real mixtures' do. Every prefstudio run is a
real job (create_training_job, then `python -m prefstudio.jobs JOB`), read back from its metrics.jsonl; TRL's
RewardTrainer gets the same model folder, the same texts and the same batch, at its best settings on this data
(length-grouped batches, dropout off). No pair is longer than max_length (TRL drops such pairs where
prefstudio truncates them), so both train on the same pairs. Timing is steady state: from the end of the first step to the end of
the last, on both sides.

Rows, per model and per gradient checkpointing (off, on):
- bt (grouped): bt's default batches (multitask, length-grouped), against TRL's grouped ones: best against best;
- bt, margin, more: one set of batches, MORE's (balanced, random), so "MORE over bt" is MORE's own cost;
- trl: RewardTrainer, length-grouped, the same checkpointing and LoRA;
- bt, 4-bit base: QLoRA on the big model, with checkpointing, where bitsandbytes is installed (a GPU only).

--tiny (the default where there is no CUDA) runs the same matrix with tiny configs on the CPU, each job in
this process (imports once): tests/test_gpu_check.py runs it so the check is known to work before a GPU
comes. On a GPU each run has its own process, so its peak memory is its own; --budget-s skips the runs that
would overrun (said in the table) rather than be cut off.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START = time.perf_counter()  # the budget counts the imports too
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from train_bench import reward_trainer, steady_rate  # noqa: E402  (bench/ is not a package)

# Real configs, as published with the weights (config.json of EleutherAI/pythia-1.4b, meta-llama/Meta-Llama-3-8B).
PYTHIA_1_4B = dict(vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=8192, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
                   use_parallel_residual=True, layer_norm_eps=1e-5, hidden_act="gelu", tie_word_embeddings=False)
LLAMA_3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                  rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=256)

SOURCES = {  # words in the prompt and in each response: code answers run long, safety answers short
    "chat": ((8, 60), (20, 160)),
    "code": ((20, 120), (80, 360)),
    "math": ((10, 50), (30, 220)),
    "safety": ((5, 30), (10, 80)),
}


@dataclass
class Model:
    name: str
    config_class: str
    real: dict
    lora_targets: list[str] | None  # None: trained whole
    batch: int  # pairs per step, a multiple of the 4 sources
    max_length: int
    steps: int
    tiny_extra: dict = field(default_factory=dict)
    checkpointing: tuple[bool, ...] = (False, True)  # in this order: what matters most first, for the budget


MODELS = [
    Model("pythia-1.4b", "GPTNeoXConfig", PYTHIA_1_4B, None, batch=16, max_length=512, steps=24),
    Model("llama-3-8b", "LlamaConfig", LLAMA_3_8B,
          ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
          batch=8, max_length=512, steps=20, tiny_extra={"num_key_value_heads": 1}, checkpointing=(True, False)),
]
LORA_RANK = 16
RUNS = [  # (label, objective, sampling, length-grouped, 4-bit base); "trl" is TRL's RewardTrainer
    ("bt (grouped)", "bt", "multitask", True, False),
    ("bt", "bt", "balanced", False, False),
    ("margin", "margin", "balanced", False, False),
    ("more", "more", "balanced", False, False),
    ("trl", None, None, True, False),
]
QLORA_RUN = ("bt, 4-bit base", "bt", "balanced", False, True)  # QLoRA: a LoRA model, with CUDA and bitsandbytes


def runs_for(model: Model, checkpointing: bool, tiny: bool) -> list[tuple]:
    """The rows of a model at one checkpointing; QLoRA once, with checkpointing, where it can run."""
    import importlib.util

    qlora = (model.lora_targets and checkpointing and not tiny and importlib.util.find_spec("bitsandbytes"))
    return RUNS + ([QLORA_RUN] if qlora else [])


# -- data and models, made here ---------------------------------------------------------------------------------

def words(n_syllables: int = 3) -> list[str]:
    """A fixed vocabulary of made-up words, so texts tokenise to about one token a word."""
    syllables = ["ka", "lo", "mi", "ten", "ru", "sa", "vo", "pel", "di", "nor", "che", "fu"]
    rng = random.Random(1)
    return sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, n_syllables))) for _ in range(900)})


def generated_pairs(n_per_source: int, scale: float, seed: int = 0):
    """RawPairs in four sources of their own lengths (scaled by `scale`), each with a data margin label."""
    from prefstudio.ingest import DataLabel, RawPair

    rng, vocab = random.Random(seed), words()

    def text(span: tuple[int, int]) -> str:
        return " ".join(rng.choices(vocab, k=max(1, int(rng.randint(*span) * scale))))

    pairs = []
    for source, (prompt_span, response_span) in SOURCES.items():
        for i in range(n_per_source):
            level = rng.randint(1, 3)
            pairs.append(RawPair(text(prompt_span), text(response_span), text(response_span), f"{source} #{i + 1}",
                                 source=source, split="train",
                                 label=DataLabel("gpu-check/grade", value=None, level=level)))
    return pairs


def make_workspace(folder: Path, n_per_source: int, scale: float) -> Path:
    from prefstudio.ingest import RecordsReader, import_pairs
    from prefstudio.workspace import Workspace

    with Workspace.init(folder, name="gpu-check") as ws:
        import_pairs(ws, RecordsReader(label="gpu-check", format="generated", default_source="chat",
                                       records=generated_pairs(n_per_source, scale)))
    return folder


def local_tokenizer(vocab_size: int):
    """A byte-level BPE trained here on the made-up words, with a pad token apart from EOS (as tests/tiny_models.py
    makes its own): no tokenizer is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(words()[i:i + 40]) + "\n\nAssistant: " for i in range(0, 900, 20)] * 5
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size,
                                                        special_tokens=["[PAD]", "<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")


def make_backbone(model: Model, folder: Path, tiny: bool, device: str) -> Path:
    """Random weights under the model's config (bf16 on a GPU, as such checkpoints ship), saved with the local
    tokenizer: a backbone folder like any downloaded one."""
    import torch
    import transformers

    tokenizer = local_tokenizer(400 if tiny else 2000)
    values = {**model.real, **(TINY | model.tiny_extra | {"vocab_size": tokenizer.vocab_size} if tiny else {})}
    config = getattr(transformers, model.config_class)(**values, pad_token_id=tokenizer.pad_token_id,
                                                       eos_token_id=tokenizer.eos_token_id,
                                                       bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        backbone = transformers.AutoModel.from_config(config, dtype=torch.float32 if tiny else torch.bfloat16)
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del backbone
    if device == "cuda":
        torch.cuda.empty_cache()  # else this process keeps 15 GB of the GPU from the jobs
    return folder


def warn_if_cut(job_dir: Path) -> None:
    """The data is sized so that no pair is cut: TRL drops a pair longer than max_length where prefstudio
    truncates it, and the two must train on the same pairs."""
    from prefstudio.train.truncation import read_report

    report, max_length = read_report(job_dir)
    if report.prompt_cut or report.response_cut:
        print(f"warning: max_length {max_length} cut {report.prompt_cut + report.response_cut} pairs, which TRL "
              "drops: the two train on different pairs", flush=True)


def mean_tokens_per_pair(backbone: Path, job_dir: Path, max_length: int) -> float:
    """Real (unpadded) tokens of a pair, both sides, as the job encodes them: pairs/s times this is tokens/s."""
    import pyarrow.parquet as pq

    from prefstudio.jobs.layout import PAIRS
    from prefstudio.train.data import encode_pairs
    from prefstudio.train.reward_model import load_tokenizer

    rows = [r for r in pq.read_table(job_dir / PAIRS).to_pylist() if r["split"] == "train"]
    pairs = encode_pairs(load_tokenizer(backbone), rows, max_length)
    return sum(len(p.chosen) + len(p.rejected) for p in pairs) / len(pairs)


# -- one run ----------------------------------------------------------------------------------------------------

@dataclass
class Result:
    model: str
    checkpointing: bool
    run: str
    steps: int = 0
    pairs_per_s: float = 0.0
    tokens_per_s: float = 0.0
    peak_mb: float = 0.0
    seconds: float = 0.0
    lora: bool = False
    skipped: str = ""


def job_values(model: Model, backbone: Path, objective: str, sampling: str, grouped: bool, checkpointing: bool,
               n_pairs: int, steps: int, bf16: bool, four_bit: bool = False) -> dict:
    values = {"backbone": str(backbone), "objective": objective, "sampling": sampling, "group_by_length": grouped,
              "batch_size": model.batch, "max_length": model.max_length, "lr": 1e-5, "warmup_ratio": 0.0,
              "epochs": steps * model.batch / n_pairs, "mixed_precision": "bf16" if bf16 else "no",
              "gradient_checkpointing": checkpointing, "seed": 0}
    if model.lora_targets:
        values |= {"lora_rank": LORA_RANK, "lora_targets": model.lora_targets, "load_in_4bit": four_bit}
    return values


def run_job(ws_path: Path, values: dict, name: str, in_process: bool) -> tuple[Path, float]:
    """A training job made and run as `prefstudio train` would; returns (its folder, peak MB: the GPU's where there
    is one, else the process's max RSS)."""
    import torch

    from prefstudio.train.config import make_config
    from prefstudio.train.jobs import create_training_job
    from prefstudio.workspace import Workspace

    with Workspace.open(ws_path, daily_backup=False) as ws:
        folder = create_training_job(ws, make_config(values), name=name, held=True).folder
    if in_process:
        import resource

        from prefstudio.jobs.process import run_job as job_body

        code = job_body(folder)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        with open(folder / "gpu_check.log", "w") as log:
            child = subprocess.Popen([sys.executable, "-m", "prefstudio.jobs", str(folder)], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = code = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024
    if code != 0:
        status_file = json.loads((folder / "status.json").read_text()) if (folder / "status.json").exists() else {}
        raise SystemExit(f"{name}: the job failed ({status_file.get('message', 'see its log')}); folder {folder}")
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    if torch.cuda.is_available():
        peak = max(step.get("gpu_mem_gb", 0) for step in steps) * 1024
    return folder, peak


def trl_run(spec: dict) -> dict:
    """TRL's RewardTrainer on the same backbone folder and texts: steady pairs/s and peak memory."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec["backbone"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["backbone"], num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = None
    if spec["lora_targets"]:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.05,
                                 target_modules=spec["lora_targets"], modules_to_save=["score"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    step_ends: list[float] = []
    trainer = reward_trainer(model, tokenizer, spec["chosen"], spec["rejected"], output_dir=Path(spec["work"]),
                             batch=spec["batch"], steps=spec["steps"], max_length=spec["max_length"],
                             bf16=spec["bf16"], grouped=True, checkpointing=spec["checkpointing"],
                             peft_config=peft_config, on_step_end=lambda _step: step_ends.append(time.perf_counter()))
    trainer.train()
    out = {"pairs_per_s": steady_rate(step_ends, spec["batch"]), "steps": len(step_ends)}
    if torch.cuda.is_available():
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def trl_texts(job_dir: Path) -> tuple[list[str], list[str]]:
    """The texts the job trained on, as its template renders them."""
    import pyarrow.parquet as pq

    from prefstudio.jobs.layout import PAIRS
    from prefstudio.train.data import DEFAULT_TEMPLATE

    rows = [r for r in pq.read_table(job_dir / PAIRS).to_pylist() if r["split"] == "train"]

    def text(prompt: str, response: str) -> str:
        return DEFAULT_TEMPLATE.replace("{prompt}", prompt).replace("{response}", response)

    return [text(r["prompt"], r["chosen"]) for r in rows], [text(r["prompt"], r["rejected"]) for r in rows]


def run_trl(spec: dict, in_process: bool) -> tuple[dict, float]:
    """(TRL's result, its peak MB): in its own process on a GPU, where its memory must be its own."""
    import resource

    if in_process:
        out = trl_run(spec)
        return out, out.get("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    spec_file = Path(spec["work"]) / "trl_spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec))
    with open(spec_file.with_suffix(".log"), "w") as log:
        child = subprocess.Popen([sys.executable, __file__, "--trl-spec", str(spec_file)], stdout=subprocess.PIPE,
                                 stderr=log, text=True, cwd=ROOT)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"TRL failed; its log: {spec_file.with_suffix('.log')}")
    out = json.loads(stdout.strip().splitlines()[-1])
    return out, out.get("peak_mb", usage.ru_maxrss / 1024)


# -- the matrix -------------------------------------------------------------------------------------------------

def check(args) -> list[Result]:
    import shutil

    import torch

    tiny = args.tiny
    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    bf16 = device == "cuda"  # bf16 on a CPU is emulated, slower than fp32: the tiny run proves the path, not speed
    if tiny:
        torch.set_num_threads(1)  # tiny matrices gain nothing from threads, and lose much on a shared machine
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-", dir=_scratch(tiny)))
    started = START
    models = [m for m in MODELS if not args.only or m.name in args.only.split(",")]
    n_per_source = 64 if tiny else 400
    ws_path = make_workspace(work / "workspace", n_per_source, scale=0.12 if tiny else 1.0)
    n_pairs = n_per_source * len(SOURCES)
    results: list[Result] = []
    for model in models:
        made = time.perf_counter()
        backbone = make_backbone(model, work / model.name, tiny, device)
        max_length = 128 if tiny else model.max_length
        model = Model(**{**model.__dict__, "max_length": max_length, "steps": args.steps or (6 if tiny else model.steps),
                         "batch": 8 if tiny else model.batch})
        print(f"{model.name}: backbone made in {time.perf_counter() - made:.0f} s", flush=True)
        tokens_per_pair, last_job = None, None  # TRL reads the texts out of the last job's snapshot
        for checkpointing in model.checkpointing:
            for label, objective, sampling, grouped, four_bit in runs_for(model, checkpointing, tiny):
                result = Result(model.name, checkpointing, label)
                results.append(result)
                per_run = [r.seconds for r in results if r.model == model.name and r.seconds]
                estimate = max(per_run) if per_run else 0.0
                if args.budget_s and time.perf_counter() - started + estimate > args.budget_s:
                    result.skipped = f"budget: {time.perf_counter() - started:.0f} s gone"
                    continue
                if objective is None and last_job is None:
                    result.skipped = "no job ran to take its texts from"
                    continue
                run_started = time.perf_counter()
                name = f"gpu-check {model.name} {label} ckpt={'on' if checkpointing else 'off'}"
                if objective is None:
                    chosen, rejected = trl_texts(last_job)
                    out, peak = run_trl({"backbone": str(backbone), "chosen": chosen, "rejected": rejected,
                                         "batch": model.batch, "steps": model.steps, "max_length": max_length,
                                         "bf16": bf16, "checkpointing": checkpointing,
                                         "lora_targets": model.lora_targets, "work": str(work / "trl")}, tiny)
                    result.steps, result.pairs_per_s, result.lora = out["steps"], out["pairs_per_s"], \
                        bool(model.lora_targets)
                else:
                    values = job_values(model, backbone, objective, sampling, grouped, checkpointing, n_pairs,
                                        model.steps, bf16, four_bit)
                    last_job, peak = run_job(ws_path, values, name, in_process=tiny)
                    steps = [json.loads(line) for line in (last_job / "metrics.jsonl").read_text().splitlines()]
                    result.steps = len(steps)
                    result.pairs_per_s = steady_rate([s["time"] for s in steps], model.batch)
                    result.lora = any(last_job.rglob("adapter_config.json"))
                    if tokens_per_pair is None:
                        tokens_per_pair = mean_tokens_per_pair(backbone, last_job, max_length)
                        warn_if_cut(last_job)
                    for checkpoint in last_job.glob("checkpoint*"):  # an 8B model is 16 GB a checkpoint
                        shutil.rmtree(checkpoint, ignore_errors=True)
                result.tokens_per_s = result.pairs_per_s * tokens_per_pair
                result.peak_mb = peak
                result.seconds = time.perf_counter() - run_started
                print(f"  {name}: {result.seconds:.0f} s", flush=True)
        shutil.rmtree(backbone, ignore_errors=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"elapsed {time.perf_counter() - started:.0f} s on {_device_name(device)}")
    return results


def _scratch(tiny: bool) -> str | None:
    """Memory-backed /dev/shm for the real configs where it has room: the 8B's base (15 GB) and one job's merged
    checkpoint (15 GB more, removed after each run) are written and read there in seconds."""
    shm = Path("/dev/shm")
    if not tiny and shm.is_dir():
        free = os.statvfs(shm)
        if free.f_bavail * free.f_frsize > 40 * 2**30:
            return str(shm)
    return None


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else "CPU (tiny configs)"


def table(results: list[Result]) -> list[str]:
    """The figures, and each row against TRL's row of the same model and checkpointing: pairs/s and peak memory
    as ratios; MORE's step time over bt on the same batches."""
    def find(r: Result, run: str) -> Result | None:
        return next((o for o in results if (o.model, o.checkpointing, o.run) == (r.model, r.checkpointing, run)
                     and not o.skipped), None)

    lines = ["| model | ckpt | run | steps | pairs/s | tokens/s | peak MB | pairs/s vs TRL | memory vs TRL "
             "| MORE over bt |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        what = f"{r.run}{' (LoRA r16)' if r.lora else ''}"
        if r.skipped:
            lines.append(f"| {r.model} | {'on' if r.checkpointing else 'off'} | {what} | skipped ({r.skipped}) "
                         "| | | | | | |")
            continue
        trl, bt = find(r, "trl"), find(r, "bt")
        speed = f"{r.pairs_per_s / trl.pairs_per_s:.2f}x" if trl else "-"
        memory = f"{r.peak_mb / trl.peak_mb:.2f}x" if trl else "-"
        overhead = f"{bt.pairs_per_s / r.pairs_per_s - 1:+.1%}" if r.run == "more" and bt else ""
        lines.append(f"| {r.model} | {'on' if r.checkpointing else 'off'} | {what} | {r.steps} | {r.pairs_per_s:.2f} "
                     f"| {r.tokens_per_s:.0f} | {r.peak_mb:.0f} | {speed} | {memory} | {overhead} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (the default without CUDA)")
    parser.add_argument("--steps", type=int, help="steps per run (default: 24 for Pythia, 20 for Llama, 6 tiny)")
    parser.add_argument("--only", help="comma-separated models: " + ", ".join(m.name for m in MODELS))
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="skip the runs that would end past this many seconds (0: run all)")
    parser.add_argument("--work", help="keep the models, workspace and jobs in this folder")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--trl-spec", help=argparse.SUPPRESS)  # one TRL run, in this process
    args = parser.parse_args()
    if args.trl_spec:
        print(json.dumps(trl_run(json.loads(Path(args.trl_spec).read_text()))))
        return
    import torch

    if not torch.cuda.is_available() and not args.tiny:
        print("no CUDA device: running the tiny configs on the CPU (--tiny)", flush=True)
        args.tiny = True
    results = check(args)
    print("\n".join(table(results)))
    if args.tiny:
        print("tiny: every run shares this process, so peak MB is its max RSS so far; the figures prove the path, "
              "not the speed")
    lora_asked = [r for r in results if r.run != "trl" and not r.skipped and r.model == "llama-3-8b"]
    if lora_asked and not any(r.lora for r in lora_asked):
        print("note: lora_rank=16 was set, but the jobs saved no adapter: this prefstudio trains every weight")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1))


if __name__ == "__main__":
    main()
