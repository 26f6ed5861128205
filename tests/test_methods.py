"""The method -> evaluator contract of the six sections, and batch-format errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sslkit.methods import BYOL, SimCLR
from tests.conftest import TINY_BACKBONE

HEADS = {"proj_hidden_dim": 16, "proj_dim": 8}


def make(method: str) -> Any:
    if method == "simclr":
        return SimCLR(**TINY_BACKBONE, **HEADS)
    return BYOL(**TINY_BACKBONE, **HEADS, pred_hidden_dim=16)


def views_batch(b: int = 4, size: int = 16) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [torch.randn(b, 3, size, size), torch.randn(b, 3, size, size)], torch.arange(b)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_training_step_returns_loss_detached_features_and_labels(method: str) -> None:
    model = make(method)
    out = model.training_step(views_batch(), 0)
    assert set(out) == {"loss", "features", "labels"}
    assert out["loss"].requires_grad and out["loss"].ndim == 0
    assert out["features"].shape == (4, model.num_features) and not out["features"].requires_grad
    assert out["labels"].tolist() == [0, 1, 2, 3]
    # The features are the backbone's on the first view (batch statistics, train mode).
    x0 = views_batch()[0][0]
    assert out["features"].shape[1] == model.backbone(x0).shape[1]


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_eval_and_predict_steps_return_clean_features(method: str) -> None:
    model = make(method).eval()
    x, y = torch.randn(5, 3, 16, 16), torch.arange(5)
    with torch.no_grad():
        for step in (model.validation_step, model.test_step):
            out = step((x, y), 0)
            assert set(out) == {"features", "labels"}
            torch.testing.assert_close(out["features"], model.backbone(x))
        pred = model.predict_step((x, y), 0)
    assert set(pred) == {"embeddings", "labels"} and pred["embeddings"].shape == (5, model.num_features)


def test_unlabelled_views_batch_is_accepted() -> None:
    out = make("simclr").training_step(views_batch()[0], 0)
    assert out["labels"] is None


@pytest.mark.parametrize(
    "batch, match",
    [
        ((torch.randn(4, 3, 16, 16), torch.arange(4)), "training batch must be"),
        (([torch.randn(4, 3, 16, 16)], torch.arange(4)), "Got 1 view"),
        (([torch.randn(4, 16, 16), torch.randn(4, 16, 16)], torch.arange(4)), r"\(B, C, H, W\)"),
        (([torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8)], torch.arange(4)), "different shapes"),
        (([torch.zeros(4, 3, 16, 16, dtype=torch.uint8)] * 2, torch.arange(4)), "float images"),
    ],
)
def test_bad_training_batches_name_the_format(batch: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make("simclr").training_step(batch, 0)


def test_bad_eval_batch() -> None:
    with pytest.raises(ValueError, match="evaluation batch must be"):
        make("simclr").validation_step({"x": 1}, 0)


def test_hyperparameters_are_saved_for_checkpoints() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS, temperature=0.3)
    assert model.hparams.temperature == 0.3 and model.hparams.backbone == "small_cnn"
    assert model.hparams.backbone_kwargs == {"width": 8}


def test_byol_rejects_bad_momentum() -> None:
    with pytest.raises(ValueError, match="base_momentum"):
        BYOL(**TINY_BACKBONE, base_momentum=1.2)
