"""Shared fixtures: tiny models and data so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

os.environ.setdefault("PYTHONHASHSEED", "0")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_BACKBONE: dict[str, Any] = {"backbone": "small_cnn", "backbone_kwargs": {"width": 8}}


def trainer_kwargs(**overrides: Any) -> dict[str, Any]:
    """Quiet, CPU, no-logger Trainer arguments for tests."""
    kw: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    kw.update(overrides)
    return kw


@pytest.fixture
def tiny_digits() -> Any:
    """Digits at 16x16, batch 64, loaded in the main process."""
    from sslkit.data import DigitsDataModule

    return DigitsDataModule(batch_size=64, num_workers=0, image_size=16)


class FixedViews(torch.utils.data.Dataset):
    """Deterministic views (no RNG) of ``(image, label)`` items: ``[x, flipped x]``, plus ``x`` again
    as a pl_bolts-style evaluation view with ``eval_view=True``. Runs on such data differ only by
    how they compute, which is what resume and DDP tests compare."""

    def __init__(self, base: Any, eval_view: bool = False) -> None:
        self.base = base
        self.eval_view = eval_view

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        x, y = self.base[i]
        return [x, x.flip(-1)] + ([x] if self.eval_view else []), y
