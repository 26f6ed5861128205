"""``RunArtifacts``: at the end of a fit, export the best encoder and plot the probe curves."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from sslkit.export import backbone_state_dict, encoder_metadata, export_encoder
from sslkit.plot import plot_probe_curves


class RunArtifacts(Callback):
    """Fill the run folder (``trainer.log_dir``) when a fit ends, on rank 0.

    - ``encoder/``: the backbone of the best checkpoint (else the last weights),
      as ``model.safetensors`` + ``sslkit.json`` (see :mod:`sslkit.export`);
    - ``probe_accuracy.png``: online probe accuracy per epoch, from ``metrics.csv``.

    Args:
        export: write ``encoder/``.
        plot: write ``probe_accuracy.png``.
    """

    def __init__(self, export: bool = True, plot: bool = True) -> None:
        self.export = export
        self.plot = plot
        #: Paths written by the last fit.
        self.written: dict[str, Path] = {}

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.log_dir is None:
            return
        run_dir = Path(trainer.log_dir)
        if self.export and hasattr(pl_module, "backbone"):
            self.written["encoder"] = self._export(trainer, pl_module, run_dir / "encoder")
        metrics_csv = run_dir / "metrics.csv"
        if self.plot and metrics_csv.is_file():
            for logger in trainer.loggers:
                logger.save()
            try:
                self.written["plot"] = plot_probe_curves(metrics_csv, run_dir / "probe_accuracy.png")
            except ValueError as err:
                rank_zero_warn(f"RunArtifacts: no plot: {err}")

    def _export(self, trainer: Trainer, pl_module: LightningModule, out: Path) -> Path:
        ckpt_cb = trainer.checkpoint_callback
        best: Optional[str] = getattr(ckpt_cb, "best_model_path", None) or None
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            score = getattr(ckpt_cb, "best_model_score", None)
            source = {"checkpoint": str(Path(best).resolve()), "monitor": getattr(ckpt_cb, "monitor", None),
                      "probe_accuracy": float(score) if score is not None else None}
        else:
            state = pl_module.state_dict()
            source = {"checkpoint": None, "monitor": None, "probe_accuracy": None}
        dm = trainer.datamodule
        meta = encoder_metadata(
            dict(pl_module.hparams),
            method=type(pl_module).__name__,
            num_features=int(pl_module.num_features),
            image_size=getattr(dm, "image_size", None),
            mean=getattr(dm, "mean", None),
            std=getattr(dm, "std", None),
            **source,
        )
        return export_encoder(backbone_state_dict(state), meta, out)
