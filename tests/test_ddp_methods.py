"""BYOL and SimCLR under 2-process DDP (CPU, gloo) against one process on the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ddp.launch import launch

pytestmark = pytest.mark.slow


def test_byol_ddp_equals_single_process_with_the_same_micro_batches(tmp_path: Path) -> None:
    # Without SyncBN (torch has no CPU SyncBatchNorm), each rank normalises with its own batch
    # statistics. The single-process run that computes the same thing sees the same per-rank
    # micro-batches through gradient accumulation: BYOL has no cross-sample negatives, and
    # accumulation averages the two micro-batch gradients exactly as DDP averages the ranks'.
    # SGD: Adam's normalised step would turn float-rounding noise in near-zero gradients into full steps.
    cfg = {"method": "byol", "fixed_views": True, "batch_size": 16, "max_steps": 3, "limit_val_batches": 0,
           "optimizer": "sgd", "lr": 0.05}
    ddp = launch({**cfg, "devices": 2}, tmp_path / "ddp")
    single = launch({**cfg, "devices": 1, "rank_order": True, "accumulate_grad_batches": 2}, tmp_path / "one")
    assert [ddp[0]["batch_labels"][i] + ddp[1]["batch_labels"][i] for i in range(3)] == [
        single[0]["batch_labels"][2 * i] + single[0]["batch_labels"][2 * i + 1] for i in range(3)
    ]  # the same samples, grouped the same way
    params = [k for k in single[0]["model"] if "running_" not in k and "num_batches" not in k]
    assert any(k.startswith("target_backbone.") for k in params)
    for k in params:
        assert torch.equal(ddp[0]["model"][k], ddp[1]["model"][k]), k  # identical on both ranks
        torch.testing.assert_close(ddp[0]["model"][k], single[0]["model"][k], rtol=1e-4, atol=1e-5, msg=k)
    # The run moved the target away from its initial copy of the online network.
    assert not torch.equal(single[0]["model"]["target_backbone.features.0.weight"],
                           single[0]["model"]["backbone.features.0.weight"])


def test_a_crashed_rank_fails_the_run_instead_of_hanging(tmp_path: Path) -> None:
    import time

    start = time.monotonic()
    with pytest.raises(AssertionError, match="deliberate crash on rank 1|remote worker crashing|timed out"):
        launch({"devices": 2, "max_steps": 5, "limit_val_batches": 0, "crash_rank": 1}, tmp_path, timeout=90)
    assert time.monotonic() - start < 120
