"""NT-Xent on 2 gloo ranks, each with half of a global batch; writes each rank's loss and gradient.

    python tests/ddp/ntxent_worker.py OUT_DIR PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslkit.losses import NTXentLoss

WORLD, B, D, TEMPERATURE = 2, 5, 16, 0.1


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * B, D, generator=g, dtype=torch.float64), torch.randn(WORLD * B, D, generator=g, dtype=torch.float64)


def worker(rank: int, out: str, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    z1, z2 = global_batch()
    a = z1[rank * B : (rank + 1) * B].clone().requires_grad_(True)
    b = z2[rank * B : (rank + 1) * B].clone().requires_grad_(True)
    loss = NTXentLoss(temperature=TEMPERATURE, gather_distributed=True)(a, b)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad1": a.grad, "grad2": b.grad}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1], int(sys.argv[2])), nprocs=WORLD)
