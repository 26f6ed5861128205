"""Datamodules: digits split, loaders' formats, and bad-input errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sslkit.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule
from sslkit.data.keyed import RawTrainBatch


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
    raw = next(iter(tiny_digits.train_dataloader()))  # in-memory data: uint8, views made per batch
    assert isinstance(raw, RawTrainBatch) and raw.images.dtype == torch.uint8 and raw.images.shape == (64, 3, 16, 16)
    views, y = tiny_digits.on_after_batch_transfer(raw, 0)
    assert len(views) == 2 and views[0].shape == (64, 3, 16, 16) and views[0].dtype == torch.float32
    assert torch.equal(y, raw.labels) and y.shape == (64,)
    assert not torch.equal(views[0], views[1])
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
    dm.train_dataloader()
    assert [v.solarize_prob for v in dm._batched.views] == [0.0, 0.2]
    per_sample = DigitsDataModule(num_workers=0, image_size=16, batched_views=False)
    per_sample.trainer = dm.trainer
    second_view = per_sample.train_dataloader().dataset.transform.transforms[1]
    assert any(isinstance(t, v2.RandomSolarize) for t in second_view.transforms)
    assert DigitsDataModule(views="simclr").resolved_views() == "simclr"
    with pytest.raises(ValueError, match="Unknown views 'moco'"):
        DigitsDataModule(views="moco")


def _epoch_views(dm: Any, epoch: int, num_workers: int = 0) -> list[torch.Tensor]:
    dm.num_workers = num_workers
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    out = []
    for batch in loader:
        views, _ = dm.on_after_batch_transfer(batch, 0) if isinstance(batch, RawTrainBatch) else batch
        out.append(torch.cat(views))
    return out


@pytest.mark.parametrize("batched", [True, False])
def test_views_are_keyed_by_seed_epoch_and_sample_not_by_global_rng(batched: bool) -> None:
    dm = DigitsDataModule(batch_size=256, image_size=16, batched_views=batched, seed=3)
    torch.manual_seed(0)
    first = _epoch_views(dm, epoch=2)
    torch.manual_seed(123)  # a different global RNG state (e.g. a resumed run) changes nothing
    torch.rand(1000)
    again = _epoch_views(dm, epoch=2, num_workers=2)  # nor do workers (batched: views made in the workers)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other_epoch = _epoch_views(dm, epoch=3)
    assert not torch.equal(first[0], other_epoch[0])
    dm.seed = 4
    assert not torch.equal(first[0], _epoch_views(dm, epoch=2)[0])


def test_the_seed_defaults_to_seed_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    assert DigitsDataModule().train_seed() == 7 and DigitsDataModule(seed=1).train_seed() == 1
    monkeypatch.delenv("PL_GLOBAL_SEED")
    assert DigitsDataModule().train_seed() == 0


def test_raw_batches_outside_a_datamodule_fit_get_the_fix(tiny_digits: Any) -> None:
    from sslkit.methods import SimCLR
    from tests.conftest import TINY_BACKBONE

    raw = next(iter(tiny_digits.train_dataloader()))
    with pytest.raises(ValueError, match=r"raw uint8 images.*datamodule=dm.*batched_views=False"):
        SimCLR(**TINY_BACKBONE).training_step(raw, 0)


def test_batched_views_need_an_in_memory_dataset(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 4)
    dm = ImageFolderDataModule(root=str(tmp_path), batched_views=True, num_workers=0, batch_size=2)
    with pytest.raises(ValueError, match="batched_views=True needs an in-memory uint8 training set"):
        dm.train_dataloader()
