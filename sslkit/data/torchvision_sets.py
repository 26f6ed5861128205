"""CIFAR-10, CIFAR-100 and STL-10 through torchvision; downloaded only when asked."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sslkit.data.base import SSLDataModule
from sslkit.data.datasets import ImageTensorDataset
from sslkit.errors import DataNotFoundError


def _open(cls: Any, name: str, root: str, download: bool, size_hint: str, **kwargs: Any) -> Any:
    try:
        return cls(root=root, download=download, **kwargs)
    except RuntimeError:
        if download:
            raise
        raise DataNotFoundError(
            f"{name} was not found under '{root}'. Pass --data.download true to download it "
            f"({size_hint}), or point --data.root at the folder that holds it."
        ) from None


def _nhwc_to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


class _TorchvisionDataModule(SSLDataModule):
    """Shared arguments of the torchvision-backed datamodules.

    Args:
        root: folder holding (or receiving) the data.
        download: download when missing (off by default: sslkit never downloads unasked).
        **kwargs: see :class:`~sslkit.data.base.SSLDataModule`.
    """

    def __init__(self, root: str = "data", download: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.download = download

    def prepare_data(self) -> None:
        if self.download:
            self.load_splits()


class CIFAR10DataModule(_TorchvisionDataModule):
    """CIFAR-10: 50,000 train / 10,000 test 32x32 images, 10 classes; val and test are the test split.

    Images are kept in memory as one uint8 tensor.

    >>> dm = CIFAR10DataModule(root="/nonexistent")
    >>> dm.num_classes
    10
    """

    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    _size_hint = "about 170 MB"

    def _dataset_class(self) -> Any:
        from torchvision.datasets import CIFAR10

        return CIFAR10

    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        cls = self._dataset_class()
        parts = []
        for train in (True, False):
            ds = _open(cls, cls.__name__, self.root, self.download, self._size_hint, train=train)
            parts.append(ImageTensorDataset(_nhwc_to_tensor(ds.data), torch.as_tensor(ds.targets)))
        return parts[0], parts[1], parts[1]


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: like CIFAR-10 with 100 classes."""

    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    _size_hint = "about 170 MB"

    def _dataset_class(self) -> Any:
        from torchvision.datasets import CIFAR100

        return CIFAR100


class STL10DataModule(_TorchvisionDataModule):
    """STL-10: pretrain on ``train+unlabeled`` (105,000 96x96 images), evaluate on the 8,000 test images.

    Unlabelled images have label -1; the online evaluator skips them. The
    default ``image_size`` is 96.
    """

    num_classes = 10
    mean = (0.4467, 0.4398, 0.4066)
    std = (0.2603, 0.2566, 0.2713)

    default_image_size = 96

    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        from torchvision.datasets import STL10

        def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
            ds = _open(STL10, "STL-10", self.root, self.download, "about 2.6 GB", split=name)
            return torch.from_numpy(ds.data), torch.as_tensor(ds.labels).long()

        test = ImageTensorDataset(*split("test"))
        (train_x, train_y), (unl_x, unl_y) = split("train"), split("unlabeled")
        # One in-memory tensor, so the views are made per batch on the device.
        return ImageTensorDataset(torch.cat([train_x, unl_x]), torch.cat([train_y, unl_y])), test, test
