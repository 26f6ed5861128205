"""SSLOnlineEvaluator: detached probes, no extra forward, checkpoint state, label checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer

from sslkit.callbacks import SSLOnlineEvaluator
from sslkit.methods import SimCLR
from tests.conftest import TINY_BACKBONE, trainer_kwargs

HEADS = {"proj_hidden_dim": 16, "proj_dim": 8}


def _setup(evaluator: SSLOnlineEvaluator, model: Any, num_classes: int = 10) -> None:
    stub = SimpleNamespace(datamodule=SimpleNamespace(num_classes=num_classes))
    evaluator.setup(stub, model, "fit")  # type: ignore[arg-type]


def _batch(b: int = 8) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, 3, 16, 16, generator=g) for _ in range(2)], torch.arange(b) % 10


def test_probe_is_detached_from_the_encoder() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator()
    _setup(evaluator, model)
    out = model.training_step(_batch(), 0)
    out["loss"].backward()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    probe_before = [p.detach().clone() for p in evaluator.probes.parameters()]
    evaluator.on_train_batch_end(None, model, out, _batch(), 0)  # type: ignore[arg-type]
    for n, p in model.named_parameters():
        assert torch.equal(p, params[n]) and torch.equal(p.grad, grads[n]), n
    assert any(not torch.equal(a, b) for a, b in zip(probe_before, evaluator.probes.parameters()))


def test_default_probes_and_dimensions_come_from_module_and_datamodule() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator()
    _setup(evaluator, model, num_classes=7)
    assert (evaluator.z_dim, evaluator.num_classes) == (model.num_features, 7)
    assert list(evaluator.probes) == ["linear", "mlp"] and evaluator.primary == "linear"


def test_probe_initialisation_is_seeded_and_leaves_global_rng_alone() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    a, b = SSLOnlineEvaluator(), SSLOnlineEvaluator()
    torch.manual_seed(1)
    state = torch.get_rng_state()
    _setup(a, model)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    _setup(b, model)
    for p, q in zip(a.probes.parameters(), b.probes.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "labels, match",
    [
        (torch.tensor([0, 1, 2, 10, 0, 1, 2, 3]), r"labels must lie in \[0, num_classes=10\); got a label 10"),
        (torch.zeros(8), "integer tensor"),
    ],
)
def test_bad_labels_get_a_clear_error(labels: torch.Tensor, match: str) -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator()
    _setup(evaluator, model)
    out = {"loss": torch.tensor(0.0), "features": torch.randn(8, model.num_features), "labels": labels}
    with pytest.raises(ValueError, match=match):
        evaluator.on_train_batch_end(None, model, out, None, 0)  # type: ignore[arg-type]


def test_z_dim_mismatch() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator(z_dim=5)
    _setup(evaluator, model)
    out = {"features": torch.randn(8, model.num_features), "labels": torch.arange(8)}
    with pytest.raises(ValueError, match="z_dim is 5"):
        evaluator.on_train_batch_end(None, model, out, None, 0)  # type: ignore[arg-type]


def test_fit_counts_one_backbone_forward_per_batch_and_round_trips_state(tiny_digits: Any) -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    evaluator = SSLOnlineEvaluator()
    trainer = Trainer(**trainer_kwargs(max_steps=3, limit_val_batches=2, val_check_interval=3, callbacks=[evaluator]))
    trainer.fit(model, tiny_digits)
    # 3 training batches (both views in one forward) + 2 validation batches: no extra forward.
    assert len(calls) == 3 + 2
    assert 0.0 <= float(trainer.callback_metrics["online_val_acc"]) <= 1.0
    assert "online/mlp/val_acc" in trainer.callback_metrics and "online_train_acc" in trainer.callback_metrics

    state = evaluator.state_dict()
    restored = SSLOnlineEvaluator()
    restored.load_state_dict(state)
    _setup(restored, model)
    for p, q in zip(evaluator.probes.state_dict().values(), restored.probes.state_dict().values()):
        assert torch.equal(p, q)
    for kind in ("linear", "mlp"):
        a = evaluator.optimizers[kind].state_dict()["state"]
        b = restored.optimizers[kind].state_dict()["state"]
        assert a.keys() == b.keys() and all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)


def test_validate_from_checkpoint_restores_the_probes(tiny_digits: Any, tmp_path: Any) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    model = SimCLR(**TINY_BACKBONE, **HEADS, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = Trainer(**trainer_kwargs(
        max_epochs=2, limit_train_batches=5, enable_checkpointing=True, callbacks=[SSLOnlineEvaluator(), ckpt]
    ))
    trainer.fit(model, tiny_digits)
    fitted = float(trainer.callback_metrics["online_val_acc"])

    fresh = SSLOnlineEvaluator()
    result = Trainer(**trainer_kwargs(callbacks=[fresh])).validate(
        SimCLR(**TINY_BACKBONE, **HEADS), tiny_digits, ckpt_path=str(tmp_path / "last.ckpt")
    )
    assert result[0]["online_val_acc"] == pytest.approx(fitted, abs=1e-6)
