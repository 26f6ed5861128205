"""The online evaluator under real 2-process DDP (CPU, gloo) against a single process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ddp.launch import launch

pytestmark = pytest.mark.slow


def test_probes_identical_on_every_rank_and_val_accuracy_equals_single_process(tmp_path: Path) -> None:
    ckpt = tmp_path / "trained.ckpt"
    ranks = launch({"devices": 2, "max_steps": 20, "save_ckpt": str(ckpt), "limit_val_batches": 0}, tmp_path / "fit")
    assert ranks[0]["world_size"] == 2
    for key, value in ranks[0]["probes"].items():
        assert torch.equal(value, ranks[1]["probes"][key]), key

    # Validate the same checkpoint (encoder + probes) on 179 images, an odd count:
    # 2 ranks must count each image exactly once, like a single process.
    two = launch({"devices": 2, "mode": "validate", "ckpt_path": str(ckpt)}, tmp_path / "val2")
    one = launch({"devices": 1, "mode": "validate", "ckpt_path": str(ckpt)}, tmp_path / "val1")
    for key in ("online_val_acc", "online/mlp/val_acc", "online/linear/val_top5", "online_val_loss", "online_knn_acc"):
        assert two[0]["metrics"][key] == pytest.approx(one[0]["metrics"][key], abs=1e-6), key
        assert two[1]["metrics"][key] == two[0]["metrics"][key]
    # Not trivially equal: the probes learned something in 20 steps.
    assert one[0]["metrics"]["online_val_acc"] > 0.15 and one[0]["metrics"]["online_knn_acc"] > 0.3


def test_single_process_checkpoint_resumes_under_ddp(tmp_path: Path) -> None:
    ckpt = tmp_path / "single.ckpt"
    single = launch({"devices": 1, "max_steps": 3, "save_ckpt": str(ckpt), "limit_val_batches": 0}, tmp_path / "a")
    saved = torch.load(ckpt, weights_only=False)
    assert not any(k.startswith("module.") for k in saved["state_dict"])  # no DDP prefixes either way
    ranks = launch({"devices": 2, "max_steps": 5, "ckpt_path": str(ckpt), "limit_val_batches": 0}, tmp_path / "b")
    for key, value in ranks[0]["probes"].items():
        assert torch.equal(value, ranks[1]["probes"][key]), key
        assert not torch.equal(value, single[0]["probes"][key]) or "running" in key or "num_batches" in key
