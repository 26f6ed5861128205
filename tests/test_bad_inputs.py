"""Messy user data: image files of every mode, unreadable files, odd folders and sizes.

Each case gets a clear error naming the problem and the fix, or a counted, documented skip.
(Probe labels, dtypes, z_dim and unreadable batch formats: tests/test_evaluator.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sslkit.data import ImageFolderDataModule, augmented_view, eval_transform
from sslkit.data.batched_views import make_batched_views
from sslkit.data.image_files import load_rgb

RNG = np.random.default_rng(0)


def _save(path: Path, mode: str, size: tuple[int, int] = (24, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "RGB":
        img = Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    elif mode == "RGBA":
        img = Image.fromarray(RNG.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "L":
        img = Image.fromarray(RNG.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "I;16":
        img = Image.fromarray(RNG.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "P":
        img = Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert("P")
    elif mode == "PA":  # palette with a transparent colour
        img = Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert("P")
        img.info["transparency"] = 0
    else:
        raise ValueError(mode)
    img.save(path, **({"transparency": 0} if mode == "PA" else {}))
    return path


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = np.full((8, 8), 32768, dtype=np.uint16)  # half scale
    Image.fromarray(grey).save(tmp_path / "a.png")
    pixels = np.asarray(load_rgb(str(tmp_path / "a.png")))
    assert pixels.shape == (8, 8, 3) and abs(int(pixels[0, 0, 0]) - 128) <= 1  # PIL's convert("RGB") gives 255


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16", "P", "PA"])
def test_every_mode_reads_as_8_bit_rgb(tmp_path: Path, mode: str) -> None:
    img = load_rgb(str(_save(tmp_path / "x.png", mode)))
    assert img.mode == "RGB" and img.size == (24, 20)


def test_mixed_folder_trains_and_ignores_non_images_with_a_count(tmp_path: Path) -> None:
    for i, mode in enumerate(["RGB", "RGBA", "L", "I;16", "P", "PA"]):
        _save(tmp_path / "a" / f"{i}.png", mode)
        _save(tmp_path / "b" / f"{i}.png", mode, size=(10, 40))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(root=str(tmp_path), val_fraction=0.25, batch_size=4, num_workers=0, image_size=16)
    with pytest.warns(UserWarning, match=r"ignored 1 file\(s\) without an image extension, e.g. \['notes.txt'\]"):
        dm.setup()
    views, labels = next(iter(dm.train_dataloader()))
    assert [tuple(v.shape) for v in views] == [(4, 3, 16, 16)] * 2 and torch.isfinite(views[0]).all()
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (3, 16, 16)


def _folder_with_a_truncated_jpeg(tmp_path: Path) -> Path:
    for i in range(4):
        _save(tmp_path / "a" / f"{i}.png", "RGB")
    good = tmp_path / "a" / "ok.jpg"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    (tmp_path / "a" / "broken.jpg").write_bytes(good.read_bytes()[:300])  # truncated
    (tmp_path / "a" / "fake.png").write_bytes(b"this is text, not a PNG")  # not an image
    return tmp_path


def test_an_unreadable_image_stops_with_its_path(tmp_path: Path) -> None:
    root = _folder_with_a_truncated_jpeg(tmp_path)
    dm = ImageFolderDataModule(root=str(root), val_fraction=0.1, batch_size=6, num_workers=0, image_size=16)
    dm.setup()
    with pytest.raises(ValueError, match=r"Cannot read image '.*(broken.jpg|fake.png)'.*--data.skip_unreadable true"):
        for _ in dm.train_dataloader():
            pass


def test_unreadable_images_can_be_skipped_and_counted(tmp_path: Path) -> None:
    root = _folder_with_a_truncated_jpeg(tmp_path)
    dm = ImageFolderDataModule(
        root=str(root), val_fraction=0.2, batch_size=2, num_workers=0, image_size=16, skip_unreadable=True
    )
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        dm.setup()
    assert sum(len(s) for s in dm.splits[:2]) == 5  # 4 PNGs + ok.jpg
    for views, _ in dm.train_dataloader():
        assert views[0].shape == (2, 3, 16, 16)


@pytest.mark.parametrize(
    "layout, error, match",
    [
        ({"a": 3, "b": 0}, ValueError, r"Class folder\(s\) \['b'\] of .* hold no images"),
        ({"a": 0}, ValueError, "holds no images in class subfolders"),
        ({}, ValueError, "holds no images in class subfolders"),
        (None, FileNotFoundError, "does not exist.*--data.root"),
    ],
)
def test_folder_layouts_that_cannot_be_used(tmp_path: Path, layout: dict | None, error: type, match: str) -> None:
    root = tmp_path / "data"
    if layout is not None:
        root.mkdir()
        _save(root / "stray.png", "RGB")  # an image outside any class folder
        for cls, n in layout.items():
            (root / cls).mkdir()
            for i in range(n):
                _save(root / cls / f"{i}.png", "RGB")
    with pytest.raises(error, match=match):
        ImageFolderDataModule(root=str(root)).setup()


def test_one_image_smaller_than_the_crop(tmp_path: Path) -> None:
    _save(tmp_path / "a" / "0.png", "RGB", size=(5, 3))
    _save(tmp_path / "a" / "1.png", "RGB", size=(5, 3))
    dm = ImageFolderDataModule(root=str(tmp_path), val_fraction=0.5, batch_size=1, num_workers=0, image_size=32)
    dm.setup()
    views, _ = next(iter(dm.train_dataloader()))
    assert views[0].shape == (1, 3, 32, 32)  # upsampled, as RandomResizedCrop does


def test_a_last_validation_batch_of_one_with_batchnorm() -> None:
    from lightning.pytorch import Trainer

    from sslkit.callbacks import SSLOnlineEvaluator
    from sslkit.data import DigitsDataModule
    from sslkit.methods import SimCLR
    from tests.conftest import TINY_BACKBONE, trainer_kwargs

    dm = DigitsDataModule(batch_size=359, val_fraction=0.2, num_workers=0, image_size=16)  # 360 val -> 359 + 1
    trainer = Trainer(**trainer_kwargs(max_epochs=1, limit_train_batches=2, callbacks=[SSLOnlineEvaluator()]))
    trainer.fit(SimCLR(**TINY_BACKBONE, warmup_epochs=0), dm)
    assert 0.0 <= float(trainer.callback_metrics["online_val_acc"]) <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 48), w=st.integers(1, 48), mode=st.sampled_from(["RGB", "RGBA", "L", "I;16", "P"]),
    size=st.sampled_from([8, 16, 32]),
)
def test_any_image_size_and_mode_goes_through_every_transform(h: int, w: int, mode: str, size: int) -> None:
    import io

    buf = io.BytesIO()  # images are made in memory
    arr = {"RGB": (h, w, 3), "RGBA": (h, w, 4), "P": (h, w, 3)}.get(mode, (h, w))
    data = RNG.integers(0, 65536 if mode == "I;16" else 256, arr).astype(np.uint16 if mode == "I;16" else np.uint8)
    img = Image.fromarray(data)
    if mode == "P":
        img = img.convert("P")
    img.save(buf, format="PNG")
    buf.seek(0)
    rgb = load_rgb(buf)  # type: ignore[arg-type]
    for transform in (eval_transform(size), augmented_view(size)):
        out = transform(rgb)
        assert out.shape == (3, size, size) and torch.isfinite(out).all()
    tensor = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).unsqueeze(0)
    views = make_batched_views("byol", size)(tensor, torch.Generator().manual_seed(h * 100 + w))
    assert all(v.shape == (1, 3, size, size) and torch.isfinite(v).all() for v in views)
