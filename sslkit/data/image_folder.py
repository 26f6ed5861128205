"""The user's own images: ``root/<class>/<image>`` folders."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Optional

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset, Subset

from sslkit.data.base import SSLDataModule
from sslkit.data.image_files import load_rgb, unreadable
from sslkit.errors import DataNotFoundError, InvalidInputError


def open_image_folder(root: str, flag: str, skip_unreadable: bool = False) -> Dataset:
    """``torchvision.datasets.ImageFolder(root)`` read through :func:`load_rgb`, with errors that name the fix.

    - a missing folder, a folder without class subfolders, or class subfolders
      without images: an error naming the folder(s);
    - files without an image extension (``notes.txt``): ignored and counted in a warning;
    - unreadable images (truncated, corrupt): an error naming the file when it is
      read, or, with ``skip_unreadable``, found by decoding every image once here,
      dropped, counted and listed in a warning.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not os.path.isdir(root):
        raise DataNotFoundError(
            f"Image folder '{root}' does not exist. Pass {flag} pointing at a folder with one "
            "subfolder of images per class (root/<class>/<image>.jpg)."
        )
    try:
        dataset = ImageFolder(root, loader=load_rgb, allow_empty=True)
    except FileNotFoundError as err:
        raise InvalidInputError(
            f"Image folder '{root}' holds no images in class subfolders ({err}). Put the images in "
            f"root/<class>/<image>.jpg (one subfolder per class; one folder named e.g. 'all' if you "
            f"have no labels) and pass it with {flag}."
        ) from None
    if skip_unreadable:
        bad = set(unreadable([path for path, _ in dataset.samples]))
        if bad:
            dataset.samples = [s for s in dataset.samples if s[0] not in bad]
            dataset.imgs = dataset.samples
            dataset.targets = [label for _, label in dataset.samples]
            rank_zero_warn(f"'{root}': skipped {len(bad)} unreadable image(s): {sorted(bad)[:5]}.")
        if not dataset.samples:
            raise InvalidInputError(f"Image folder '{root}' has no readable image.")
    counts = Counter(label for _, label in dataset.samples)
    empty = [c for i, c in enumerate(dataset.classes) if counts[i] == 0]
    if len(empty) == len(dataset.classes):
        raise InvalidInputError(
            f"Image folder '{root}' holds no images in class subfolders (all empty: {empty}). Put the images in "
            f"root/<class>/<image>.jpg and pass the folder with {flag}."
        )
    if empty:
        raise InvalidInputError(
            f"Class folder(s) {empty} of '{root}' hold no images. Add images or remove the empty folder(s)."
        )
    others = [
        f for cls in dataset.classes for f in os.listdir(os.path.join(root, cls))
        if os.path.isfile(os.path.join(root, cls, f)) and not f.lower().endswith(IMG_EXTENSIONS)
    ]
    if others:
        rank_zero_warn(f"'{root}': ignored {len(others)} file(s) without an image extension, e.g. {others[:3]}.")
    return dataset


class ImageFolderDataModule(SSLDataModule):
    """Images in class folders; with ``val_root``, or one folder split by a seed.

    Images are decoded per sample (PIL) and converted to 8-bit RGB whatever their mode
    (grayscale, RGBA, palette, 16-bit; see :func:`~sslkit.data.image_files.load_rgb`). Defaults suit
    ImageNet-like photos (``image_size=224``, ImageNet mean/std).

    Args:
        root: training folder, ``root/<class>/<image>``.
        val_root: validation folder with the same classes; when None, ``val_fraction``
            of ``root`` is held out with ``split_seed``.
        val_fraction: held-out share when ``val_root`` is None.
        split_seed: seed of that split.
        skip_unreadable: decode every image once at setup and skip (and count) the
            unreadable ones; by default an unreadable image stops the run with its path.
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
        skip_unreadable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if val_root is None and not 0.0 < val_fraction < 1.0:
            raise InvalidInputError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        self.root = root
        self.val_root = val_root
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.skip_unreadable = skip_unreadable

    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        train = open_image_folder(self.root, "--data.root", self.skip_unreadable)
        self.num_classes = len(train.classes)  # type: ignore[attr-defined]
        if self.val_root is not None:
            val = open_image_folder(self.val_root, "--data.val_root", self.skip_unreadable)
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
