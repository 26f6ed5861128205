"""Multi-view transforms: per-sample randomness, shapes, dtypes."""

from __future__ import annotations

import pytest
import torch

from sslkit.data import eval_transform, make_views


@pytest.mark.parametrize("recipe", ["simclr", "byol"])
def test_two_views_differ_and_have_the_right_shape(recipe: str) -> None:
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    views = make_views(recipe, 24)(img)
    assert len(views) == 2
    for v in views:
        assert v.shape == (3, 24, 24) and v.dtype == torch.float32
    assert not torch.equal(views[0], views[1])
    # Fresh parameters per call: the same image twice gives different first views.
    assert not torch.equal(views[0], make_views(recipe, 24)(img)[0])


def test_views_accept_pil_and_grayscale() -> None:
    from PIL import Image

    img = Image.fromarray(torch.randint(0, 256, (20, 30), dtype=torch.uint8).numpy(), mode="L")
    views = make_views("simclr", 16)(img)
    assert [tuple(v.shape) for v in views] == [(3, 16, 16), (3, 16, 16)]


def test_eval_transform_is_deterministic_and_normalised() -> None:
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    t = eval_transform(32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    a, b = t(img), t(img)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, img.float() / 255 * 2 - 1)


def test_unknown_recipe() -> None:
    with pytest.raises(ValueError, match="Unknown view recipe 'moco'"):
        make_views("moco", 32)
