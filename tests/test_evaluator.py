"""SSLOnlineEvaluator: detached probes, no extra forward, checkpoint state, label checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from sslkit.callbacks import SSLOnlineEvaluator
from sslkit.methods import SimCLR
from tests.conftest import TINY_BACKBONE, FixedViews, trainer_kwargs

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
    assert list(evaluator.probes) == ["linear", "mlp", "norm"] and evaluator.primary == "linear"


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


def _fit(dm: Any, epochs: int, callbacks: list[Any], ckpt_path: Any = None, **kw: Any) -> Any:
    import lightning.pytorch as pl

    pl.seed_everything(0)
    dm.setup()
    val = dm.val_dataloader()
    train = torch.utils.data.DataLoader(FixedViews(val.dataset), batch_size=32, drop_last=True)
    model = SimCLR(**TINY_BACKBONE, **HEADS, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    trainer = Trainer(**trainer_kwargs(max_epochs=epochs, limit_train_batches=4, limit_val_batches=2,
                                       callbacks=callbacks, **kw))
    trainer.fit(model, train, val, ckpt_path=ckpt_path)
    return model, trainer


def test_resumed_run_equals_uninterrupted_run(tiny_digits: Any, tmp_path: Any) -> None:
    # Data without randomness isolates what this test is about: the probes and their
    # optimizer states must come back from the checkpoint exactly (bit-exact resume of
    # the random data pipeline is its own matter).
    from lightning.pytorch.callbacks import ModelCheckpoint

    straight = SSLOnlineEvaluator(num_classes=10)
    model_a, trainer_a = _fit(tiny_digits, 2, [straight])

    class StopAfterFirstEpoch(Callback):  # an interruption: same max_epochs, hence the same LR schedule
        def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
            trainer.should_stop = True

    first = SSLOnlineEvaluator(num_classes=10)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _, trainer_1 = _fit(tiny_digits, 2, [first, ckpt, StopAfterFirstEpoch()], enable_checkpointing=True)
    assert trainer_1.current_epoch == 1 and trainer_1.global_step == 4
    resumed = SSLOnlineEvaluator(num_classes=10)
    model_b, trainer_b = _fit(tiny_digits, 2, [resumed], ckpt_path=str(tmp_path / "last.ckpt"))

    for k, v in model_a.state_dict().items():
        assert torch.equal(v, model_b.state_dict()[k]), k
    for k, v in straight.probes.state_dict().items():
        assert torch.equal(v, resumed.probes.state_dict()[k]), k
    for kind in ("linear", "mlp"):
        a, b = straight.optimizers[kind].state_dict()["state"], resumed.optimizers[kind].state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    assert float(trainer_a.callback_metrics["online_val_acc"]) == float(trainer_b.callback_metrics["online_val_acc"])
    # A resume that lost the probe state would differ: a fresh evaluator's probes are not the trained ones.
    fresh = SSLOnlineEvaluator()
    _setup(fresh, model_b)
    assert not torch.equal(fresh.probes["linear"][-1].weight, resumed.probes["linear"][-1].weight)


def test_fallback_forward_for_modules_outside_the_contract(tiny_digits: Any) -> None:
    import lightning.pytorch as pl

    from sslkit.backbones import create_backbone
    from sslkit.losses import NTXentLoss

    class BoltsStyle(pl.LightningModule):
        """Written for pl_bolts: batches ((x1, x2, x_eval), y), training_step returns only the loss."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = create_backbone("small_cnn", width=8)
            self.loss = NTXentLoss(0.5)
            self.modes: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.modes.append(self.training)
            return self.encoder(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            (x1, x2, _), _ = batch
            return self.loss(self.encoder(x1), self.encoder(x2))

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            return None

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    tiny_digits.setup()
    val = tiny_digits.val_dataloader()
    train = torch.utils.data.DataLoader(FixedViews(val.dataset, eval_view=True), batch_size=16, drop_last=True)
    module = BoltsStyle()
    evaluator = SSLOnlineEvaluator(z_dim=64, num_classes=10)
    trainer = Trainer(**trainer_kwargs(max_steps=3, limit_val_batches=2, val_check_interval=3, callbacks=[evaluator]))
    trainer.fit(module, train, val)
    # One no-grad forward (through the module, in eval mode) per training batch and per validation batch.
    assert module.modes == [False] * (3 + 2)
    assert module.training  # mode restored
    assert "online_val_acc" in trainer.callback_metrics


def test_unreadable_batch_names_the_contract() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator()
    _setup(evaluator, model)
    with pytest.raises(ValueError, match=r"cannot read this step.*Return \{'loss', 'features', 'labels'\}"):
        evaluator.on_train_batch_end(None, model, {"loss": torch.tensor(1.0)}, {"image": 1}, 0)  # type: ignore[arg-type]


def test_unlabelled_samples_are_skipped() -> None:
    model = SimCLR(**TINY_BACKBONE, **HEADS)
    evaluator = SSLOnlineEvaluator()
    _setup(evaluator, model)
    feats = torch.randn(8, model.num_features)
    labels = torch.tensor([-1, 3, -1, 5, 2, -1, 1, 0])
    evaluator.on_train_batch_end(None, model, {"features": feats, "labels": labels}, None, 0)  # type: ignore[arg-type]
    assert int(evaluator._train_totals["linear"][2]) == 5  # only the 5 labelled samples were scored


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_probes_train_in_float32_under_bf16(tiny_digits: Any, precision: str) -> None:
    evaluator = SSLOnlineEvaluator()
    model = SimCLR(**TINY_BACKBONE, **HEADS, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    trainer = Trainer(**trainer_kwargs(max_steps=4, limit_val_batches=2, val_check_interval=4,
                                       precision=precision, callbacks=[evaluator]))
    trainer.fit(model, tiny_digits)
    assert all(p.dtype == torch.float32 for p in evaluator.probes.parameters())
    acc = float(trainer.callback_metrics["online_val_acc"])
    assert 0.0 <= acc <= 1.0 and torch.isfinite(trainer.callback_metrics["online_val_loss"])
    if precision == "bf16-true":
        assert next(model.backbone.parameters()).dtype == torch.bfloat16


def test_two_named_evaluators_have_distinct_keys_and_own_data(tiny_digits: Any) -> None:
    tiny_digits.setup()
    labelled = torch.utils.data.DataLoader(tiny_digits.val_dataloader().dataset, batch_size=32)
    main_eval = SSLOnlineEvaluator()
    other = SSLOnlineEvaluator(name="subset", probes=("linear",), train_dataloader=labelled,
                               val_dataloader=labelled, every_n_train_steps=2)
    assert main_eval.state_key != other.state_key
    model = SimCLR(**TINY_BACKBONE, **HEADS, optimizer="adamw", lr=1e-3, warmup_epochs=0)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    trainer = Trainer(**trainer_kwargs(max_steps=4, limit_val_batches=2, val_check_interval=4,
                                       callbacks=[main_eval, other]))
    trainer.fit(model, tiny_digits)
    m = trainer.callback_metrics
    assert {"online/subset/linear/val_acc", "online/linear/val_acc", "online_val_acc"} <= set(m)
    assert not any(k.startswith("online/subset/mlp") for k in m)
    # 4 training forwards + 2 validation forwards + 2 probe batches (every 2nd step) + 12 val batches (360/32).
    assert len(calls) == 4 + 2 + 2 + 12
