"""MORE's source weights: the min-norm point of the convex hull of per-source gradients.

λ = argmin over the simplex of ||Σ λ_i g_i||² (MGDA, Sener & Koltun 2018),
solved on the Gram matrix M = G Gᵀ: start from the best pair (closed form for
two vectors), then Frank–Wolfe steps with exact line search, until λ moves
less than 1e-5 (L1) or after 1000 steps. For K = 2 the pair solution is exact.

When several λ reach the minimum (e.g. identical gradients), the uniform λ is
returned if it is one of them, so MORE falls back to the plain mean loss rather
than an arbitrary corner.
"""

from __future__ import annotations

import math

import torch

TOLERANCE = 1e-5
MAX_STEPS = 1000


def _line_search(aa: float, ab: float, bb: float) -> tuple[float, float]:
    """γ in [0, 1] minimising ||γ a + (1 - γ) b||², and that minimum."""
    denominator = aa + bb - 2 * ab
    if denominator <= 1e-12 * max(aa, bb, 1e-30):  # a == b: every γ is the same point
        gamma = 0.5
    else:
        gamma = min(1.0, max(0.0, (bb - ab) / denominator))
    cost = gamma * gamma * aa + 2 * gamma * (1 - gamma) * ab + (1 - gamma) ** 2 * bb
    return gamma, cost


def min_norm_weights(gram: torch.Tensor, tolerance: float = TOLERANCE, max_steps: int = MAX_STEPS) -> torch.Tensor:
    """λ on the simplex minimising λᵀ M λ for a K×K Gram matrix M (float64 inside)."""
    m = gram.detach().to(torch.float64).cpu()
    k = m.shape[0]
    if k == 1:
        return torch.ones(1, dtype=torch.float64)
    best = None
    for i in range(k):
        for j in range(i + 1, k):
            gamma, cost = _line_search(m[i, i].item(), m[i, j].item(), m[j, j].item())
            if best is None or cost < best[0]:
                best = (cost, i, j, gamma)
    _, i, j, gamma = best
    lam = torch.zeros(k, dtype=torch.float64)
    lam[i], lam[j] = gamma, 1 - gamma
    if k > 2:
        for _ in range(max_steps):
            grad = m @ lam
            t = int(torch.argmin(grad))
            gamma, _ = _line_search(float(lam @ grad), float(grad[t]), m[t, t].item())
            new = gamma * lam
            new[t] += 1 - gamma
            change = float((new - lam).abs().sum())
            lam = new
            if change < tolerance:
                break
    uniform = torch.full((k,), 1.0 / k, dtype=torch.float64)
    value, uniform_value = float(lam @ m @ lam), float(uniform @ m @ uniform)
    if uniform_value <= value + 1e-9 * max(abs(value), float(m.diagonal().max()), 1e-30):
        return uniform
    return lam


def cosine_matrix(gram: torch.Tensor) -> torch.Tensor:
    """cos_ij = M_ij / sqrt(M_ii M_jj) for a K×K Gram matrix M (float64): how much two sources' gradients agree.

    What MORE is about (docs/methods.md, "MORE"): -1 where one source's step undoes another's, 0 where they are
    unrelated. A per-source positive scale (the l2 and loss normalisers, which λ is solved after) leaves it
    unchanged. A source whose gradient is zero has no direction: its row and column are NaN (the diagonal too).
    """
    m = gram.detach().to(torch.float64).cpu()
    norms = m.diagonal().clamp(min=0).sqrt()
    scale = torch.outer(norms, norms)
    cos = torch.where(scale > 0, m / scale.where(scale > 0, torch.ones_like(scale)), torch.full_like(m, math.nan))
    return cos.clamp(-1.0, 1.0)  # rounding can take |cos| a hair past 1; clamp keeps NaN


def upper_triangle(matrix: torch.Tensor, digits: int = 3) -> list[float | None]:
    """The entries above the diagonal, row by row ((0,1), (0,2), …, (1,2), …), rounded; None for NaN: what a
    metrics line keeps of a symmetric matrix whose diagonal is 1."""
    k = matrix.shape[0]
    values = matrix.tolist()
    return [None if math.isnan(values[i][j]) else round(values[i][j], digits)
            for i in range(k) for j in range(i + 1, k)]
