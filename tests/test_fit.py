"""Training works: a short SimCLR fit beats the same probe on a random-init encoder."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
from lightning.pytorch import Trainer

from sslkit.callbacks import SSLOnlineEvaluator
from sslkit.data import DigitsDataModule
from sslkit.methods import SimCLR
from tests.conftest import trainer_kwargs


def _online_accuracy(train_encoder: bool) -> float:
    pl.seed_everything(0)
    model = SimCLR(
        backbone="small_cnn", backbone_kwargs={"width": 16}, proj_hidden_dim=256, temperature=0.2,
        optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=1,
    )
    if not train_encoder:
        model.backbone.requires_grad_(False)  # random-init encoder, same probe budget
    trainer = Trainer(**trainer_kwargs(max_epochs=8, callbacks=[SSLOnlineEvaluator()]))
    trainer.fit(model, DigitsDataModule(batch_size=64, num_workers=0, image_size=16))
    return float(trainer.callback_metrics["online_val_acc"])


@pytest.mark.slow
def test_simclr_beats_random_init_encoder() -> None:
    # Measured here (seed 0): trained 0.919, random-init 0.786 -> margin 0.13. Assert well under it.
    trained, random_init = _online_accuracy(True), _online_accuracy(False)
    assert trained > 0.85
    assert trained - random_init > 0.05, (trained, random_init)
