"""Batched SimCLR/BYOL view augmentation with per-sample random parameters (prototype).

Drop-in batched counterpart of ``sslkit.data.transforms.augmented_view``: instead of
running a torchvision v2 pipeline image by image, :class:`BatchedView` draws all
per-sample parameters as tensors (from one ``torch.Generator``) and applies every
step to the whole ``(B, C, H, W)`` uint8 batch at once, on CPU or CUDA.

Pipeline (same order and parameter distributions as the v2 recipe):

1. RandomResizedCrop(S, scale, ratio=(3/4, 4/3), bilinear, antialias=True)
   -- crop + resize + horizontal flip of all samples in ONE op: two batched matmuls
   with per-sample separable resampling matrices ``out = Wy @ img @ Wx^T``.  The
   matrices hold the antialiased-bilinear (triangle filter, support ``max(1, in/out)``,
   rows normalised) weights that ``F.interpolate(..., antialias=True)`` uses, restricted
   to the crop window, so crop *and* antialias semantics are exact, up-sampling and
   down-sampling alike (no grid_sample approximation). The flip is folded into ``Wx``.
2. RandomHorizontalFlip(p)                       (folded into step 1)
3. RandomApply(ColorJitter(b, c, s, h), p)       per-sample factors AND per-sample
   random order of the four ops (loop over 4 positions x 4 ops on index subsets)
4. RandomGrayscale(p)
5. RandomApply(GaussianBlur(k, sigma~U(0.1, 2)), p)   per-sample kernels, grouped conv
6. RandomSolarize(threshold=128, p)               (only if ``solarize_prob > 0``)
7. ToDtype(float32, scale=True) + Normalize(mean, std)

Intermediate values are float32 on the 0..255 scale. With ``emulate_uint8=True``
(default) every step re-quantises like the reference pipeline, which keeps a uint8
image between steps (truncation after brightness/contrast/saturation/grayscale/hue,
rounding after resize/blur); the results then equal torchvision's up to rare
+-1/255 differences (see ``test_batched_views.py`` and the report). With
``emulate_uint8=False`` the steps stay in float (slightly different, no quantisation).

Parameters are drawn on the generator's device (CPU when ``generator is None``, then
from the global CPU RNG) and kept on CPU for the index bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from sslkit.data.batched_ops import (
    BRIGHTNESS,
    COLOR_OPS,
    CONTRAST,
    SATURATION,
    crop_resize_flip,
    gaussian_blur,
    luma,
)
from sslkit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    blur_kernel_size,
    recipe_views,
)
from sslkit.errors import InvalidInputError

RATIO = (3.0 / 4.0, 4.0 / 3.0)
SIGMA = (0.1, 2.0)
SOLARIZE_THRESHOLD = 128.0
_MAX_TRIES = 10


def _factor_range(
    value: Any, center: float, bound: tuple[float, float], clip_first_on_zero: bool
) -> tuple[float, float] | None:
    """ColorJitter's range rule: number v -> [max(0, c - v), c + v]; pair -> as is; no-op -> None."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidInputError(f"jitter value must be non negative, got {value}")
        lo, hi = center - value, center + value
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    else:
        lo, hi = (float(v) for v in value)
    if not bound[0] <= lo <= hi <= bound[1]:
        raise InvalidInputError(f"jitter range {(lo, hi)} outside {bound} or decreasing")
    return None if lo == hi == center else (float(lo), float(hi))


@dataclass
class ViewParams:
    """Per-sample parameters of one view for a batch of ``B`` images (all CPU tensors)."""

    top: Tensor  # (B,) int64 crop box, in input pixels
    left: Tensor
    height: Tensor
    width: Tensor
    flip: Tensor  # (B,) bool
    jitter: Tensor  # (B,) bool: ColorJitter applied
    order: Tensor  # (B, 4) int64: permutation of (BRIGHTNESS, CONTRAST, SATURATION, HUE)
    brightness: Tensor  # (B,) float32 factors (drawn for every sample, used where jitter)
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    grayscale: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,) float32
    solarize: Tensor  # (B,) bool

    def __len__(self) -> int:
        return int(self.top.shape[0])

    def select(self, index: Any) -> ViewParams:
        return ViewParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


class BatchedView:
    """Batched equivalent of ``augmented_view`` (same constructor arguments).

    ``view(images_uint8 (B, C, H, W), generator) -> float32 (B, 3, S, S)``, normalised.
    ``C`` may be 1 (expanded to 3, like ``v2.RGB``) or 3.

    Split API: ``params = view.sample_params(B, H, W, generator)`` then
    ``view.apply(images, params)``; :func:`torchvision_reference` applies the same
    ``params`` with torchvision's functional ops, image by image.
    """

    def __init__(
        self,
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
        *,
        emulate_uint8: bool = True,
        separable_blur: bool | None = None,
    ) -> None:
        for name, p in (("hflip_prob", hflip_prob), ("jitter_prob", jitter_prob),
                        ("grayscale_prob", grayscale_prob), ("blur_prob", blur_prob),
                        ("solarize_prob", solarize_prob)):
            if not 0.0 <= p <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {p}")
        self.size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.hflip_prob = hflip_prob
        b, c, s, h = jitter
        # None = op disabled (torchvision skips it, which matters for hue: the HSV round trip is lossy).
        self.jitter_ranges = (
            _factor_range(b, 1.0, (0.0, math.inf), True),
            _factor_range(c, 1.0, (0.0, math.inf), True),
            _factor_range(s, 1.0, (0.0, math.inf), True),
            _factor_range(h, 0.0, (-0.5, 0.5), False),
        )
        self.jitter_prob = jitter_prob
        self.grayscale_prob = grayscale_prob
        self.blur_prob = blur_prob
        self.solarize_prob = solarize_prob
        self.kernel_size = blur_kernel_size(self.size)
        self.emulate_uint8 = emulate_uint8
        # 2-D kernel (the reference's exact arithmetic) for small kernels, separable otherwise (cheaper).
        self.separable_blur = self.kernel_size > 7 if separable_blur is None else separable_blur
        # The reference draws log-ratio bounds from a float32 tensor; keep the same values.
        self._log_ratio = [float(v) for v in torch.log(torch.tensor(RATIO))]

    def __repr__(self) -> str:
        return (f"BatchedView(size={self.size}, crop_scale={self.crop_scale}, hflip_prob={self.hflip_prob}, "
                f"jitter_ranges={self.jitter_ranges}, jitter_prob={self.jitter_prob}, "
                f"grayscale_prob={self.grayscale_prob}, blur_prob={self.blur_prob} (k={self.kernel_size}), "
                f"solarize_prob={self.solarize_prob}, emulate_uint8={self.emulate_uint8})")

    # ------------------------------------------------------------------ parameters
    def sample_crop(
        self, n: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """RandomResizedCrop boxes for ``n`` samples: (top, left, h, w) int64 CPU tensors.

        Same law as torchvision: up to 10 tries of area ~ U(scale) * H * W and
        log(aspect) ~ U(log 3/4, log 4/3), w = round(sqrt(area * r)), h = round(sqrt(area / r))
        (round half to even, like Python's ``round``); the first try that fits wins; the
        offset is uniform over the valid positions; if no try fits, a centre crop with the
        aspect ratio clamped to the range. The 10 tries are drawn for all samples at once.
        """
        dev = generator.device if generator is not None else torch.device("cpu")
        lo, hi = self.crop_scale
        u_area = torch.empty(n, _MAX_TRIES, device=dev).uniform_(lo, hi, generator=generator)
        log_r = torch.empty(n, _MAX_TRIES, device=dev).uniform_(*self._log_ratio, generator=generator)
        u_top = torch.rand(n, dtype=torch.float64, device=dev, generator=generator)
        u_left = torch.rand(n, dtype=torch.float64, device=dev, generator=generator)
        u_area, log_r, u_top, u_left = (t.cpu() for t in (u_area, log_r, u_top, u_left))

        ratio = torch.exp(log_r).double()  # float32 exp, then double maths, as the reference
        target = (height * width) * u_area.double()
        w = torch.round(torch.sqrt(target * ratio)).long()
        h = torch.round(torch.sqrt(target / ratio)).long()
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        tries = torch.arange(_MAX_TRIES).expand(n, -1)
        first = torch.where(ok, tries, _MAX_TRIES).amin(dim=1)
        found = first < _MAX_TRIES
        pick = first.clamp_max(_MAX_TRIES - 1).unsqueeze(1)
        w = w.gather(1, pick).squeeze(1)
        h = h.gather(1, pick).squeeze(1)

        # Fallback: centre crop, aspect ratio clamped to RATIO (a constant for this H, W).
        in_ratio = width / height
        if in_ratio < min(RATIO):
            fw, fh = width, round(width / min(RATIO))
        elif in_ratio > max(RATIO):
            fh, fw = height, round(height * max(RATIO))
        else:
            fw, fh = width, height
        w = torch.where(found, w, fw)
        h = torch.where(found, h, fh)
        top = torch.minimum((u_top * (height - h + 1)).floor().long(), height - h)
        left = torch.minimum((u_left * (width - w + 1)).floor().long(), width - w)
        top = torch.where(found, top, (height - fh) // 2)
        left = torch.where(found, left, (width - fw) // 2)
        return top, left, h, w

    def sample_params(
        self, n: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> ViewParams:
        """Draw one view's parameters for ``n`` images of size ``height x width``.

        A fixed number of draws per call (factors and sigma are drawn for every sample,
        used only where the op is applied), so a seed fixes the whole batch.
        """
        dev = generator.device if generator is not None else torch.device("cpu")
        top, left, h, w = self.sample_crop(n, height, width, generator)

        def coin(p: float) -> Tensor:
            # torchvision applies a random op iff torch.rand(1) < p.
            return torch.rand(n, device=dev, generator=generator).cpu() < p

        def uniform(rng: tuple[float, float] | None) -> Tensor:
            a, b = rng if rng is not None else (0.0, 0.0)
            return torch.empty(n, device=dev).uniform_(a, b, generator=generator).cpu()

        flip = coin(self.hflip_prob)
        jit = coin(self.jitter_prob)
        order = torch.rand(n, 4, device=dev, generator=generator).argsort(dim=1).cpu()
        b, c, s, hue = (uniform(r) for r in self.jitter_ranges)
        if self.jitter_ranges[BRIGHTNESS] is None:
            b.fill_(1.0)
        if self.jitter_ranges[CONTRAST] is None:
            c.fill_(1.0)
        if self.jitter_ranges[SATURATION] is None:
            s.fill_(1.0)
        gray = coin(self.grayscale_prob)
        blur = coin(self.blur_prob)
        sigma = uniform(SIGMA)
        solar = coin(self.solarize_prob)
        return ViewParams(top, left, h, w, flip, jit, order, b, c, s, hue, gray, blur, sigma, solar)

    # ------------------------------------------------------------------ application
    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.ndim != 4:
            raise InvalidInputError(f"expected a (B, C, H, W) batch, got shape {tuple(images.shape)}")
        params = self.sample_params(images.shape[0], images.shape[-2], images.shape[-1], generator)
        return self.apply(images, params)

    def apply(self, images: Tensor, params: ViewParams) -> Tensor:
        """Apply ``params`` to a uint8 (or 0..255 float) batch -> normalised float32 (B, 3, S, S)."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise InvalidInputError(f"expected (B, 1|3, H, W) images, got shape {tuple(images.shape)}")
        if images.shape[0] != len(params):
            raise InvalidInputError(f"{images.shape[0]} images but parameters for {len(params)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        dev = images.device
        q = self.emulate_uint8
        x = crop_resize_flip(images, params.top, params.left, params.height, params.width,
                             params.flip, self.size, round_output=q)

        # ColorJitter: at each of the 4 positions, each op on the samples whose permutation puts it there.
        active = [op for op in range(4) if self.jitter_ranges[op] is not None]
        if active and bool(params.jitter.any()):
            factors = torch.stack([params.brightness, params.contrast, params.saturation, params.hue], 1)
            for pos in range(4):
                for op in active:
                    idx = torch.nonzero(params.jitter & (params.order[:, pos] == op)).squeeze(1)
                    if idx.numel() == 0:
                        continue
                    f = factors[idx, op].to(dev).view(-1, 1, 1, 1)
                    idx = idx.to(dev)
                    x.index_copy_(0, idx, COLOR_OPS[op](x.index_select(0, idx), f, q))

        if bool(params.grayscale.any()):
            g = params.grayscale.to(dev).view(-1, 1, 1, 1)
            x = torch.where(g, luma(x, q).expand_as(x), x)

        if bool(params.blur.any()):
            idx = torch.nonzero(params.blur).squeeze(1)
            sig = params.sigma[idx].to(dev)
            idx = idx.to(dev)
            x.index_copy_(0, idx, gaussian_blur(x.index_select(0, idx), self.kernel_size, sig,
                                                separable=self.separable_blur, round_output=q))

        if self.solarize_prob > 0 and bool(params.solarize.any()):
            m = params.solarize.to(dev).view(-1, 1, 1, 1) & (x >= SOLARIZE_THRESHOLD)
            x = torch.where(m, 255.0 - x, x)

        mean = torch.tensor(self.mean, dtype=x.dtype, device=dev).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=dev).view(1, -1, 1, 1)
        return x.mul_(1.0 / 255).sub_(mean).div_(std)


class BatchedMultiView:
    """Batched ``MultiViewTransform``: ``(images, generator) -> [view_1, view_2, ...]``."""

    def __init__(self, views: Sequence[BatchedView]) -> None:
        self.views = list(views)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        return [v(images, generator) for v in self.views]


def make_batched_views(recipe: str, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD, **overrides: Any) -> BatchedMultiView:
    """Batched counterpart of :func:`~sslkit.data.transforms.make_views`: the same recipes and overrides.

    >>> views = make_batched_views("simclr", 16)(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    >>> [tuple(v.shape) for v in views]
    [(4, 3, 16, 16), (4, 3, 16, 16)]
    """
    return BatchedMultiView(
        [BatchedView(image_size, mean, std, **{**view, **overrides}) for view in recipe_views(recipe)]
    )
