"""``RunArtifacts``: at the end of a fit, export the best encoder and plot the probe curves."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from sslkit.checkpoints import run_info
from sslkit.export import (
    backbone_state_dict,
    encoder_metadata,
    export_checkpoint,
    export_encoder,
)
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
        best: Optional[str] = getattr(trainer.checkpoint_callback, "best_model_path", None) or None
        if best:
            return export_checkpoint(best, out)
        # No checkpoint to read: export the weights in memory, described the same way.
        info = run_info(pl_module)
        meta = encoder_metadata(
            dict(pl_module.hparams),
            method=type(pl_module).__name__,
            num_features=int(pl_module.num_features),
            image_size=info["image_size"],
            mean=info["mean"],
            std=info["std"],
            data=info["data"],
            num_classes=info["num_classes"],
            checkpoint=None,
            monitor=None,
            probe_accuracy=None,
        )
        return export_encoder(backbone_state_dict(pl_module.state_dict()), meta, out)
