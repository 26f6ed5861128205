"""Exponential moving average of one network into another (BYOL's target update)."""

from __future__ import annotations

import torch
from torch import nn

from sslkit.errors import InvalidInputError


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online`` for parameters; buffers are copied.

    BatchNorm running statistics are copied rather than averaged: the target
    network runs in train mode (batch statistics, as in the BYOL paper), so
    its running statistics are never used in training, and copying keeps the
    target a coherent network for anyone who evaluates it.

    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> ema_update_(a, b, momentum=0.0)
    >>> torch.equal(a.weight, b.weight)
    True
    """
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise InvalidInputError("ema_update_: target and online networks have different parameters.")
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
