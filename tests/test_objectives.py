"""Exact checks of SPEC §3's losses and MORE's min-norm weights against hand computation."""

import itertools
import math

import pytest
import torch

from prefstudio.train.min_norm import min_norm_weights
from prefstudio.train.objectives import head_gradients, more_loss, pair_losses


def nll_sigmoid(z):  # -log σ(z), written out
    return -math.log(1 / (1 + math.exp(-z)))


D = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)


def test_bt_loss_by_hand():
    # -log σ(2) = 0.126928, -log σ(-1) = 1.313262, -log σ(0.5) = 0.474077
    losses = pair_losses(D, "bt")
    assert losses.tolist() == pytest.approx([0.1269280110, 1.3132616875, 0.4740769842], abs=1e-9)
    assert losses.mean().item() == pytest.approx((0.1269280110 + 1.3132616875 + 0.4740769842) / 3, abs=1e-9)


def test_margin_loss_by_hand():
    m = torch.tensor([1.0, 2 / 3, 0.0], dtype=torch.float64)
    losses = pair_losses(D, "margin", m)
    assert losses.tolist() == pytest.approx([nll_sigmoid(1.0), nll_sigmoid(-5 / 3), nll_sigmoid(0.5)], abs=1e-12)
    assert losses[0].item() == pytest.approx(0.3132616875, abs=1e-9)  # -log σ(2 - 1)


def test_adaptive_loss_by_hand_and_mu_is_constant():
    d = D.clone().requires_grad_(True)
    losses = pair_losses(d, "adaptive")
    # μ_B = (2 - 1 + 0.5) / 3 = 0.5; d - μ_B = (1.5, -1.5, 0): only the second pair is shifted
    assert losses.tolist() == pytest.approx([nll_sigmoid(2.0), nll_sigmoid(-1.5), nll_sigmoid(0.5)], abs=1e-12)
    losses.mean().backward()
    # with μ_B constant, each pair's gradient is its own: -σ(-z)/n at its own z, no cross terms
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert d.grad.tolist() == pytest.approx([-sig(-2.0) / 3, -sig(1.5) / 3, -sig(-0.5) / 3], abs=1e-12)


def test_more_loss_uniform_weights_is_the_plain_mean():
    subs = [pair_losses(D[:2], "bt"), pair_losses(D[2:], "bt")]
    assert more_loss(subs, torch.tensor([0.5, 0.5])).item() == pytest.approx(pair_losses(D, "bt").mean().item(), abs=1e-12)
    # λ = (1, 0): K · (sum of sub-batch 1) / n = 2 · (0.126928 + 1.313262) / 3
    assert more_loss(subs, torch.tensor([1.0, 0.0])).item() == pytest.approx(2 * (0.1269280110 + 1.3132616875) / 3, abs=1e-9)


def test_head_gradients_by_hand():
    w = torch.tensor([[0.5, -1.0]])
    diff = torch.tensor([[2.0, 1.0], [0.0, 1.0]])  # d = (0, -1)
    (g,) = head_gradients([diff], w, "bt", [None])
    # ∂/∂w mean(-log σ(d_j)) = mean(-σ(-d_j) · Δh_j) = -(0.5·(2,1) + σ(1)·(0,1)) / 2
    s1 = 1 / (1 + math.exp(-1))
    assert g.tolist() == pytest.approx([-0.5, -(0.5 + s1) / 2], abs=1e-6)


def gram(*vectors):
    g = torch.tensor(vectors, dtype=torch.float64)
    return g @ g.T


def test_min_norm_orthogonal_gradients():
    # ||λ1 (1,0) + λ2 (0,2)||² = λ1² + 4 λ2², minimised on the simplex at λ = (0.8, 0.2)
    assert min_norm_weights(gram([1, 0], [0, 2])).tolist() == pytest.approx([0.8, 0.2], abs=1e-12)


def test_min_norm_one_dominating_gradient():
    # (1,0) and (3,0): the hull's min-norm point is (1,0) itself
    assert min_norm_weights(gram([1, 0], [3, 0])).tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    # opposed gradients of equal size cancel: the origin is in the hull at λ = (0.5, 0.5)
    assert min_norm_weights(gram([1, 1], [-1, -1])).tolist() == pytest.approx([0.5, 0.5], abs=1e-12)


def test_min_norm_k2_closed_form():
    torch.manual_seed(0)
    a, b = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    gamma = ((b @ b - a @ b) / ((a - b) @ (a - b))).clamp(0, 1).item()
    lam = min_norm_weights(torch.stack([a, b]) @ torch.stack([a, b]).T)
    assert lam.tolist() == pytest.approx([gamma, 1 - gamma], abs=1e-12)


def test_min_norm_identical_gradients_give_uniform_weights():
    g = [[0.3, -1.2, 2.0]] * 5
    assert min_norm_weights(gram(*g)).tolist() == pytest.approx([0.2] * 5, abs=1e-15)


def test_min_norm_k5_against_brute_force_grid():
    torch.manual_seed(3)
    g = torch.randn(5, 4, dtype=torch.float64) + torch.tensor([1.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    m = g @ g.T
    lam = min_norm_weights(m)
    assert lam.min().item() >= 0 and lam.sum().item() == pytest.approx(1.0, abs=1e-12)
    steps = 20  # grid of step 0.05 over the 5-simplex: 10,626 points
    best = min(
        float(torch.tensor(c, dtype=torch.float64) @ m @ torch.tensor(c, dtype=torch.float64))
        for c in (tuple(x / steps for x in combo) + ((steps - sum(combo)) / steps,)
                  for combo in itertools.product(range(steps + 1), repeat=4) if sum(combo) <= steps)
    )
    assert float(lam @ m @ lam) <= best + 1e-9  # at least as good as the best point of the grid
