"""Datamodules and augmentation recipes."""

from sslkit.data.base import SSLDataModule
from sslkit.data.digits import DigitsDataModule
from sslkit.data.image_folder import ImageFolderDataModule
from sslkit.data.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    STL10DataModule,
)
from sslkit.data.transforms import (
    MultiViewTransform,
    augmented_view,
    eval_transform,
    make_views,
)

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "MultiViewTransform",
    "SSLDataModule",
    "STL10DataModule",
    "augmented_view",
    "eval_transform",
    "make_views",
]
