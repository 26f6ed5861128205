"""Small dataset wrappers shared by the datamodules."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset

from sslkit.errors import InvalidInputError


class ImageTensorDataset(Dataset):
    """Images kept in memory as one uint8 tensor, with integer labels.

    Small datasets (digits, CIFAR) live here: no decoding per sample, and
    workers share the tensor without copies.

    Shapes: ``images (N, C, H, W) uint8``, ``labels (N,) int64``; an item is
    ``(image (C, H, W) uint8, label int)``.

    >>> ds = ImageTensorDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    >>> ds[1][0].shape, ds[1][1]
    (torch.Size([3, 8, 8]), 1)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise InvalidInputError(f"ImageTensorDataset needs uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}.")
        if labels.shape != (images.shape[0],):
            raise InvalidInputError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}.")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class TransformedDataset(Dataset):
    """Apply ``transform`` to the image of each ``(image, label)`` item of ``base``.

    Lets one raw split serve both augmented training views and clean
    evaluation images.

    >>> base = ImageTensorDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    >>> TransformedDataset(base, lambda x: x.float())[0][0].dtype
    torch.float32
    """

    def __init__(self, base: Dataset, transform: Optional[Callable[[Any], Any]]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image, label = self.base[i]
        return (self.transform(image) if self.transform is not None else image), label


def sample_paths(dataset: Dataset) -> Optional[list[str]]:
    """The file path of each item, in order, for datasets read from files (ImageFolder); else None.

    Looks through :class:`TransformedDataset` and ``Subset`` wrappers.

    >>> sample_paths(ImageTensorDataset(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.zeros(1))) is None
    True
    """
    from torch.utils.data import Subset

    if isinstance(dataset, TransformedDataset):
        return sample_paths(dataset.base)
    if isinstance(dataset, Subset):
        base = sample_paths(dataset.dataset)
        return None if base is None else [base[i] for i in dataset.indices]
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple):
        return [str(s[0]) for s in samples]
    return None
