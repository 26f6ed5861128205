"""LARS: SGD with layer-wise adaptive rate scaling (You et al., 2017)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import torch
from torch.optim import Optimizer

from sslkit.errors import InvalidInputError


class LARS(Optimizer):
    """SGD with momentum whose per-tensor step is scaled by a trust ratio.

    For each parameter ``w`` with gradient ``g`` in a group with ``lars=True``::

        g <- g + weight_decay * w
        g <- g * trust_coefficient * ||w|| / ||g||      (when both norms are > 0)
        v <- momentum * v + g;   w <- w - lr * v

    Groups with ``lars=False`` (sslkit puts biases and normalisation parameters
    there, as in the SimCLR and BYOL papers) take plain SGD-with-momentum steps,
    and their ``weight_decay`` is normally 0.

    Args:
        params: parameters or parameter groups (groups may set ``lars``).
        lr: learning rate.
        momentum: momentum factor.
        weight_decay: L2 penalty added to the gradient.
        trust_coefficient: the ``eta`` of the paper.
        eps: added to the denominator.

    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = LARS([w], lr=0.1)
    >>> w.sum().backward(); opt.step()
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise InvalidInputError(
                f"LARS: invalid arguments lr={lr}, momentum={momentum}, weight_decay={weight_decay}, "
                f"trust_coefficient={trust_coefficient}."
            )
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps, lars=True
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if group["weight_decay"] != 0:
                    d_p = d_p.add(p, alpha=group["weight_decay"])
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(d_p)
                    ratio = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * w_norm / (g_norm + group["eps"]),
                        torch.ones_like(w_norm),
                    )
                    d_p = d_p.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = d_p.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(d_p)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
