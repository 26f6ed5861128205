"""Features of a whole dataset from a frozen encoder."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sslkit.data.datasets import TransformedDataset
from sslkit.errors import InvalidInputError


@torch.no_grad()
def embed(
    encoder: nn.Module,
    dataset: Dataset,
    transform: Optional[Callable[[Any], torch.Tensor]] = None,
    batch_size: int = 256,
    device: Optional[torch.device | str] = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, D) float32, labels (N,) int64)`` of ``(image, label)`` items, in dataset order.

    The encoder runs in eval mode without gradients (its mode is restored);
    ``transform`` is applied to each image first (e.g. the one
    :func:`~sslkit.export.load_encoder` returns).

    >>> from sslkit.backbones import create_backbone
    >>> from sslkit.data.datasets import ImageTensorDataset
    >>> ds = ImageTensorDataset(torch.zeros(5, 3, 8, 8, dtype=torch.uint8), torch.arange(5))
    >>> f, y = embed(create_backbone("small_cnn", width=8), ds, transform=lambda x: x.float())
    >>> f.shape, y.tolist()
    (torch.Size([5, 64]), [0, 1, 2, 3, 4])
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise InvalidInputError("embed: the dataset is empty; check the split (--split) and the data folder.")
    if device is None:
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    data = TransformedDataset(dataset, transform) if transform is not None else dataset
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    was_training = encoder.training
    encoder.eval().to(device)
    features, labels = [], []
    try:
        for x, y in loader:
            features.append(encoder(x.to(device)).flatten(1).float().cpu())
            labels.append(torch.as_tensor(y).long())
    finally:
        encoder.train(was_training)
    return torch.cat(features), torch.cat(labels)


def labelled(dataset: Dataset) -> Dataset:
    """The items of ``dataset`` whose label is >= 0 (e.g. STL-10's train+unlabeled split).

    Datasets with a ``labels`` tensor (sslkit's in-memory ones) are filtered without
    reading images; others are returned as they are.

    Raises:
        ValueError: no labelled item is left.
    """
    from torch.utils.data import Subset

    labels = getattr(dataset, "labels", None)
    if not isinstance(labels, torch.Tensor) or bool((labels >= 0).all()):
        return dataset
    keep = torch.nonzero(labels >= 0).flatten().tolist()
    if not keep:
        raise InvalidInputError("This split has no labelled images (all labels are -1); choose another split.")
    return Subset(dataset, keep)
