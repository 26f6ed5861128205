"""Augmentation recipes: multi-view training transforms and the clean evaluation transform.

Every transform takes one image (a PIL image or a ``(C, H, W)`` uint8 tensor)
and draws fresh random parameters per call, i.e. per sample and per view.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torchvision.transforms import v2

from sslkit.errors import InvalidInputError

RECIPES = ("simclr", "byol")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MultiViewTransform:
    """Apply each transform to the same image: one image -> a list of views.

    >>> t = MultiViewTransform([eval_transform(8), eval_transform(8)])
    >>> [v.shape for v in t(torch.zeros(3, 8, 8, dtype=torch.uint8))]
    [torch.Size([3, 8, 8]), torch.Size([3, 8, 8])]
    """

    def __init__(self, transforms: Sequence[Callable[[Any], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> list[torch.Tensor]:
        return [t(image) for t in self.transforms]

    def __repr__(self) -> str:
        return f"MultiViewTransform({self.transforms!r})"


def blur_kernel_size(image_size: int) -> int:
    """Gaussian blur kernel: ~10% of the image side, odd, at least 3 (SimCLR paper).

    >>> blur_kernel_size(32), blur_kernel_size(224)
    (3, 23)
    """
    k = max(3, int(0.1 * image_size))
    return k if k % 2 == 1 else k + 1


def augmented_view(
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    hflip_prob: float = 0.5,
    jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2),
    jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    blur_prob: float = 0.5,
    solarize_prob: float = 0.0,
) -> v2.Compose:
    """One random view (SimCLR paper, appendix A): crop, flip, colour jitter, grayscale, blur, solarize.

    ``jitter`` is (brightness, contrast, saturation, hue); the default is
    SimCLR's strength 1.0.

    Output: ``(3, image_size, image_size)`` float32, normalised with ``mean``/``std``.

    >>> augmented_view(16)(torch.zeros(3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([3, 16, 16])
    """
    steps: list[Any] = [
        v2.ToImage(),
        v2.RGB(),
        v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True),
        v2.RandomHorizontalFlip(hflip_prob),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=jitter_prob),
        v2.RandomGrayscale(grayscale_prob),
        v2.RandomApply([v2.GaussianBlur(blur_kernel_size(image_size), sigma=(0.1, 2.0))], p=blur_prob),
    ]
    if solarize_prob > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=solarize_prob))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def recipe_views(recipe: str) -> list[dict[str, Any]]:
    """The views of a method's paper, as :func:`augmented_view` arguments (one dict per view).

    - ``simclr``: two identical random recipes (jitter strength 1.0, blur p=0.5).
    - ``byol``: asymmetric (BYOL paper, table 6): view 1 always blurred and never
      solarized; view 2 blurred with p=0.1 and solarized with p=0.2; jitter
      ``(0.4, 0.4, 0.2, 0.1)`` with p=0.8.

    Both the per-sample (:func:`make_views`) and the batched
    (:func:`~sslkit.data.batched_views.make_batched_views`) pipelines read it.

    >>> [v["solarize_prob"] for v in recipe_views("byol")]
    [0.0, 0.2]
    """
    if recipe == "simclr":
        return [{}, {}]
    if recipe == "byol":
        jitter = (0.4, 0.4, 0.2, 0.1)
        return [
            {"jitter": jitter, "blur_prob": 1.0, "solarize_prob": 0.0},
            {"jitter": jitter, "blur_prob": 0.1, "solarize_prob": 0.2},
        ]
    raise InvalidInputError(f"Unknown view recipe '{recipe}'. Choose one of: {', '.join(RECIPES)}.")


def make_views(
    recipe: str,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    **overrides: Any,
) -> MultiViewTransform:
    """The training views of a method's paper (see :func:`recipe_views`), applied per sample.

    ``overrides`` go to :func:`augmented_view` for every view (e.g. ``hflip_prob=0``).

    >>> views = make_views("byol", 16)(torch.zeros(3, 32, 32, dtype=torch.uint8))
    >>> len(views), views[0].dtype
    (2, torch.float32)
    """
    return MultiViewTransform(
        [augmented_view(image_size, mean, std, **{**view, **overrides}) for view in recipe_views(recipe)]
    )


def eval_transform(
    image_size: Optional[int], mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None
) -> v2.Compose:
    """Clean images for validation, test and prediction: resize, centre crop, normalise.

    ``image_size=None`` keeps the input size (no resize or crop); ``mean`` /
    ``std`` default to ImageNet's.

    >>> eval_transform(16)(torch.zeros(3, 32, 40, dtype=torch.uint8)).shape
    torch.Size([3, 16, 16])
    """
    resize: list[Any] = []
    if image_size is not None:
        resize = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RGB(),
            *resize,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean or IMAGENET_MEAN), list(std or IMAGENET_STD)),
        ]
    )
