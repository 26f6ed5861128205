"""LR and EMA-momentum schedules: the formulas, and what a real fit steps through."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from sslkit.methods import BYOL, SimCLR
from sslkit.optim import cosine_momentum, warmup_cosine
from tests.conftest import TINY_BACKBONE, trainer_kwargs


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.25), (1, 0.5), (3, 1.0), (4, 1.0), (8, 0.5), (12, 0.0), (20, 0.0)],
)
def test_warmup_cosine_values(step: int, expected: float) -> None:
    # 4 warm-up steps, then cosine over the remaining 8 steps.
    assert warmup_cosine(step, warmup_steps=4, total_steps=12) == pytest.approx(expected, abs=1e-12)


def test_warmup_cosine_final_ratio_and_no_warmup() -> None:
    assert warmup_cosine(0, 0, 10) == 1.0
    assert warmup_cosine(10, 0, 10, final_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(5, 0, 10, final_ratio=0.1) == pytest.approx(0.55)


@pytest.mark.parametrize("step, expected", [(0, 0.996), (50, 0.998), (100, 1.0), (25, 1 - 0.004 * (1 + math.cos(math.pi / 4)) / 2)])
def test_cosine_momentum_values(step: int, expected: float) -> None:
    assert cosine_momentum(step, 100, base=0.996) == pytest.approx(expected, abs=1e-12)


class _Recorder(Callback):
    """Records LR before each optimizer step, and BYOL's momentum after it."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.momenta: list[float] = []
        self.total: int = 0

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: Any, optimizer: Any) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.total = pl_module.total_steps

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if hasattr(pl_module, "current_momentum") and (len(self.momenta) < trainer.global_step):
            self.momenta.append(pl_module.current_momentum)


def test_lr_schedule_in_a_fit_with_warmup_epochs(tiny_digits: Any) -> None:
    # 1437 train images, batch 64, drop_last -> 22 batches; accumulate 2 -> 11 steps/epoch.
    model = SimCLR(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8, optimizer="sgd", lr=0.4, warmup_epochs=1)
    rec = _Recorder()
    trainer = Trainer(**trainer_kwargs(max_epochs=2, limit_val_batches=0, accumulate_grad_batches=2, callbacks=[rec]))
    trainer.fit(model, tiny_digits)
    assert rec.total == 22
    expected = [0.4 * warmup_cosine(k, 11, 22) for k in range(22)]
    assert rec.lrs == pytest.approx(expected)
    assert rec.lrs[0] == pytest.approx(0.4 / 11) and rec.lrs[10] == pytest.approx(0.4)


def test_byol_momentum_follows_real_optimizer_steps_with_accumulation(tiny_digits: Any) -> None:
    model = BYOL(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, warmup_steps=0, base_momentum=0.9)
    rec = _Recorder()
    trainer = Trainer(**trainer_kwargs(max_steps=7, limit_val_batches=0, accumulate_grad_batches=3, callbacks=[rec]))
    trainer.fit(model, tiny_digits)
    assert trainer.global_step == 7 and rec.total == 7  # max_steps bounds the schedule, not the epoch length
    assert rec.momenta == pytest.approx([cosine_momentum(k, 7, base=0.9) for k in range(7)])


def test_byol_target_is_the_ema_of_the_online_network(tiny_digits: Any) -> None:
    model = BYOL(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, warmup_steps=0, base_momentum=0.5)
    before_target = [p.detach().clone() for p in model.target_network.parameters()]
    trainer = Trainer(**trainer_kwargs(max_steps=1, limit_val_batches=0))
    trainer.fit(model, tiny_digits)
    tau = model.current_momentum
    assert tau == pytest.approx(0.5)
    for old, t, o in zip(before_target, model.target_network.parameters(), model.online_network.parameters()):
        torch.testing.assert_close(t, tau * old + (1 - tau) * o.detach())
    assert not any(p.requires_grad for p in model.target_network.parameters())
    opt_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not opt_params & {id(p) for p in model.target_network.parameters()}
