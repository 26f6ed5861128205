"""Encoders: ``create_backbone(name, **kwargs) -> nn.Module`` with ``num_features``."""

from sslkit.backbones.factory import create_backbone, list_backbones

__all__ = ["create_backbone", "list_backbones"]
