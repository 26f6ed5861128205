"""Any timm model as a pooled feature extractor."""

from __future__ import annotations

import difflib

from torch import nn

from sslkit.errors import InvalidInputError


def check_timm_name(name: str) -> None:
    """Raise a clear error, with close matches, when timm has no model ``name``."""
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join('timm:' + c for c in close)}." if close else ""
        raise InvalidInputError(f"Unknown timm model 'timm:{name}'.{hint} See timm.list_models() for all names.")


def create_timm_backbone(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
    """``timm.create_model(name, num_classes=0, ...)``: pooled ``(B, num_features)`` output.

    ``pretrained=True`` downloads weights, so it is off by default (sslkit never
    downloads unless asked). Extra kwargs go to timm, e.g. ``img_size=32,
    patch_size=4`` for a ViT on 32x32 images.

    >>> import torch
    >>> m = create_timm_backbone("resnet18")
    >>> m(torch.randn(2, 3, 32, 32)).shape == (2, m.num_features)
    True
    """
    import timm

    check_timm_name(name)
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
