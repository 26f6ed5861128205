"""Losses against hand-written references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.losses import NegativeCosineLoss, NTXentLoss


def ntxent_reference(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """NT-Xent written from the SimCLR paper, eq. 1, with explicit loops in float64."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(num / den)
    return total / n2


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("t", [0.01, 0.1, 0.5, 1.0])
def test_ntxent_matches_reference(n: int, t: float) -> None:
    g = torch.Generator().manual_seed(n * 1000 + int(t * 100))
    z1, z2 = torch.randn(n, 5, generator=g), torch.randn(n, 5, generator=g)
    got = NTXentLoss(temperature=t)(z1, z2)
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(ntxent_reference(z1, z2, t), rel=1e-4, abs=1e-4)


def test_ntxent_finite_at_low_temperature_in_half_precision_inputs() -> None:
    z1 = torch.randn(16, 32).to(torch.bfloat16)
    z2 = (z1.float() + 0.01 * torch.randn(16, 32)).to(torch.bfloat16)
    z1.requires_grad_(True)
    loss = NTXentLoss(temperature=0.01)(z1, z2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()


def test_ntxent_gradient_matches_reference_autograd() -> None:
    z1 = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    NTXentLoss(temperature=0.2)(z1, z2).backward()
    ours = z1.grad.clone()
    # The same loss, built without masking tricks: log-sum-exp over k != i.
    a, b = z1.detach().clone().requires_grad_(True), z2.detach().clone()
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / 0.2
    n = 4
    loss = 0
    for i in range(2 * n):
        others = torch.cat([sim[i, :i], sim[i, i + 1 :]])
        loss = loss - sim[i, (i + n) % (2 * n)] + torch.logsumexp(others, 0)
    (loss / (2 * n)).backward()
    torch.testing.assert_close(ours.double(), a.grad, rtol=1e-4, atol=1e-6)


def test_ntxent_perfect_alignment_beats_random() -> None:
    z = F.normalize(torch.randn(32, 64), dim=1)
    loss = NTXentLoss(temperature=0.1)
    assert loss(z, z) < loss(z, torch.randn(32, 64))


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_ntxent_rejects_bad_temperature(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=bad)


def test_ntxent_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        NTXentLoss()(torch.randn(4, 8), torch.randn(5, 8))


def test_negative_cosine_matches_reference() -> None:
    p, z = torch.randn(6, 10), torch.randn(6, 10)
    ref = sum(2 - 2 * float(p[i] @ z[i]) / float(p[i].norm() * z[i].norm()) for i in range(6)) / 6
    assert float(NegativeCosineLoss()(p, z)) == pytest.approx(ref, rel=1e-5)


def test_negative_cosine_symmetric_and_target_detached() -> None:
    p1, p2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    z1, z2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    crit = NegativeCosineLoss()
    loss = crit.symmetric(p1, p2, z1, z2)
    assert float(loss) == pytest.approx(float(crit(p1, z2) + crit(p2, z1)))
    loss.backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None
