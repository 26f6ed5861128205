"""BYOL (Grill et al., 2020)."""

from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import nn

from sslkit.errors import InvalidInputError
from sslkit.heads import mlp
from sslkit.losses import NegativeCosineLoss
from sslkit.methods.base import SSLMethod
from sslkit.methods.batches import Views
from sslkit.methods.ema import ema_update_
from sslkit.optim import cosine_momentum


class BYOL(SSLMethod):
    """BYOL: an online network with a predictor regresses a momentum target network.

    - Loss: the symmetric negative cosine ``L(p1, z2') + L(p2, z1')``, where
      ``p`` are online predictions and ``z'`` target projections.
    - Target: an EMA of the online backbone and projector, updated after every
      optimizer step. The momentum follows a cosine from ``base_momentum`` to
      ``final_momentum`` over the fit's real number of optimizer steps
      (``trainer.estimated_stepping_batches``, so gradient accumulation and
      ``max_steps`` are respected). The update after optimizer step ``k``
      (``k = 0 .. K-1``) uses ``cosine_momentum(k, K)``.
    - BatchNorm: the target runs in train mode, so it normalises with the
      current batch's statistics, as in the paper. Its running statistics are
      copied from the online network at each update (see
      :func:`~sslkit.methods.ema.ema_update_`). Under DDP, BN statistics are per
      rank unless ``sync_batchnorm`` is on.

    Defaults follow the paper (LARS, lr 0.2 for a batch of 256, weight decay
    1.5e-6, 10 warm-up epochs, heads ``4096 -> 256``, momentum 0.996 -> 1).

    Args:
        proj_hidden_dim, proj_dim: projector widths.
        pred_hidden_dim: hidden width of the predictor.
        base_momentum, final_momentum: ends of the target-momentum cosine.
        lr, weight_decay, **kwargs: see :class:`~sslkit.methods.base.SSLMethod`.

    >>> model = BYOL(backbone="small_cnn", backbone_kwargs={"width": 8}, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 64])
    """

    view_recipe = "byol"

    def __init__(
        self,
        backbone: str = "small_cnn",
        backbone_kwargs: Optional[dict[str, Any]] = None,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        lr: float = 0.2,
        weight_decay: float = 1.5e-6,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= base_momentum <= final_momentum <= 1.0:
            raise InvalidInputError(
                f"Need 0 <= base_momentum <= final_momentum <= 1, got {base_momentum} and {final_momentum}."
            )
        super().__init__(
            backbone=backbone, backbone_kwargs=backbone_kwargs, lr=lr, weight_decay=weight_decay, **kwargs
        )
        self.projector = mlp(self.num_features, proj_hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.criterion = NegativeCosineLoss()
        #: The momentum used by the latest target update.
        self.current_momentum: float = base_momentum

    @property
    def online_network(self) -> nn.Sequential:
        """Backbone then projector, the network the target tracks."""
        return nn.Sequential(self.backbone, self.projector)

    @property
    def target_network(self) -> nn.Sequential:
        return nn.Sequential(self.target_backbone, self.target_projector)

    def ssl_loss(self, views: Views) -> tuple[torch.Tensor, torch.Tensor]:
        n = views[0].shape[0]
        x = torch.cat(views[:2])
        features = self.backbone(x)
        p = self.predictor(self.projector(features))
        with torch.no_grad():
            z_target = self.target_projector(self.target_backbone(x))
        loss = self.criterion.symmetric(p[:n], p[n:], z_target[:n], z_target[n:])
        return loss, features[:n]

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # Lightning calls this once per real optimizer step (after gradient
        # accumulation), which is exactly when the target must move.
        step = self.trainer.global_step  # optimizer steps completed before this one
        super().optimizer_step(*args, **kwargs)
        hp = self.hparams
        self.current_momentum = cosine_momentum(step, self.total_steps, hp.base_momentum, hp.final_momentum)
        ema_update_(self.target_network, self.online_network, self.current_momentum)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("byol_momentum", self.current_momentum, on_step=True, on_epoch=False)
