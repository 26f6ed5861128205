"""``SSLMethod``: the six LightningModule sections every sslkit method shares."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningModule
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from sslkit.backbones import create_backbone
from sslkit.checkpoint_io import AtomicCheckpointIO
from sslkit.checkpoints import CKPT_KEY, resume_mismatch, run_info
from sslkit.dist import is_distributed
from sslkit.errors import InvalidInputError, NonFiniteLossError
from sslkit.methods.batches import Views, split_eval_batch, split_train_batch
from sslkit.optim import LARS, decay_param_groups, skip_accelerator_probe, warmup_cosine

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
SYNC_BN_ON_CPU = (
    "--trainer.sync_batchnorm true needs GPUs: torch has no SyncBatchNorm for CPU tensors. "
    "Drop the flag on CPU (each process then normalises with its own batch statistics)."
)


class SSLMethod(LightningModule):
    """Base class of sslkit's self-supervised methods.

    A subclass builds its heads in ``__init__`` and implements
    :meth:`ssl_loss`. This class provides:

    - ``training_step``: returns ``{"loss", "features", "labels"}``, where
      ``features`` are the *detached* backbone features ``(B, num_features)`` of
      the first view, so that :class:`~sslkit.callbacks.SSLOnlineEvaluator` needs
      no extra encoder forward;
    - ``validation_step`` / ``test_step``: ``{"features", "labels"}`` of clean images;
    - ``predict_step``: ``{"embeddings", "labels"}``;
    - ``configure_optimizers``: Adam, AdamW, SGD or LARS; biases and
      normalisation parameters without weight decay or LARS adaptation; linear
      warm-up then cosine decay, stepped every optimizer step.

    Args:
        backbone: a name for :func:`~sslkit.backbones.create_backbone`.
        backbone_kwargs: keyword arguments for it.
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``lars``.
        lr: peak learning rate (reached after warm-up).
        weight_decay: applied to weights only.
        momentum: for SGD and LARS.
        warmup_epochs: linear warm-up length in epochs (converted to optimizer steps).
        warmup_steps: warm-up length in optimizer steps; overrides ``warmup_epochs``.
        final_lr_ratio: the cosine ends at ``lr * final_lr_ratio``.
        trust_coefficient: LARS's ``eta``.
        nan_guard: stop training with :class:`~sslkit.errors.NonFiniteLossError` (naming
            the step, the value and the likely causes) when the loss is NaN or Inf,
            before the optimizer step, so no weight and no checkpoint takes it in.
            Costs one host sync per step.
    """

    #: The augmentation recipe the method's paper uses; datamodules read it when
    #: they are not told which views to make.
    view_recipe: ClassVar[str] = "simclr"
    #: Views per training sample that :meth:`ssl_loss` needs.
    num_views: ClassVar[int] = 2

    def __init__(
        self,
        backbone: str = "small_cnn",
        backbone_kwargs: Optional[dict[str, Any]] = None,
        optimizer: str = "lars",
        lr: float = 0.3,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 10.0,
        warmup_steps: Optional[int] = None,
        final_lr_ratio: float = 0.0,
        trust_coefficient: float = 0.001,
        nan_guard: bool = True,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"Unknown optimizer '{optimizer}'. Choose one of: {', '.join(OPTIMIZERS)}.")
        if lr <= 0:
            raise InvalidInputError(f"lr must be > 0, got {lr}.")
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.num_features: int = int(self.backbone.num_features)
        self._total_steps: Optional[int] = None

    # -- what subclasses implement ------------------------------------------------
    def ssl_loss(self, views: Views) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, backbone features of views[0])`` for one batch of views."""
        raise NotImplementedError

    # -- the six sections ------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features. Shapes: ``(B, C, H, W) -> (B, num_features)``."""
        return self.backbone(x)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        views, labels = split_train_batch(batch, self.num_views)
        loss, features = self.ssl_loss(views)
        if self.hparams.get("nan_guard", True):
            self._check_finite(loss)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        return {"loss": loss, "features": features.detach(), "labels": labels}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._eval_features(batch)

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._eval_features(batch)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        out = self._eval_features(batch)
        return {"embeddings": out["features"], "labels": out["labels"]}

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = decay_param_groups([self], hp.weight_decay)
        if hp.optimizer == "lars":
            opt: torch.optim.Optimizer = LARS(
                groups, lr=hp.lr, momentum=hp.momentum, trust_coefficient=hp.trust_coefficient
            )
        elif hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        skip_accelerator_probe(opt)  # a no-op unless every parameter is on the CPU
        total, warmup = self._schedule_lengths()
        sched = LambdaLR(opt, lambda step: warmup_cosine(step, warmup, total, hp.final_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def setup(self, stage: str) -> None:
        # Crash-safe checkpoint files (see sslkit.checkpoint_io; remote paths keep Lightning's writer).
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()

    def on_fit_start(self) -> None:
        self._check_batch_layout()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Method, data and preprocessing, so exports and `sslkit predict` need only the file.
        checkpoint[CKPT_KEY] = run_info(self)
        # sslkit's data randomness is keyed (sslkit.data.keyed); this is for modules that draw
        # from the global RNG while training (dropout, drop-path).
        checkpoint[CKPT_KEY]["rng"] = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights are loaded: name the mismatch instead of a wall of missing keys.
        problem = resume_mismatch(checkpoint, type(self), dict(self.hparams))
        if problem:
            raise InvalidInputError(problem)
        rng = (checkpoint.get(CKPT_KEY) or {}).get("rng")
        if rng:
            torch.set_rng_state(rng["cpu"])
            if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])

    # -- helpers -------------------------------------------------------------------------
    def _check_batch_layout(self) -> None:
        """Fail early, with the fix, on set-ups that would fail deep inside torch or train badly."""
        has_sync_bn = any(isinstance(m, nn.SyncBatchNorm) for m in self.modules())
        if has_sync_bn and self.device.type == "cpu":
            raise InvalidInputError(SYNC_BN_ON_CPU)
        batch = getattr(self.trainer.datamodule, "batch_size", None)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())
        if batch is not None and batch < 2 and has_bn:
            raise InvalidInputError(
                f"A per-device batch of {batch} cannot train BatchNorm layers (they need 2 or more samples). "
                "Raise --data.batch_size or run on fewer devices."
            )
    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole fit (gradient accumulation and ``max_steps`` included)."""
        if self._total_steps is None:
            self._schedule_lengths()
        assert self._total_steps is not None
        return self._total_steps

    def _schedule_lengths(self) -> tuple[int, int]:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise InvalidInputError(
                "The LR schedule needs a finite length: set --trainer.max_epochs or --trainer.max_steps."
            )
        self._total_steps = int(total)
        if self.hparams.warmup_steps is not None:
            warmup = int(self.hparams.warmup_steps)
        elif self.hparams.warmup_epochs == 0:
            warmup = 0
        else:
            if trainer.train_dataloader is None:  # max_steps without max_epochs: not loaded yet
                trainer.fit_loop.setup_data()
            batches = trainer.num_training_batches
            if not math.isfinite(batches):
                raise InvalidInputError(
                    "warmup_epochs needs a dataloader with a length; give warmup_steps instead."
                )
            steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
            warmup = round(self.hparams.warmup_epochs * steps_per_epoch)
        return self._total_steps, min(warmup, self._total_steps)

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Raise :class:`NonFiniteLossError` when the loss is not finite on any rank."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        if is_distributed():
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if not bad.item():
            return
        trainer = self.trainer
        value = loss.item() if not torch.isfinite(loss.detach()) else "not finite on another rank"
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none saved yet"
        temperature = self.hparams.get("temperature")
        causes = [
            f"the learning rate (lr={self.hparams.lr}, {self.hparams.optimizer}): lower it or lengthen the warm-up",
            f"the temperature (temperature={temperature}): too low a value overflows" if temperature else None,
            f"the precision ({trainer.precision}): '16-mixed' can overflow; try 'bf16-mixed' or '32-true'",
            "NaN or Inf in the input images",
        ]
        raise NonFiniteLossError(
            f"The loss is {value} at global step {trainer.global_step} (epoch {trainer.current_epoch}); "
            "training stopped before the optimizer step, so the weights and the last checkpoint "
            f"({last}) are unchanged. Likely causes: " + "; ".join(c for c in causes if c)
            + ". Change the setting in a new run (a resumed run keeps the checkpoint's settings and "
            "optimizer state), resume with --ckpt_path last if the cause was a one-off, or pass "
            "--model.nan_guard false to train on regardless."
        )

    def _eval_features(self, batch: Any) -> dict[str, Any]:
        x, labels = split_eval_batch(batch)
        return {"features": self.backbone(x), "labels": labels}
