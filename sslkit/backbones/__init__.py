"""Encoders: ``create_backbone(name, **kwargs) -> nn.Module`` with ``num_features``."""

from sslkit.backbones.factory import (
    check_backbone_name,
    create_backbone,
    list_backbones,
)

__all__ = ["check_backbone_name", "create_backbone", "list_backbones"]
