"""Exact checks of the losses of docs/methods.md and MORE's min-norm weights against hand computation."""

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


# -- MORE as the loop runs it: λ from the head gradients, applied to the sub-batch losses -------------------


def _more_case():
    """Two sources whose head gradients conflict unevenly, so λ is far from uniform."""
    w = torch.tensor([[0.2, -0.1]])
    chosen = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    rejected = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0]])
    pooled = torch.cat([chosen, rejected])
    rewards = (pooled @ w.T).squeeze(-1)
    return rewards[:4] - rewards[4:], pooled, w


def _config(**values):
    from prefstudio.train.config import make_config

    return make_config({"backbone": "unused", "objective": "more", "sampling": "balanced", "batch_size": 4, **values})


def test_more_objective_solves_lambda_from_head_gradients_and_applies_it():
    from prefstudio.train.loop import more_objective

    d, pooled, w = _more_case()
    loss, lam, subs, _ = more_objective(d, pooled, torch.zeros(4), 2, w, _config(), None)
    diff = pooled[:4] - pooled[4:]
    g = head_gradients([diff[:2], diff[2:]], w, "bt", [None, None])
    g1, g2 = g[0].double(), g[1].double()
    # K = 2: γ = clip((g2·g2 - g1·g2) / |g1 - g2|², 0, 1) is the weight of g1
    gamma = float(((g2 @ g2 - g1 @ g2) / ((g1 - g2) @ (g1 - g2))).clamp(0, 1))
    assert lam.tolist() == pytest.approx([gamma, 1 - gamma], abs=1e-6)
    assert abs(gamma - 0.5) > 0.1  # far from uniform: a λ that is not applied would show
    bt = pair_losses(d, "bt")
    assert loss.item() == pytest.approx(2 * (gamma * bt[:2].sum() + (1 - gamma) * bt[2:].sum()).item() / 4, abs=1e-6)


def test_more_normalisers_by_hand():
    from prefstudio.train.loop import normalize_gradients

    g = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    losses = torch.tensor([1.0, 0.5])
    assert normalize_gradients(g, losses, "l2").flatten().tolist() == pytest.approx([0.6, 0.8, 0.0, 1.0])
    # MORE's "loss": g_i / ((L_i + 1) / Σ_j (L_j + 1)); shares 2/3.5 and 1.5/3.5 (Sener–Koltun's g_i / L_i
    # would give (3, 4) and (0, 4))
    assert normalize_gradients(g, losses, "loss").flatten().tolist() == pytest.approx([5.25, 7.0, 0.0, 14 / 3])
    assert normalize_gradients(g, losses, "none").tolist() == g.tolist()


def test_more_momentum_mixes_the_previous_gradient():
    from prefstudio.train.loop import more_objective

    d, pooled, w = _more_case()
    previous = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    _, _, _, fresh = more_objective(d, pooled, torch.zeros(4), 2, w, _config(), None)
    _, _, _, mixed = more_objective(d, pooled, torch.zeros(4), 2, w, _config(more_momentum=0.25), previous)
    assert mixed.flatten().tolist() == pytest.approx((0.75 * previous + 0.25 * fresh).flatten().tolist(), abs=1e-7)


def test_more_head_gradients_are_taken_on_what_the_head_reads_after_dropout(tmp_path):
    from prefstudio.train.reward_model import RewardModel
    from tests.tiny_models import tiny_bert

    model = RewardModel.from_pretrained(tiny_bert(tmp_path / "bert"), pooling="cls")
    model.model.config.classifier_dropout = None
    model.dropout.p = 0.5
    model.train()
    torch.manual_seed(0)
    ids = torch.tensor([[101, 2054, 2003, 102], [101, 2129, 2024, 102]])
    rewards, features = model(ids, torch.ones_like(ids), return_pooled=True)
    head = model.head
    assert rewards.tolist() == pytest.approx((features @ head.weight.T + head.bias).squeeze(-1).tolist(), abs=1e-6)
    assert (features == 0).any()  # dropout did act on what the head read


def test_a_margin_in_the_snapshot_reaches_the_training_loss(tmp_path, backbone):
    """The whole path: snapshot → rows → encoded pairs → batches → loss. At step 1 the head is fresh (d ≈ 0), so
    the margin objective's loss is ≈ -log σ(-m): with m = 3, about 3.05, where bt reads about 0.69."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefstudio.train.config import make_config
    from prefstudio.train.loop import train

    n = 16
    table = pa.table({"prompt": ["Human: hi"] * n, "chosen": [f"answer {i}" for i in range(n)],
                      "rejected": [f"other {i}" for i in range(n)], "margin": [3.0] * n, "source": ["s"] * n,
                      "split": ["train"] * n, "level": [3] * n, "flip": [False] * n, "pair_id": list(range(n))})
    first_loss = {}
    for objective in ("margin", "bt"):
        folder = tmp_path / objective
        folder.mkdir()
        pq.write_table(table, folder / "pairs.parquet")
        config = make_config({"backbone": str(backbone), "objective": objective, "batch_size": 8, "lr": 1e-3,
                              "max_length": 32, "warmup_ratio": 0.0})
        train(folder, config)
        first_loss[objective] = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])["loss"]
        assert json.loads((folder / "truncation.json").read_text())["pairs"] == n
    assert first_loss["margin"] > first_loss["bt"] + 2
