"""A fit or validate run, started as a script so that Lightning's DDP launcher can re-run it per rank.

    python tests/ddp/run.py '{"devices": 2, "out": "/tmp/x", "mode": "fit", ...}'

Each rank writes ``rank{R}.pt`` into ``out``: the evaluator's probe state, the
callback metrics, and the module's state dict. Used by tests/test_ddp*.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from sslkit.callbacks import KNNOnlineEvaluator, SSLOnlineEvaluator
from sslkit.data import DigitsDataModule, eval_transform
from sslkit.data.datasets import TransformedDataset
from sslkit.methods import BYOL, SimCLR
from tests.conftest import FixedViews

torch.set_num_threads(1)


def build(cfg: dict[str, Any]) -> tuple[pl.LightningModule, DigitsDataModule, SSLOnlineEvaluator]:
    common = dict(backbone="small_cnn", backbone_kwargs={"width": 8}, proj_hidden_dim=32, proj_dim=16,
                  optimizer=cfg.get("optimizer", "adamw"), lr=cfg.get("lr", 1e-3), warmup_steps=0)
    model = BYOL(pred_hidden_dim=32, **common) if cfg.get("method") == "byol" else SimCLR(**common)
    dm = DigitsDataModule(
        batch_size=cfg.get("batch_size", 32), num_workers=0, image_size=16, val_fraction=cfg.get("val_fraction", 0.0995)
    )
    return model, dm, SSLOnlineEvaluator(num_classes=10)


class RankOrderSampler(torch.utils.data.Sampler):
    """Single-process order that reproduces 2-rank DDP micro-batches: per step, rank 0's
    indices (0, 2, 4, ...) then rank 1's (1, 3, 5, ...), as DistributedSampler(shuffle=False) deals them."""

    def __init__(self, n: int, batch: int, world: int = 2) -> None:
        self.n, self.batch, self.world = n, batch, world

    def __len__(self) -> int:
        return (self.n // (self.batch * self.world)) * self.batch * self.world

    def __iter__(self) -> Any:
        for step in range(self.n // (self.batch * self.world)):
            start = step * self.batch * self.world
            for r in range(self.world):
                yield from range(start + r, start + self.batch * self.world, self.world)


def train_loader(dm: DigitsDataModule, cfg: dict[str, Any]) -> Any:
    dm.setup()
    views = FixedViews(TransformedDataset(dm.splits[0], eval_transform(dm.image_size, dm.mean, dm.std)))
    batch = cfg.get("batch_size", 32)
    sampler: Any = None
    if cfg.get("rank_order"):
        sampler = RankOrderSampler(len(views), batch)
    elif cfg.get("devices", 1) > 1:  # Lightning would shuffle; deal indices like DistributedSampler(shuffle=False)
        sampler = torch.utils.data.DistributedSampler(
            views, num_replicas=cfg["devices"], rank=int(os.environ.get("LOCAL_RANK", 0)), shuffle=False
        )
    return torch.utils.data.DataLoader(views, batch_size=batch, sampler=sampler, shuffle=False, drop_last=True)


class BatchRecorder(pl.Callback):
    """Keeps the labels of each training batch, to check which samples each rank saw;
    with ``crash_rank`` it makes that rank fail at its second step."""

    def __init__(self, crash_rank: int = -1) -> None:
        self.labels: list[list[int]] = []
        self.crash_rank = crash_rank

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == self.crash_rank and batch_idx == 1:
            raise RuntimeError(f"deliberate crash on rank {self.crash_rank}")
        self.labels.append(batch[1].tolist())


def main(cfg: dict[str, Any]) -> None:
    pl.seed_everything(cfg.get("seed", 0))
    model, dm, evaluator = build(cfg)
    devices = cfg.get("devices", 1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_steps=cfg.get("max_steps", 4),
        limit_val_batches=cfg.get("limit_val_batches", 1.0),
        val_check_interval=cfg.get("val_check_interval"),
        sync_batchnorm=cfg.get("sync_batchnorm", False),
        accumulate_grad_batches=cfg.get("accumulate_grad_batches", 1),
        callbacks=[evaluator, KNNOnlineEvaluator(k=20, chunk_size=256, num_classes=10), recorder := BatchRecorder(cfg.get("crash_rank", -1))],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=cfg["out"],
    )
    if cfg.get("mode", "fit") == "fit":
        if cfg.get("fixed_views"):
            trainer.fit(model, train_loader(dm, cfg), dm.val_dataloader(), ckpt_path=cfg.get("ckpt_path"))
        else:
            trainer.fit(model, dm, ckpt_path=cfg.get("ckpt_path"))
        if cfg.get("save_ckpt"):
            trainer.save_checkpoint(cfg["save_ckpt"])
    else:
        trainer.validate(model, dm, ckpt_path=cfg["ckpt_path"])
    out = {
        "probes": evaluator.state_dict()["probes"],
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "model": model.state_dict(),
        "world_size": trainer.world_size,
        "batch_labels": recorder.labels,
    }
    torch.save(out, Path(cfg["out"]) / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
