"""torchvision ResNets as pooled feature extractors, optionally with a CIFAR stem."""

from __future__ import annotations

import torch
from torch import nn


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet without its classifier.

    ``cifar_stem=True`` replaces the 7x7/2 stem convolution and the max-pool
    with one 3x3/1 convolution, the usual change for 32x32 inputs (SimCLR
    paper, appendix B.9).

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``resnet152``.
        cifar_stem: use the small-image stem.
        in_chans: input channels.
        zero_init_residual: zero-init the last BN of each residual block.

    Shapes: ``(B, in_chans, H, W) -> (B, num_features)`` (512 for resnet18/34, 2048 above).

    >>> TorchvisionResNet("resnet18", cifar_stem=True)(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 512])
    """

    def __init__(
        self, name: str = "resnet18", cifar_stem: bool = False, in_chans: int = 3, zero_init_residual: bool = False
    ) -> None:
        super().__init__()
        import torchvision.models as tvm

        net = getattr(tvm, name)(weights=None, zero_init_residual=zero_init_residual)
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_chans != 3:
            net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.num_features: int = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
