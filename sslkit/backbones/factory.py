"""``create_backbone(name)``: one entry point for every encoder sslkit can train."""

from __future__ import annotations

import difflib
from functools import partial
from typing import Any, Callable

from torch import nn

from sslkit.backbones.resnet import TorchvisionResNet
from sslkit.backbones.small_cnn import SmallCNN
from sslkit.errors import InvalidInputError

TIMM_PREFIX = "timm:"

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    **{
        name: partial(TorchvisionResNet, name)
        for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
    },
}


def list_backbones() -> list[str]:
    """Names that :func:`create_backbone` knows besides ``timm:<any timm model>``."""
    return sorted(_REGISTRY)


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build an encoder by name.

    Names:
        - ``small_cnn``: :class:`~sslkit.backbones.small_cnn.SmallCNN` (CPU-friendly).
        - ``resnet18`` ... ``resnet152``: torchvision ResNets; ``cifar_stem=True`` for 32x32 inputs.
        - ``timm:<model>``: any timm model, e.g. ``timm:resnet18`` or
          ``timm:vit_tiny_patch16_224`` with ``img_size=32, patch_size=4``.

    Every backbone maps ``(B, C, H, W)`` to pooled ``(B, num_features)`` and has
    a ``num_features`` attribute. Weights are random unless a timm model is
    asked for with ``pretrained=True``.

    >>> import torch
    >>> net = create_backbone("small_cnn", width=8)
    >>> net(torch.randn(2, 3, 32, 32)).shape == (2, net.num_features)
    True
    """
    check_backbone_name(name)
    if name.startswith(TIMM_PREFIX):
        from sslkit.backbones.timm_backbone import create_timm_backbone

        return create_timm_backbone(name[len(TIMM_PREFIX) :], **kwargs)
    return _REGISTRY[name](**kwargs)


def check_backbone_name(name: str) -> None:
    """Raise :class:`~sslkit.errors.InvalidInputError` listing close matches when ``name`` is unknown.

    >>> check_backbone_name("resnet18")
    """
    if name.startswith(TIMM_PREFIX):
        from sslkit.backbones.timm_backbone import check_timm_name

        check_timm_name(name[len(TIMM_PREFIX) :])
    elif name not in _REGISTRY:
        close = difflib.get_close_matches(name, list_backbones(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise InvalidInputError(
            f"Unknown backbone '{name}'.{hint} Known: {', '.join(list_backbones())}, "
            f"or 'timm:<model name>' for any timm model."
        )
