"""Weighted kNN against a brute-force reference, and the KNNOnlineEvaluator callback in a fit."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from sslkit.callbacks import KNNOnlineEvaluator
from sslkit.knn import weighted_knn_scores
from sslkit.methods import SimCLR
from tests.conftest import TINY_BACKBONE, trainer_kwargs


def brute_force(query: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor, c: int, k: int, t: float) -> torch.Tensor:
    out = torch.zeros(query.shape[0], c, dtype=torch.float64)
    for i, q in enumerate(query.double()):
        sims = sorted(((float(q @ b), j) for j, b in enumerate(bank.double())), reverse=True)[:k]
        for s, j in sims:
            out[i, int(labels[j])] += math.exp(s / t)
    return out


@pytest.mark.parametrize("k, chunk", [(1, 1000), (5, 7), (20, 3), (60, 16)])
def test_weighted_knn_matches_brute_force(k: int, chunk: int) -> None:
    g = torch.Generator().manual_seed(k)
    bank = F.normalize(torch.randn(50, 8, generator=g), dim=1)
    query = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    labels = torch.randint(0, 4, (50,), generator=g)
    got = weighted_knn_scores(query, bank, labels, 4, k=k, temperature=0.1, chunk_size=chunk)
    torch.testing.assert_close(got.double(), brute_force(query, bank, labels, 4, min(k, 50), 0.1), rtol=1e-5, atol=1e-6)


def test_knn_monitor_in_a_fit(tiny_digits: Any) -> None:
    model = SimCLR(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    knn = KNNOnlineEvaluator(k=20, chunk_size=100)
    trainer = Trainer(**trainer_kwargs(max_steps=2, val_check_interval=2, limit_val_batches=3, callbacks=[knn]))
    trainer.fit(model, tiny_digits)
    acc = float(trainer.callback_metrics["online_knn_acc"])
    assert 0.3 < acc <= 1.0  # digits features of a barely trained CNN are already far above chance (0.1)
    # 2 training batches + 23 bank batches (1437 clean images / 64) + 3 validation batches.
    assert len(calls) == 2 + 23 + 3


def test_knn_needs_a_bank() -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        KNNOnlineEvaluator(k=0)
