"""SimCLR (Chen et al., 2020)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.utilities import rank_zero_warn

from sslkit.heads import mlp
from sslkit.losses import NTXentLoss
from sslkit.methods.base import SSLMethod
from sslkit.methods.batches import Views


class SimCLR(SSLMethod):
    """SimCLR: two views of each image, a projection MLP, and the NT-Xent loss.

    Negatives are gathered from all ranks with gradients, so the contrastive
    batch is the global batch. Defaults follow the paper (LARS, lr 0.3 for a
    batch of 256, weight decay 1e-6, 10 warm-up epochs, projector
    ``num_features -> 2048 -> 128``, temperature 0.1); scale ``lr`` linearly with
    the global batch.

    Args:
        proj_hidden_dim: hidden width of the projector.
        proj_dim: output width of the projector.
        temperature: NT-Xent temperature.
        **kwargs: see :class:`~sslkit.methods.base.SSLMethod` (backbone, optimizer, schedule).

    >>> model = SimCLR(backbone="small_cnn", backbone_kwargs={"width": 8}, proj_hidden_dim=32, proj_dim=16)
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 64])
    """

    view_recipe = "simclr"

    def __init__(
        self,
        backbone: str = "small_cnn",
        backbone_kwargs: Optional[dict[str, Any]] = None,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        temperature: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone=backbone, backbone_kwargs=backbone_kwargs, **kwargs)
        self.projector = mlp(self.num_features, proj_hidden_dim, proj_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    #: Below this global batch NT-Xent has too few negatives to learn well (the paper uses 256-8192).
    min_global_batch: int = 32

    def on_fit_start(self) -> None:
        super().on_fit_start()
        batch = getattr(self.trainer.datamodule, "batch_size", None)
        if batch is not None and batch * self.trainer.world_size < self.min_global_batch:
            rank_zero_warn(
                f"SimCLR: a global batch of {batch * self.trainer.world_size} gives NT-Xent only "
                f"{2 * batch * self.trainer.world_size - 2} negatives per anchor; results suffer below "
                f"{self.min_global_batch}. Raise --data.batch_size (negatives are gathered from all devices)."
            )

    def ssl_loss(self, views: Views) -> tuple[torch.Tensor, torch.Tensor]:
        n = views[0].shape[0]
        # One forward of both views: one large batch is faster than two, and BN
        # sees both views as in the paper's implementation.
        features = self.backbone(torch.cat(views[:2]))
        z = self.projector(features)
        return self.criterion(z[:n], z[n:]), features[:n]
