"""Seeded draws from torch's CPU RNG that leave every global RNG state as it was."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Inside the block, torch's default CPU generator starts from ``seed``; after it, the CPU
    state is restored. CUDA generators are not touched (``torch.manual_seed`` would reseed them all).

    >>> with seeded_cpu_rng(0):
    ...     a = torch.rand(2)
    >>> with seeded_cpu_rng(0):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
