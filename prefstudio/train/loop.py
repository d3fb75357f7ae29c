"""The training loop: one function a reader can hold in their head.

It reads a job folder's snapshot of pairs (never the workspace database,
docs/methods.md, "Jobs and the workspace database"), trains a reward model with one of the objectives, and writes
its metrics and checkpoints into the job folder (prefstudio/jobs/layout.py). Accelerate places it on the
CPU, one GPU or many (`accelerate launch`): every process takes every n-th
batch, and MORE's per-source head gradients are averaged across processes
before λ is solved, so all of them use the same λ.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import torch

from prefstudio.errors import PrefstudioError
from prefstudio.jobs.layout import METRICS, PAIRS, checkpoint_dir, latest_checkpoint
from prefstudio.jobs.metrics_log import COSINE, IgnoredSources, keep_steps_up_to
from prefstudio.jobs.progress import Progress
from prefstudio.train import strategy
from prefstudio.train.checkpoints import load_trainer_state, save_checkpoint
from prefstudio.train.config import TrainConfig
from prefstudio.train.data import collate, collate_packed, encode_pairs, padding_free_refusal, plan_batches
from prefstudio.train.min_norm import cosine_matrix, min_norm_weights, upper_triangle
from prefstudio.train.objectives import head_gradients, more_loss, pair_losses
from prefstudio.train.reward_model import RewardModel, load_tokenizer
from prefstudio.train.truncation import TruncationReport


def load_training_rows(job_dir: Path, config: TrainConfig) -> list[dict]:
    table = pq.read_table(job_dir / PAIRS)
    rows = [r for r in table.to_pylist() if r["split"] == config.split]
    if config.sources:
        rows = [r for r in rows if r["source"] in config.sources]
    if config.uses_margins and config.unlabelled == "drop":
        rows = [r for r in rows if r["level"] is not None]
    if not rows:
        raise PrefstudioError(f"{job_dir / PAIRS}: no {config.split!r} pairs to train on with these settings")
    return rows


def train(job_dir: Path, config: TrainConfig, *, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> Path:
    """Train (or resume) the job in `job_dir`; returns the final checkpoint folder."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from transformers import get_scheduler

    # split_batches: each process plans its own batches, so the schedule steps once per optimiser step; without it
    # Accelerate steps it once per process, and on N processes the learning rate decayed N times too fast.
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              cpu=not torch.cuda.is_available())  # else torchrun's CPU ranks each run alone
    torch.manual_seed(config.seed)
    resume_from = latest_checkpoint(job_dir)
    source_path = resume_from or Path(config.backbone)

    # -- data ----------------------------------------------------------------------------------
    refusal = padding_free_refusal(config)  # checked at launch too; a job made elsewhere (--no-start) is checked here
    if refusal:
        raise PrefstudioError(refusal)
    tokenizer = load_tokenizer(source_path)
    if config.render == "chat":  # the template frozen into the job at launch, saved with every checkpoint
        tokenizer.chat_template = config.chat_template
    rows = load_training_rows(job_dir, config)
    pairs = encode_pairs(tokenizer, rows, config.max_length, config.template, render=config.render)
    if accelerator.is_main_process:
        report = TruncationReport.of(pairs)
        report.write(job_dir, config.max_length)
        print(report.line(config.max_length), flush=True)  # into the job's log
    sources = sorted(config.sources or {r["source"] for r in rows})
    batches = []
    for epoch in range(math.ceil(config.epochs)):
        batches += plan_batches(pairs, sampling=config.sampling, batch_size=config.batch_size,
                                seed=config.seed + epoch, sources=sources, quota=config.quota,
                                group_by_length=config.grouped)
    batches = batches[: max(1, int(len(batches) * config.epochs / math.ceil(config.epochs)))]
    n_proc, rank = accelerator.num_processes, accelerator.process_index
    per_process = len(batches) // n_proc
    if per_process == 0:
        raise PrefstudioError(f"{len(pairs)} pairs make no full batch of {config.batch_size} on {n_proc} process(es)")
    my_batches = batches[rank: per_process * n_proc: n_proc]
    total_steps = per_process // config.grad_accum

    # -- model and optimiser ---------------------------------------------------------------------
    model = RewardModel.for_training(config, tokenizer, resume_from, device=accelerator.device,
                                     **({"attn_implementation": "flash_attention_2"} if config.padding_free else {}))
    sharded_here = strategy.shard_here(model, accelerator, config.strategy)  # else prepare shards it, if sharded
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _adamw(params, config)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    if sharded_here:  # Accelerate would wrap it in DDP as well
        optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    else:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    # FSDP and DeepSpeed put new parameters in their place. All of them are clipped (frozen ones have no gradient):
    # Accelerate's FSDP clips only when given the model's whole list, and otherwise silently does not.
    params = list(model.parameters())
    core = accelerator.unwrap_model(model)
    if config.strategy != "ddp" and n_proc == 1 and accelerator.is_main_process:
        print(f"note: strategy {config.strategy} on one process: nothing to shard over, the model trains whole",
              flush=True)
    step, momentum = 0, None
    if resume_from is not None:
        state, optimizer_state = load_trainer_state(resume_from)
        if optimizer_state is not None:
            strategy.load_optimizer_state(core, optimizer, optimizer_state)
        elif accelerator.is_main_process:
            print(f"note: {resume_from.name} holds the model only (the newer checkpoints are gone): "
                  "the optimiser's state starts afresh", flush=True)
        scheduler.load_state_dict(state["scheduler"])
        step, momentum = state["step"], state["momentum"]
    metrics_file = None
    if accelerator.is_main_process:
        keep_steps_up_to(job_dir, step)  # the steps after the checkpoint are trained, and logged, again
        metrics_file = open(job_dir / METRICS, "a", encoding="utf-8")

    # -- loop ------------------------------------------------------------------------------------
    model.train()
    started, pairs_seen = time.perf_counter(), 0
    ignored = IgnoredSources()  # MORE: a source whose λ stays near 0 is said once, in the log
    for batch_index in range(step * config.grad_accum, len(my_batches)):
        if _agreed_stop(accelerator, should_stop()):
            break
        if config.padding_free:  # one row, no padding: position ids restart per sequence, rewards at their ends
            batch = collate_packed(my_batches[batch_index])
            packed = {key: batch[key].to(accelerator.device) for key in ("position_ids", "ends")}
            ids, mask = batch["input_ids"].to(accelerator.device), None
        else:
            batch, packed = collate(my_batches[batch_index], tokenizer.pad_token_id), {}
            ids = batch["input_ids"].to(accelerator.device)
            mask = batch["attention_mask"].to(accelerator.device)
        margins = batch["margins"].to(accelerator.device)
        n = margins.shape[0]
        with accelerator.accumulate(model):
            rewards, pooled = model(ids, mask, return_pooled=True, **packed)
            d = (rewards[:n] - rewards[n:]).float()
            record = {}
            if config.objective == "more":
                solved = more_step(d, pooled, margins, len(sources), strategy.full_weight(core.head.weight), config,
                                   momentum, reduce=lambda g: accelerator.reduce(g, reduction="mean"))
                loss, momentum = solved.loss, solved.momentum
                record["lambda"] = dict(zip(sources, [round(x, 6) for x in solved.lam.tolist()]))
                record["loss_by_source"] = {s: round(v.mean().item(), 6) for s, v in zip(sources, solved.sub_losses)}
                record[COSINE] = upper_triangle(cosine_matrix(solved.gram))  # in λ's source order
            else:
                losses = pair_losses(d, config.objective, margins)
                loss = losses.mean()
                record["loss_by_source"] = _by_source(losses, my_batches[batch_index])
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        pairs_seen += n
        if not accelerator.sync_gradients:
            continue
        step += 1
        loss_value = accelerator.reduce(loss.detach(), reduction="mean").item()
        if metrics_file:
            elapsed = time.perf_counter() - started
            record = {"step": step, "total_steps": total_steps, "loss": round(loss_value, 6), **record,
                      "lr": scheduler.get_last_lr()[0], "pairs_per_s": round(pairs_seen * n_proc / elapsed, 2),
                      "processes": n_proc,
                      "time": time.time()}
            if torch.cuda.is_available():
                record["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            for warning in ignored.update(record.get("lambda")):
                print(f"warning: {warning}", flush=True)  # into the job's log; the Jobs screen says it too
        if on_progress and accelerator.is_main_process:
            on_progress(Progress(step, total_steps, loss_value))
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
            _save(accelerator, core, tokenizer, optimizer, scheduler, step, momentum, job_dir, config)
    final = _save(accelerator, core, tokenizer, optimizer, scheduler, step, momentum, job_dir, config,
                  finished=step == total_steps)  # LoRA: merged into its base only then (docs/methods.md, "LoRA")
    if metrics_file:
        metrics_file.close()
    return final


@dataclass(frozen=True)
class MoreStep:
    """One batch of MORE: the loss to back-propagate, λ, the per-source losses, the momentum buffer to keep, and
    the Gram matrix λ was solved on (K×K, float64, on the CPU), which the cosine diagnostics read."""

    loss: torch.Tensor
    lam: torch.Tensor
    sub_losses: list[torch.Tensor]
    momentum: torch.Tensor
    gram: torch.Tensor


def more_step(d: torch.Tensor, pooled: torch.Tensor, margins: torch.Tensor, k: int, head_weight: torch.Tensor,
              config: TrainConfig, momentum: torch.Tensor | None, reduce=lambda g: g) -> MoreStep:
    """MORE's loss for a batch of K equal sub-batches (docs/methods.md).

    `pooled` are the states the head sees (after its dropout, if any); g_i is the gradient of
    sub-batch i's loss with respect to the head's weights on them, detached from the backbone.
    `reduce` averages the g_i and the L_i across processes, so every process solves for the same λ.
    """
    n = d.shape[0]
    parts = [slice(i * n // k, (i + 1) * n // k) for i in range(k)]
    m = [margins[p] if config.more_loss == "margin" else None for p in parts]
    sub_losses = [pair_losses(d[p], config.more_loss, mi) for p, mi in zip(parts, m)]
    diff = (pooled[:n] - pooled[n:]).detach()
    g = head_gradients([diff[p] for p in parts], head_weight, config.more_loss, m)
    means = torch.stack([s.detach().float().mean() for s in sub_losses]).to(g.device)
    both = reduce(torch.cat([g, means.unsqueeze(1)], dim=1))
    g, means = both[:, :-1], both[:, -1]
    if config.more_momentum < 1 and momentum is not None:
        g = (1 - config.more_momentum) * momentum.to(g.device) + config.more_momentum * g
    momentum = g.detach().cpu()
    scaled = normalize_gradients(g, means, config.more_normalize)
    gram = (scaled @ scaled.T).detach().to(torch.float64).cpu()  # K×K: moved once, read by the solver and the log
    lam = min_norm_weights(gram)
    return MoreStep(more_loss(sub_losses, lam), lam, sub_losses, momentum, gram)


def more_objective(d: torch.Tensor, pooled: torch.Tensor, margins: torch.Tensor, k: int, head_weight: torch.Tensor,
                   config: TrainConfig, momentum: torch.Tensor | None, reduce=lambda g: g):
    """more_step as (loss, λ, per-source losses, momentum), for the callers that need no Gram matrix."""
    step = more_step(d, pooled, margins, k, head_weight, config, momentum, reduce)
    return step.loss, step.lam, step.sub_losses, step.momentum


def normalize_gradients(g: torch.Tensor, losses: torch.Tensor, how: str) -> torch.Tensor:
    """MORE's gradient normalisers: l2, g_i / ||g_i||; loss, g_i / ((L_i + 1) / Σ_j (L_j + 1)); none."""
    if how == "l2":
        return g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)
    if how == "loss":
        shares = (losses + 1) / (losses + 1).sum()
        return g / shares.unsqueeze(1)
    return g


def _agreed_stop(accelerator, asked: bool) -> bool:
    """Stop only together: a rank that stopped alone would leave the others waiting in all-reduce."""
    if accelerator.num_processes == 1:
        return asked
    flag = torch.tensor([1.0 if asked else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def _by_source(losses: torch.Tensor, batch) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for value, pair in zip(losses.detach().tolist(), batch):
        sums.setdefault(pair.source, []).append(value)
    return {s: round(sum(v) / len(v), 6) for s, v in sorted(sums.items())}


def _adamw(params, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW in one fused kernel where torch has it (CUDA; the CPU from torch 2.4), as TRL's default is.

    The per-parameter-list ('foreach') form makes temporary copies of every parameter: on MiniLM it cost
    80 MB more peak memory and ran slower (bench/README.md).
    """
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _save(accelerator, core: RewardModel, tokenizer, optimizer, scheduler, step: int, momentum, job_dir: Path,
          config: TrainConfig, finished: bool = False) -> Path:
    """The main process writes the checkpoint (train/checkpoints.py); the others wait for it. A sharded
    model and its optimiser's state are gathered first, which every process takes part in (train/strategy.py)."""
    accelerator.wait_for_everyone()
    writable = strategy.writable_model(core, accelerator)
    optimizer_state = strategy.optimizer_state(core, optimizer, accelerator)
    if accelerator.is_main_process:
        save_checkpoint(job_dir, step, model=writable, tokenizer=tokenizer, keep=config.keep_checkpoints,
                        finished=finished, optimizer_state=optimizer_state,
                        trainer_state={"scheduler": scheduler.state_dict(), "step": step, "momentum": momentum})
    accelerator.wait_for_everyone()
    return checkpoint_dir(job_dir, step)
