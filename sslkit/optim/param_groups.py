"""Split parameters into those that take weight decay and those that do not."""

from __future__ import annotations

from typing import Any, Iterable

from torch import nn


def decay_param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights with decay (and LARS adaptation), and the rest without.

    Biases and normalisation parameters (every parameter with fewer than 2
    dimensions) get ``weight_decay=0`` and ``lars=False``, as in the SimCLR and
    BYOL papers. Frozen parameters are left out.

    >>> groups = decay_param_groups([nn.Linear(4, 2)], weight_decay=1e-4)
    >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
    [(1, 0.0001), (1, 0.0)]
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim < 2 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]
