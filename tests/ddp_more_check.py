"""Run under `torchrun --standalone --nproc_per_node 2 tests/ddp_more_check.py OUT`: each rank
computes MORE's step on its own batch with the head gradients averaged across ranks, and writes
its λ and loss to OUT/rank<r>.json (tests/test_ddp.py compares them)."""

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from prefstudio.train.config import make_config
from prefstudio.train.loop import more_objective

K, PER, HIDDEN = 3, 4, 8


def batch_of(rank: int) -> torch.Tensor:
    """Pooled states (chosen rows, then rejected rows), sources in order, for one rank."""
    g = torch.Generator().manual_seed(0)
    chosen = torch.randn(2, K, PER, HIDDEN, generator=g, dtype=torch.float64)
    rejected = torch.randn(2, K, PER, HIDDEN, generator=g, dtype=torch.float64) + 0.3
    return chosen, rejected


def head() -> torch.Tensor:
    return torch.randn(1, HIDDEN, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def main() -> None:
    accelerator = Accelerator(cpu=True)
    rank = accelerator.process_index
    chosen, rejected = batch_of(rank)
    pooled = torch.cat([chosen[rank].reshape(K * PER, HIDDEN), rejected[rank].reshape(K * PER, HIDDEN)])
    w = head()
    rewards = (pooled @ w.T).squeeze(-1)
    d = rewards[: K * PER] - rewards[K * PER:]
    config = make_config({"backbone": "unused", "objective": "more", "sampling": "balanced", "batch_size": K * PER})
    loss, lam, _, _ = more_objective(d, pooled, torch.zeros(K * PER), K, w, config, None,
                                     reduce=lambda g: accelerator.reduce(g.float(), reduction="mean").double())
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps({"lambda": lam.tolist(), "loss": loss.item()}))


if __name__ == "__main__":
    main()
