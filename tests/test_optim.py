"""Weight-decay groups and LARS against a hand-written step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslkit.methods import SimCLR
from sslkit.optim import LARS, decay_param_groups
from tests.conftest import TINY_BACKBONE


def test_biases_and_norms_get_no_decay_and_no_lars() -> None:
    model = SimCLR(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8)
    decay, no_decay = decay_param_groups([model], weight_decay=0.1)
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert {id(p) for p in no_decay["params"]} == norm_params | biases
    assert {id(p) for p in decay["params"]} == weights
    assert decay["weight_decay"] == 0.1 and decay["lars"] is True
    assert no_decay["weight_decay"] == 0.0 and no_decay["lars"] is False


def test_lars_step_matches_reference() -> None:
    torch.manual_seed(0)
    w, b = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(4))
    w.grad, b.grad = torch.randn(4, 3), torch.randn(4)
    w0, b0, gw, gb = w.detach().clone(), b.detach().clone(), w.grad.clone(), b.grad.clone()
    opt = LARS(
        [{"params": [w], "weight_decay": 0.01, "lars": True}, {"params": [b], "weight_decay": 0.0, "lars": False}],
        lr=0.5, momentum=0.9, trust_coefficient=0.02,
    )
    opt.step()
    d = gw + 0.01 * w0
    ratio = 0.02 * w0.norm() / (d.norm() + 1e-8)
    torch.testing.assert_close(w.detach(), w0 - 0.5 * ratio * d)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb)  # excluded: plain SGD step
    # Second step uses momentum.
    w.grad = gw.clone()
    w1 = w.detach().clone()
    opt.step()
    d2 = gw + 0.01 * w1
    buf = 0.9 * (ratio * d) + 0.02 * w1.norm() / (d2.norm() + 1e-8) * d2
    torch.testing.assert_close(w.detach(), w1 - 0.5 * buf)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
def test_configure_optimizers_builds_each_optimizer(name: str) -> None:
    from lightning.pytorch import Trainer

    from sslkit.data import DigitsDataModule
    from tests.conftest import trainer_kwargs

    model = SimCLR(**TINY_BACKBONE, proj_hidden_dim=16, proj_dim=8, optimizer=name, lr=0.1, weight_decay=0.5)
    trainer = Trainer(**trainer_kwargs(max_steps=1, limit_val_batches=0))
    trainer.fit(model, DigitsDataModule(batch_size=32, num_workers=0, image_size=16))
    opt = trainer.optimizers[0]
    assert type(opt).__name__.lower() == name
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]


def test_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
        SimCLR(optimizer="rmsprop")
