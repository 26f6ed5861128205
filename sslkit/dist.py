"""The only place in sslkit that talks to ``torch.distributed``.

Everything here is a no-op (or an identity) when no process group is
initialised, so the same code runs in a single process and under Lightning's
DDP strategies.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward sends every rank's gradient home.

    Backward all-reduces (sums) the incoming gradient over ranks and keeps this
    rank's slice, so each rank's input receives ``sum_q dL_q / dx_r``. We use an
    all-reduce rather than reduce-scatter because gloo (CPU) has no
    reduce-scatter.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch_size = x.shape[0]  # type: ignore[attr-defined]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        b = ctx.batch_size  # type: ignore[attr-defined]
        return grad[dist.get_rank() * b : (dist.get_rank() + 1) * b]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0, keeping gradients.

    Every rank must pass the same shape. Rank ``r``'s rows are at
    ``[r * B, (r + 1) * B)`` of the result.

    Shapes: ``(B, *) -> (world_size * B, *)``.

    >>> gather_with_grad(torch.ones(4, 2)).shape  # single process: identity
    torch.Size([4, 2])
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def all_reduce_mean_(tensors: Iterable[torch.Tensor]) -> None:
    """Average tensors over ranks, in place (floating tensors only).

    Used to keep a replicated module (e.g. an online probe that DDP does not
    wrap) identical on every rank: average gradients before its step.

    >>> t = torch.ones(3); all_reduce_mean_([t]); t
    tensor([1., 1., 1.])
    """
    if not is_distributed():
        return
    n = dist.get_world_size()
    for t in tensors:
        if t.is_floating_point():
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t.div_(n)


@torch.no_grad()
def gather_variable(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0 when ranks hold different numbers of rows (no gradients).

    Shapes: ``(B_r, *) -> (sum_r B_r, *)``, rank 0's rows first.

    >>> gather_variable(torch.ones(3, 2)).shape  # single process: identity
    torch.Size([3, 2])
    """
    if not is_distributed():
        return x
    n = dist.get_world_size()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(n)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(n)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])
