"""A fit or validate run, started as a script so that Lightning's DDP launcher can re-run it per rank.

    python tests/ddp/run.py '{"devices": 2, "out": "/tmp/x", "mode": "fit", ...}'

Each rank writes ``rank{R}.pt`` into ``out``: the evaluator's probe state, the
callback metrics, and the module's state dict. Used by tests/test_ddp*.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from sslkit.callbacks import KNNOnlineEvaluator, SSLOnlineEvaluator
from sslkit.data import DigitsDataModule
from sslkit.methods import BYOL, SimCLR

torch.set_num_threads(1)


def build(cfg: dict[str, Any]) -> tuple[pl.LightningModule, DigitsDataModule, SSLOnlineEvaluator]:
    common = dict(backbone="small_cnn", backbone_kwargs={"width": 8}, proj_hidden_dim=32, proj_dim=16,
                  optimizer="adamw", lr=1e-3, warmup_steps=0)
    model = BYOL(pred_hidden_dim=32, **common) if cfg.get("method") == "byol" else SimCLR(**common)
    dm = DigitsDataModule(
        batch_size=cfg.get("batch_size", 32), num_workers=0, image_size=16, val_fraction=cfg.get("val_fraction", 0.0995)
    )
    return model, dm, SSLOnlineEvaluator()


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
        callbacks=[evaluator, KNNOnlineEvaluator(k=20, chunk_size=256)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=cfg["out"],
    )
    if cfg.get("mode", "fit") == "fit":
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
    }
    torch.save(out, Path(cfg["out"]) / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
