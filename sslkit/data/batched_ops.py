"""Batched image kernels for :mod:`sslkit.data.batched_views`: per-sample crop/resize/flip, colour, blur.

All take float32 batches on the 0..255 scale, ``(n, C, H, W)``, and per-sample
parameter tensors, and run on CPU or CUDA. With ``quantize`` / ``round_output``
they re-quantise like torchvision's uint8 pipeline does between steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3  # ColorJitter op ids, as in a view's ``order``


def resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int,
                    device: torch.device | str = "cpu") -> Tensor:
    """Per-sample 1-D resampling matrices, (n, out_size, in_size) float32.

    Row ``t`` holds the weights with which output pixel ``t`` mixes the input pixels
    ``start .. start + length - 1`` (zero elsewhere): the antialiased bilinear filter of
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``: triangle of
    half-width ``support = max(1, length / out_size)`` centred at ``(t + 0.5) * length / out_size``
    (crop coordinates), evaluated at pixel centres, window clipped to the crop, rows
    normalised to sum 1. For up-sampling this is plain bilinear with edge clamping.
    """
    s = start.to(device=device, dtype=torch.float64).view(-1, 1, 1)
    L = length.to(device=device, dtype=torch.float64).view(-1, 1, 1)
    scale = L / out_size
    support = scale.clamp_min(1.0)
    t = torch.arange(out_size, device=device, dtype=torch.float64).view(1, -1, 1)
    center = scale * (t + 0.5)
    j = torch.arange(in_size, device=device, dtype=torch.float64).view(1, 1, -1) - s  # crop coords
    lo = torch.floor(center - support + 0.5).clamp_min(0.0)
    hi = torch.minimum(torch.floor(center + support + 0.5), L)
    w = (1.0 - ((j - center + 0.5) / support).abs()).clamp_min(0.0)
    w = w * ((j >= lo) & (j < hi))
    w = w / w.sum(dim=-1, keepdim=True)
    return w.to(torch.float32)


def crop_resize_flip(images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor,
                     flip: Tensor, size: int, round_output: bool = True) -> Tensor:
    """All samples' crop + antialiased bilinear resize to ``size`` + optional h-flip, in one op.

    ``out = Wy @ x @ Wx^T`` with per-sample matrices from :func:`resample_matrix`;
    the flip reverses the rows of ``Wx``. Returns float32 on the 0..255 scale
    (rounded when ``round_output``, like the uint8 reference).
    """
    dev = images.device
    x = images.to(torch.float32)
    # Built in float64 on the CPU (MPS has no float64), used in float32 on the images' device.
    wy = resample_matrix(top, height, images.shape[-2], size).to(dev)
    wx = resample_matrix(left, width, images.shape[-1], size)
    wx = torch.where(flip.cpu().view(-1, 1, 1), wx.flip(1), wx).to(dev)
    n, c, h, w = x.shape
    # horizontal pass as one (n) batch of (c*h, w) @ (w, size), then vertical pass per (sample, channel)
    out = torch.bmm(x.reshape(n, c * h, w), wx.transpose(1, 2)).view(n, c, h, size)
    out = torch.matmul(wy.unsqueeze(1), out)
    if round_output:
        out = out.round_()
    return out.clamp_(0.0, 255.0)


def luma(x: Tensor, quantize: bool) -> Tensor:
    """ITU-R 601-2 luma (0.2989 R + 0.587 G + 0.114 B), (n, 1, H, W); truncated like uint8."""
    r, g, b = x.unbind(dim=1)
    y = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)
    return y.floor_() if quantize else y


def _blend(x: Tensor, other: Tensor, f: Tensor, quantize: bool) -> Tensor:
    """f * x + (1 - f) * other, clamped to 0..255 (truncated when quantize)."""
    out = torch.addcmul(x * f, other, 1.0 - f).clamp_(0.0, 255.0)
    return out.floor_() if quantize else out


def adjust_brightness(x: Tensor, f: Tensor, quantize: bool = True) -> Tensor:
    out = (x * f).clamp_(0.0, 255.0)
    return out.floor_() if quantize else out


def adjust_contrast(x: Tensor, f: Tensor, quantize: bool = True) -> Tensor:
    mean = luma(x, quantize).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, f, quantize)


def adjust_saturation(x: Tensor, f: Tensor, quantize: bool = True) -> Tensor:
    return _blend(x, luma(x, quantize), f, quantize)


def adjust_hue(x: Tensor, f: Tensor, quantize: bool = True) -> Tensor:
    """Rotate hue by ``f`` turns (per sample) in HSV space. x: (n, 3, H, W) on 0..255."""
    rgb = x * (1.0 / 255)
    r, g, b = rgb.unbind(dim=1)
    v = rgb.amax(dim=1)
    delta = v - rgb.amin(dim=1)
    s = delta / torch.where(delta > 0, v, 1.0)  # 0 for greys
    is_r = v == r
    is_g = (v == g) & ~is_r
    # sector: max = R -> (G - B) / delta, max = G -> 2 + (B - R) / delta, max = B -> 4 + (R - G) / delta
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    offset = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0))
    h6 = num / delta.clamp_min(1e-12) + offset  # greys: num = 0 -> hue 0
    h = torch.remainder(h6 / 6.0 + f.view(-1, 1, 1), 1.0)
    # HSV -> RGB: channel n in (R, G, B) = (5, 3, 1): v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6.
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1)
                        + 6.0 * h.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    out = v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp
    if quantize:  # float -> uint8 as torchvision's to_dtype(scale=True): truncate x * (255 + 1 - 1e-3)
        return out.mul_(255.0 + 1.0 - 1e-3).floor_().clamp_(0.0, 255.0)
    return out.mul_(255.0).clamp_(0.0, 255.0)


#: ColorJitter op id -> batched op.
COLOR_OPS = {BRIGHTNESS: adjust_brightness, CONTRAST: adjust_contrast,
              SATURATION: adjust_saturation, HUE: adjust_hue}


def gaussian_kernels(kernel_size: int, sigma: Tensor) -> Tensor:
    """(n, k) normalised 1-D Gaussians sampled at linspace(+-(k-1)/(2 sqrt 2)) (torchvision's grid)."""
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    grid = torch.linspace(-lim, lim, steps=kernel_size, dtype=torch.float32, device=sigma.device)
    return torch.softmax(-(grid.view(1, -1) / sigma.to(torch.float32).view(-1, 1)).pow(2), dim=1)


def gaussian_blur(x: Tensor, kernel_size: int, sigma: Tensor, separable: bool = False,
                  round_output: bool = True) -> Tensor:
    """Per-sample Gaussian blur (reflect padding) with one grouped conv. x: (n, C, H, W) float."""
    n, c, hgt, wid = x.shape
    k1 = gaussian_kernels(kernel_size, sigma.to(x.device)).repeat_interleave(c, dim=0)  # (n*c, k)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, hgt, wid), [pad, pad, pad, pad], mode="reflect")
    if separable:
        y = F.conv2d(y, k1.view(n * c, 1, 1, kernel_size), groups=n * c)
        y = F.conv2d(y, k1.view(n * c, 1, kernel_size, 1), groups=n * c)
    else:
        k2 = k1.unsqueeze(2) * k1.unsqueeze(1)  # (n*c, k, k) outer product
        y = F.conv2d(y, k2.unsqueeze(1), groups=n * c)
    y = y.view(n, c, hgt, wid)
    return y.round_() if round_output else y
