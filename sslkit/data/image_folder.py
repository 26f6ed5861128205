"""The user's own images: ``root/<class>/<image>`` folders."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch.utils.data import Dataset, Subset

from sslkit.data.base import SSLDataModule
from sslkit.errors import DataNotFoundError, InvalidInputError


def open_image_folder(root: str, flag: str) -> Dataset:
    """``torchvision.datasets.ImageFolder(root)`` with errors that name the folder and the fix."""
    from torchvision.datasets import ImageFolder

    if not os.path.isdir(root):
        raise DataNotFoundError(
            f"Image folder '{root}' does not exist. Pass {flag} pointing at a folder with one "
            "subfolder of images per class (root/<class>/<image>.jpg)."
        )
    try:
        return ImageFolder(root)
    except FileNotFoundError as err:
        raise InvalidInputError(
            f"Image folder '{root}' holds no images in class subfolders ({err}). Put the images in "
            f"root/<class>/<image>.jpg (one subfolder per class; one folder named e.g. 'all' if you "
            f"have no labels) and pass it with {flag}."
        ) from None


class ImageFolderDataModule(SSLDataModule):
    """Images in class folders; with ``val_root``, or one folder split by a seed.

    Images are decoded per sample (PIL) and converted to RGB. Defaults suit
    ImageNet-like photos (``image_size=224``, ImageNet mean/std).

    Args:
        root: training folder, ``root/<class>/<image>``.
        val_root: validation folder with the same classes; when None, ``val_fraction``
            of ``root`` is held out with ``split_seed``.
        val_fraction: held-out share when ``val_root`` is None.
        split_seed: seed of that split.
        **kwargs: see :class:`~sslkit.data.base.SSLDataModule`.

    >>> dm = ImageFolderDataModule(root="photos/train", val_root="photos/val", image_size=128)
    >>> dm.image_size
    128
    """

    default_image_size = 224

    def __init__(
        self,
        root: str,
        val_root: Optional[str] = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if val_root is None and not 0.0 < val_fraction < 1.0:
            raise InvalidInputError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        self.root = root
        self.val_root = val_root
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        train = open_image_folder(self.root, "--data.root")
        self.num_classes = len(train.classes)  # type: ignore[attr-defined]
        if self.val_root is not None:
            val = open_image_folder(self.val_root, "--data.val_root")
            if val.classes != train.classes:  # type: ignore[attr-defined]
                raise InvalidInputError(
                    f"The class folders of val_root '{self.val_root}' {val.classes} differ from those of "  # type: ignore[attr-defined]
                    f"root '{self.root}' {train.classes}; both need the same class subfolders."  # type: ignore[attr-defined]
                )
            return train, val, val
        n = len(train)  # type: ignore[arg-type]
        n_val = max(1, round(self.val_fraction * n))
        if n_val >= n:
            raise InvalidInputError(f"'{self.root}' has {n} image(s): too few to hold out a validation split.")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        val_part = Subset(train, order[:n_val])
        return Subset(train, order[n_val:]), val_part, val_part
