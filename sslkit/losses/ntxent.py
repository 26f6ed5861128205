"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.dist import gather_with_grad, rank
from sslkit.errors import InvalidInputError


class NTXentLoss(nn.Module):
    """NT-Xent loss (Chen et al., 2020, "A Simple Framework for Contrastive
    Learning of Visual Representations", eq. 1).

    For ``2N`` embeddings (two views of ``N`` images), each embedding's positive
    is the other view of its image and its negatives are the other ``2N - 2``
    embeddings. With ``gather_distributed=True`` the negatives come from every
    rank (gathered with gradients), so ``N`` is the global batch.

    The self-similarity is *masked out* of the softmax denominator (not
    subtracted as a constant), and the loss is computed as a cross-entropy over
    float32 logits, so it stays finite for small temperatures such as 0.01.

    Args:
        temperature: softmax temperature ``tau > 0``.
        gather_distributed: gather negatives from all ranks.

    Shapes: ``z1, z2: (N, D)`` -> scalar.

    >>> loss = NTXentLoss(temperature=0.1)
    >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    >>> loss(z1, z2).shape
    torch.Size([])
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise InvalidInputError(f"NTXentLoss: temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.ndim != 2 or z1.shape != z2.shape:
            raise InvalidInputError(
                f"NTXentLoss expects two (N, D) tensors of equal shape, got {tuple(z1.shape)} "
                f"and {tuple(z2.shape)}."
            )
        n = z1.shape[0]
        # float32 logits: under fp16/bf16 autocast, 1/temperature overflows or loses precision.
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        if self.gather_distributed:
            a1, a2 = gather_with_grad(z1), gather_with_grad(z2)
            offset = rank() * n
        else:
            a1, a2 = z1, z2
            offset = 0
        total = a1.shape[0]
        if total < 2:
            raise InvalidInputError(
                "NTXentLoss needs at least 2 images in the (global) batch to have a negative; "
                "increase the batch size."
            )
        anchors = torch.cat([z1, z2], dim=0)  # (2n, D)
        candidates = torch.cat([a1, a2], dim=0)  # (2 * total, D)
        logits = anchors @ candidates.T / self.temperature  # (2n, 2 * total)

        local = torch.arange(n, device=z1.device) + offset
        self_idx = torch.cat([local, local + total])
        pos_idx = torch.cat([local + total, local])
        rows = torch.arange(2 * n, device=z1.device)
        logits[rows, self_idx] = float("-inf")
        return F.cross_entropy(logits, pos_idx)
