"""NT-Xent across 2 gloo ranks equals the single-process loss on the global batch, gradients included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sslkit.losses import NTXentLoss
from tests.ddp.launch import run_script
from tests.ddp.ntxent_worker import B, TEMPERATURE, WORLD, global_batch

pytestmark = pytest.mark.slow


def test_ntxent_two_ranks_equal_single_process(tmp_path: Path) -> None:
    run_script([str(Path(__file__).parent / "ddp" / "ntxent_worker.py"), str(tmp_path), "{port}"], tmp_path, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    z1, z2 = (t.clone().requires_grad_(True) for t in global_batch())
    loss = NTXentLoss(temperature=TEMPERATURE, gather_distributed=False)(z1, z2)
    loss.backward()

    # Each rank averages over its own anchors; DDP averages over ranks -> the global mean.
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), loss.detach())
    # The gathered negatives carry gradients home: rank r's embeddings receive the sum over
    # ranks of d(loss_q)/dz_r = WORLD * dL/dz_r, which DDP's gradient averaging divides by WORLD.
    for r, res in enumerate(ranks):
        rows = slice(r * B, (r + 1) * B)
        torch.testing.assert_close(res["grad1"] / WORLD, z1.grad[rows])
        torch.testing.assert_close(res["grad2"] / WORLD, z2.grad[rows])
    assert all(r["loss"] != ranks[0]["loss"] for r in ranks[1:])  # the ranks did see different anchors
