"""Reliability: bit-exact resume with the real random data pipeline, kill -9 and resume, atomic checkpoints,
and the NaN guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from sslkit.callbacks import SSLOnlineEvaluator
from sslkit.data import DigitsDataModule
from sslkit.methods import BYOL, SimCLR
from tests.conftest import TINY_BACKBONE, trainer_kwargs

METHODS = {"simclr": SimCLR, "byol": BYOL}


class StopAfterEpoch(Callback):
    """An interruption at an epoch boundary, with the same max_epochs (so the same LR schedule)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def _fit(method: str, batched: bool, callbacks: list[Any], ckpt_path: Any = None, **kw: Any) -> tuple[Any, Trainer]:
    pl.seed_everything(0)
    model = METHODS[method](**TINY_BACKBONE, optimizer="adamw", lr=2e-3, warmup_epochs=1)
    dm = DigitsDataModule(batch_size=64, num_workers=0, image_size=16, batched_views=batched)
    kw = {"max_epochs": 3, "limit_train_batches": 4, "limit_val_batches": 2, **kw}
    trainer = Trainer(**trainer_kwargs(callbacks=callbacks, **kw))
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model, trainer


def _state(model: Any, trainer: Trainer, evaluator: SSLOnlineEvaluator) -> dict[str, Any]:
    return {
        "model": model.state_dict(),  # encoder, heads, BYOL's target network
        "optimizer": trainer.optimizers[0].state_dict(),
        "scheduler": trainer.lr_scheduler_configs[0].scheduler.state_dict(),
        "probes": evaluator.probes.state_dict(),
        "probe_optimizers": {k: o.state_dict() for k, o in evaluator.optimizers.items()},
        "global_step": trainer.global_step,
        "online_val_acc": float(trainer.callback_metrics["online_val_acc"]),
    }


def _assert_equal(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{path}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.slow
@pytest.mark.parametrize("method, batched", [("simclr", True), ("byol", True), ("simclr", False)])
def test_resume_at_an_epoch_boundary_is_bit_exact(method: str, batched: bool, tmp_path: Path) -> None:
    straight = SSLOnlineEvaluator()
    model_a, trainer_a = _fit(method, batched, [straight])

    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _fit(method, batched, [SSLOnlineEvaluator(), ckpt, StopAfterEpoch(0)], enable_checkpointing=True)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = SSLOnlineEvaluator()
    model_b, trainer_b = _fit(method, batched, [resumed], ckpt_path=str(tmp_path / "last.ckpt"))

    _assert_equal(_state(model_a, trainer_a, straight), _state(model_b, trainer_b, resumed))
    if method == "byol":  # the EMA schedule position came back too
        assert model_a.current_momentum == model_b.current_momentum


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sslkit.checkpoint_io as cio

    io = cio.AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def dies_halfway(obj: Any, f: Any) -> None:  # a kill (here: an error) in the middle of the write
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("killed")

    monkeypatch.setattr(cio.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="killed"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_sslkit_methods_install_atomic_checkpoint_writes(tmp_path: Path) -> None:
    from sslkit.checkpoint_io import AtomicCheckpointIO

    _, trainer = _fit("simclr", True, [], max_epochs=1, limit_train_batches=1)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


class _NaNAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.projector.parameters()).fill_(float("nan"))


def test_nan_guard_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2)
    pl.seed_everything(0)
    model = SimCLR(**TINY_BACKBONE, optimizer="adamw", lr=2e-3, warmup_epochs=0)
    dm = DigitsDataModule(batch_size=64, num_workers=0, image_size=16)
    trainer = Trainer(**trainer_kwargs(max_epochs=1, limit_train_batches=6, callbacks=[ckpt, _NaNAtStep(3)],
                                       enable_checkpointing=True, limit_val_batches=0))
    with pytest.raises(FloatingPointError, match=r"loss is nan at global step 3 .*learning rate.*temperature=0.1.*precision"):
        trainer.fit(model, dm)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_nan_guard_can_be_switched_off() -> None:
    pl.seed_everything(0)
    model = SimCLR(**TINY_BACKBONE, warmup_epochs=0, nan_guard=False)
    dm = DigitsDataModule(batch_size=64, num_workers=0, image_size=16)
    trainer = Trainer(**trainer_kwargs(max_epochs=1, limit_train_batches=2, callbacks=[_NaNAtStep(0)], limit_val_batches=0))
    trainer.fit(model, dm)  # no error: the user asked for no guard
    assert not torch.isfinite(next(model.projector.parameters())).all()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_with_ckpt_path_last(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "sslkit.cli", "fit", "--data.image_size", "16", "--data.batch_size", "32",
        "--data.num_workers", "0", "--model.backbone_kwargs", "{width: 8}", "--trainer.enable_progress_bar", "false",
        "--trainer.max_epochs", "6", "--trainer.limit_train_batches", "40", "--trainer.limit_val_batches", "2",
    ]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / "runs" / "sslkit" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    try:
        # Kill once the run is into its third epoch: last.ckpt then holds 2 finished epochs.
        while time.time() < deadline:
            if last.is_file() and torch.load(last, weights_only=True, map_location="cpu")["epoch"] >= 1:
                time.sleep(0.5)  # mid-epoch 3
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run did not reach its second checkpoint in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = torch.load(last, weights_only=True, map_location="cpu")  # loadable after the kill
    assert killed_at["epoch"] < 5
    res = subprocess.run([*args, "--ckpt_path", "last"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming from {last}" in res.stdout + res.stderr or "resuming from runs/sslkit/version_0" in res.stdout + res.stderr
    final = torch.load(tmp_path / "runs" / "sslkit" / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == 5 and final["global_step"] == 6 * 40
    # Lost work is at most the epoch in progress: the resumed run did only the remaining epochs.
    metrics = (tmp_path / "runs" / "sslkit" / "version_1" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    epochs = {int(float(row.split(",")[header.index("epoch")])) for row in metrics[1:] if row.split(",")[header.index("epoch")]}
    assert min(epochs) == killed_at["epoch"] + 1


def test_the_data_seed_travels_in_the_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")
    state = DigitsDataModule().state_dict()
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")  # a resume started with another --seed
    resumed = DigitsDataModule()
    resumed.load_state_dict(state)
    assert state == {"seed": 5} and resumed.train_seed() == 5


def test_overfit_batches_with_the_keyed_sampler() -> None:
    pl.seed_everything(0)
    trainer = Trainer(**trainer_kwargs(max_epochs=1, overfit_batches=2, limit_val_batches=0))
    model = SimCLR(**TINY_BACKBONE, warmup_epochs=0)
    trainer.fit(model, DigitsDataModule(batch_size=32, num_workers=0, image_size=16))
    assert trainer.global_step == 2
