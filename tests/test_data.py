"""Datamodules: digits split, loaders' formats, and bad-input errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sslkit.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule


def test_digits_split_is_fixed_stratified_and_real() -> None:
    dm = DigitsDataModule(num_workers=0)
    dm.setup()
    train, val, test = dm.splits
    assert (len(train), len(val)) == (1437, 360) and test is val
    assert dm.num_classes == 10
    counts = torch.bincount(val.labels, minlength=10)
    assert counts.min() >= 35  # stratified: ~36 per class
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    dm2 = DigitsDataModule(num_workers=0)
    dm2.setup()
    assert torch.equal(dm2.splits[1].labels, val.labels)


def test_loaders_give_views_for_training_and_clean_images_for_eval(tiny_digits: Any) -> None:
    tiny_digits.setup()
    (views, y) = next(iter(tiny_digits.train_dataloader()))
    assert len(views) == 2 and views[0].shape == (64, 3, 16, 16) and y.shape == (64,)
    x, y = next(iter(tiny_digits.val_dataloader()))
    assert x.shape == (64, 3, 16, 16) and x.dtype == torch.float32
    x2, _ = next(iter(tiny_digits.val_dataloader()))
    assert torch.equal(x, x2)  # clean images: deterministic


def test_batch_larger_than_dataset() -> None:
    dm = DigitsDataModule(batch_size=5000, num_workers=0)
    with pytest.raises(ValueError, match=r"batch_size 5000 is larger than the training set \(1437 images\).*--data.batch_size"):
        dm.train_dataloader()


def test_missing_cifar_names_the_download_flag(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--data.download true"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def _write_images(folder: Path, n: int, size: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(torch.randint(0, 256, (size, size, 3), dtype=torch.uint8).numpy()).save(folder / f"{i}.png")


def test_image_folder_split_by_seed(tmp_path: Path) -> None:
    _write_images(tmp_path / "cat", 6)
    _write_images(tmp_path / "dog", 4)
    dm = ImageFolderDataModule(root=str(tmp_path), val_fraction=0.2, batch_size=4, num_workers=0, image_size=16)
    dm.setup()
    train, val, _ = dm.splits
    assert (len(train), len(val), dm.num_classes) == (8, 2, 2)
    views, y = next(iter(dm.train_dataloader()))
    assert views[0].shape == (4, 3, 16, 16)


def test_image_folder_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=f"Image folder '{missing}' does not exist.*--data.root"):
        ImageFolderDataModule(root=str(missing)).setup()


def test_image_folder_empty(tmp_path: Path) -> None:
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="holds no images in class subfolders"):
        ImageFolderDataModule(root=str(tmp_path)).setup()


def test_views_follow_the_fitted_method_unless_set() -> None:
    from types import SimpleNamespace

    from torchvision.transforms import v2

    from sslkit.methods import BYOL
    from tests.conftest import TINY_BACKBONE

    dm = DigitsDataModule(num_workers=0, image_size=16)
    assert dm.resolved_views() == "simclr"
    dm.trainer = SimpleNamespace(lightning_module=BYOL(**TINY_BACKBONE))  # type: ignore[assignment]
    assert dm.resolved_views() == "byol"
    second_view = dm.train_dataloader().dataset.transform.transforms[1]
    assert any(isinstance(t, v2.RandomSolarize) for t in second_view.transforms)
    assert DigitsDataModule(views="simclr").resolved_views() == "simclr"
    with pytest.raises(ValueError, match="Unknown views 'moco'"):
        DigitsDataModule(views="moco")
