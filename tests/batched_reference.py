"""The v2 recipe's steps through torchvision's functional ops, image by image, with given parameters.

Test helper: it shows that :class:`sslkit.data.batched_views.BatchedView` computes what
torchvision computes for the same random parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sslkit.data.batched_ops import BRIGHTNESS, CONTRAST, HUE, SATURATION
from sslkit.data.batched_views import BatchedView, ViewParams


def torchvision_reference(view: BatchedView, images: Tensor, params: ViewParams) -> Tensor:
    """The v2 recipe's steps via ``torchvision.transforms.v2.functional``, image by image, with ``params``."""
    from torchvision.transforms.v2 import functional as TF

    ops = {BRIGHTNESS: TF.adjust_brightness, CONTRAST: TF.adjust_contrast,
           SATURATION: TF.adjust_saturation, HUE: TF.adjust_hue}
    outs = []
    for i in range(images.shape[0]):
        img = images[i]
        if img.shape[0] == 1:
            img = TF.grayscale_to_rgb(img)
        img = TF.resized_crop(img, int(params.top[i]), int(params.left[i]), int(params.height[i]),
                              int(params.width[i]), size=[view.size, view.size], antialias=True)
        if params.flip[i]:
            img = TF.horizontal_flip(img)
        if params.jitter[i]:
            factors = (params.brightness, params.contrast, params.saturation, params.hue)
            for op in params.order[i].tolist():
                if view.jitter_ranges[op] is not None:
                    img = ops[op](img, float(factors[op][i]))
        if params.grayscale[i]:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if params.blur[i]:
            s = float(params.sigma[i])
            img = TF.gaussian_blur(img, [view.kernel_size, view.kernel_size], [s, s])
        if view.solarize_prob > 0 and params.solarize[i]:
            img = TF.solarize(img, threshold=128)
        img = TF.to_dtype(img, torch.float32, scale=True)
        outs.append(TF.normalize(img, list(view.mean), list(view.std)))
    return torch.stack(outs)
