"""The symmetric negative-cosine (normalised MSE) loss of BYOL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.errors import InvalidInputError


class NegativeCosineLoss(nn.Module):
    """BYOL's regression loss (Grill et al., 2020, "Bootstrap Your Own Latent", eq. 2).

    ``2 - 2 * cos(p, z)`` averaged over the batch, which equals the MSE of the
    L2-normalised vectors. The target ``z`` is detached. :meth:`symmetric` sums
    the two directions, ``L(p1, z2) + L(p2, z1)``, as in the paper.

    Shapes: ``p, z: (N, D)`` -> scalar in ``[0, 4]``.

    >>> loss = NegativeCosineLoss()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> float(loss(x, 3 * x)), float(loss(x, -x))  # same and opposite directions
    (0.0, 4.0)
    """

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if p.ndim != 2 or p.shape != z.shape:
            raise InvalidInputError(
                f"NegativeCosineLoss expects two (N, D) tensors of equal shape, got "
                f"{tuple(p.shape)} and {tuple(z.shape)}."
            )
        cos = F.cosine_similarity(p.float(), z.detach().float(), dim=1)
        return (2 - 2 * cos).mean()

    def symmetric(
        self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
    ) -> torch.Tensor:
        """``L(p1, z2) + L(p2, z1)``: each view's prediction regresses the other view's target."""
        return self(p1, z2) + self(p2, z1)
