"""Randomness keyed by (seed, epoch, sample): training data that does not depend on global RNG state.

The training sampler yields ``(epoch, index)`` pairs; each sample's (or each
batch's) augmentations draw from a generator seeded with a key made of the
seed, the epoch and the sample index. The views of epoch ``e`` are therefore the
same whatever happened before: a resumed run sees exactly the data of an
uninterrupted one, and the number of loader workers does not change the views.

Two pipelines use it:

- per sample (any dataset, e.g. image folders): :class:`KeyedDataset` applies the
  transform under a forked RNG seeded with the sample's key;
- batched (in-memory uint8 tensors): :class:`KeyedDataset` returns the raw image
  and the key; :func:`collate_raw` makes a :class:`RawTrainBatch`, whose views are
  made on the device (:meth:`sslkit.data.SSLDataModule.make_views_of`), or
  :class:`BatchedViewsCollate` makes them in a loader worker (CPU training).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple, Optional

import torch
from torch.utils.data import Dataset, DistributedSampler

from sslkit.rng import seeded_cpu_rng

_MASK = (1 << 63) - 1


def sample_key(seed: int, epoch: int, index: int) -> int:
    """A 63-bit generator seed for one sample of one epoch (a fixed integer mix, no global state).

    >>> sample_key(0, 1, 2) == sample_key(0, 1, 2) != sample_key(0, 2, 1)
    True
    """
    key = (seed & _MASK) * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xBF58476D1CE4E5B9 + (index + 1) * 0x94D049BB133111EB
    key &= _MASK
    key ^= key >> 31  # spread the bits (splitmix64-style finaliser)
    key = (key * 0xD6E8FEB86659FD93) & _MASK
    return key ^ (key >> 32)


class EpochKeyedSampler(DistributedSampler):
    """``DistributedSampler`` whose items are ``(epoch, index)``; also used with one process.

    The order of epoch ``e`` is a permutation seeded by ``seed + e`` (as
    ``DistributedSampler``), so it does not depend on the global RNG either.
    Lightning calls :meth:`set_epoch` at the start of every epoch, resumed ones included.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        for index in super().__iter__():
            yield epoch, index


class RawTrainBatch(NamedTuple):
    """A training batch before augmentation: uint8 ``images (B, C, H, W)``, ``labels (B,)``, one ``key``."""

    images: torch.Tensor
    labels: torch.Tensor
    key: int


class KeyedDataset(Dataset):
    """Items ``(epoch, index)`` of :class:`EpochKeyedSampler` -> training samples.

    With ``transform`` (per-sample pipeline): ``(transform(image), label)``, the
    transform drawing from the global RNG forked and seeded with the sample's key.
    Without: ``(image, label, key)`` for :func:`collate_raw`.
    """

    def __init__(self, base: Dataset, seed: int, transform: Optional[Callable[[Any], Any]] = None) -> None:
        self.base = base
        self.seed = seed
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[Any, ...]:
        # A plain index comes from samplers Lightning substitutes (e.g. overfit_batches): epoch 0.
        epoch, index = item if isinstance(item, tuple) else (0, int(item))
        image, label = self.base[index]
        key = sample_key(self.seed, epoch, index)
        if self.transform is None:
            return image, label, key
        with seeded_cpu_rng(key):
            return self.transform(image), label


def collate_raw(items: list[tuple[torch.Tensor, int, int]]) -> RawTrainBatch:
    """Stack uint8 images into a :class:`RawTrainBatch`; its key is the first sample's (unique per batch)."""
    images = torch.stack([item[0] for item in items])
    labels = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
    return RawTrainBatch(images, labels, int(items[0][2]))


class BatchedViewsCollate:
    """Collate that makes the batch's views in the loader worker: items -> ``([view_1, ...], labels)``.

    The same views as on the device (:meth:`sslkit.data.SSLDataModule.make_views_of`) for
    the same key, computed on the CPU while the main process trains (CPU training).
    """

    def __init__(self, views: Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]]) -> None:
        self.views = views

    def __call__(self, items: list[tuple[torch.Tensor, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        raw = collate_raw(items)
        return self.views(raw.images, torch.Generator().manual_seed(raw.key)), raw.labels
