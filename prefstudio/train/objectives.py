"""The training objectives (docs/methods.md, "Training objectives"), on reward differences d = r(x, y_c) - r(x, y_r).

Each returns per-pair losses so that MORE can weight sub-batches; callers take
the mean. `-log σ(z)` is computed as softplus(-z), which is exact and stable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prefstudio.settings import RANKING_LOSSES


def pair_losses(d: torch.Tensor, objective: str, margins: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair losses for `bt`, `margin` (needs `margins`) or `adaptive`.

    adaptive: μ_B = mean(d) is a constant (detached); a pair with d - μ_B < 0
    gets -log σ(d - μ_B), the others -log σ(d) (margin paper eq. 4-7).
    """
    if objective == "bt":
        return F.softplus(-d)
    if objective == "margin":
        if margins is None:
            raise ValueError("the margin objective needs margins")
        return F.softplus(-(d - margins))
    if objective == "adaptive":
        mu = d.detach().mean()
        shifted = d - mu
        return torch.where(shifted < 0, F.softplus(-shifted), F.softplus(-d))
    raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(RANKING_LOSSES)}")


def more_loss(sub_losses: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """K · Σ_i λ_i · (sum of sub-batch i's pair losses) / (pairs in the batch).

    With λ = 1/K this is exactly the mean over the batch (the official MORE
    code rescales the same way). `weights` are constants for the backward pass.
    """
    k = len(sub_losses)
    n = sum(losses.numel() for losses in sub_losses)
    weights = weights.detach().to(sub_losses[0].dtype).to(sub_losses[0].device)
    return k * sum(w * losses.sum() for w, losses in zip(weights, sub_losses)) / n


def head_gradients(pooled_diff: list[torch.Tensor], head_weight: torch.Tensor, objective: str,
                   margins: list[torch.Tensor | None]) -> torch.Tensor:
    """g_i = ∂L_i/∂w for each source's sub-batch, w the reward head's weight vector.

    Computed on detached pooled states (h_c - h_r) per pair: the bias cancels in
    d, and no backbone backward is needed. Returns a K×H matrix.
    """
    w = head_weight.detach().reshape(-1).float().requires_grad_(True)
    grads = []
    for diff, m in zip(pooled_diff, margins):
        d = diff.detach().float() @ w
        loss = pair_losses(d, objective, None if m is None else m.float()).mean()
        (g,) = torch.autograd.grad(loss, w)
        grads.append(g)
    return torch.stack(grads)
