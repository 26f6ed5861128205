"""Weighted k-nearest-neighbour classification on L2-normalised features, computed in chunks."""

from __future__ import annotations

import torch

from sslkit.errors import InvalidInputError


@torch.no_grad()
def weighted_knn_scores(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """Class scores of weighted kNN (Wu et al., 2018, "Unsupervised Feature Learning via Non-Parametric
    Instance Discrimination", sec. 3.4).

    Each query's ``k`` most cosine-similar bank entries vote for their label
    with weight ``exp(similarity / temperature)``. The bank is scanned in
    chunks of ``chunk_size`` rows, keeping a running top-k, so memory is
    ``O(B * (chunk_size + k))`` whatever the bank size.

    Args:
        query: ``(B, D)`` L2-normalised features.
        bank: ``(N, D)`` L2-normalised features.
        bank_labels: ``(N,)`` integer labels in ``[0, num_classes)``.

    Returns: ``(B, num_classes)`` scores; ``argmax`` is the prediction.

    >>> bank = torch.eye(3); q = torch.tensor([[0.9, 0.1, 0.0]])
    >>> weighted_knn_scores(q, bank, torch.tensor([0, 1, 2]), 3, k=1).argmax(1).tolist()
    [0]
    """
    if bank.shape[0] == 0:
        raise InvalidInputError("weighted kNN: the feature bank is empty (no labelled training images?).")
    k = min(k, bank.shape[0])
    top_sim = torch.full((query.shape[0], 0), float("-inf"), device=query.device, dtype=query.dtype)
    top_idx = torch.zeros((query.shape[0], 0), dtype=torch.long, device=query.device)
    for start in range(0, bank.shape[0], chunk_size):
        sim = query @ bank[start : start + chunk_size].T  # (B, chunk)
        kk = min(k, sim.shape[1])
        sim, idx = sim.topk(kk, dim=1)
        merged_sim = torch.cat([top_sim, sim], dim=1)
        merged_idx = torch.cat([top_idx, idx + start], dim=1)
        top_sim, pos = merged_sim.topk(min(k, merged_sim.shape[1]), dim=1)
        top_idx = merged_idx.gather(1, pos)
    weights = (top_sim / temperature).exp()
    scores = torch.zeros(query.shape[0], num_classes, device=query.device, dtype=weights.dtype)
    return scores.scatter_add_(1, bank_labels[top_idx], weights)
