"""The backbone contract over every name create_backbone knows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sslkit.backbones import create_backbone, list_backbones

CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in list_backbones()] + [
    ("resnet18", {"cifar_stem": True}),
    ("timm:resnet18", {}),
    ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}{'+' if k else ''}" for n, k in CASES])
def test_backbone_contract(name: str, kwargs: dict[str, Any]) -> None:
    net = create_backbone(name, **kwargs).eval()
    assert isinstance(net.num_features, int) and net.num_features > 0
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, net.num_features)
    assert torch.isfinite(out).all()


def test_cifar_stem_keeps_resolution() -> None:
    plain = create_backbone("resnet18").net
    cifar = create_backbone("resnet18", cifar_stem=True).net
    x = torch.randn(1, 3, 32, 32)
    assert cifar.maxpool(cifar.relu(cifar.bn1(cifar.conv1(x)))).shape[-1] == 32
    assert plain.maxpool(plain.relu(plain.bn1(plain.conv1(x)))).shape[-1] == 8


def test_unknown_backbone_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet19'.*Did you mean: resnet18"):
        create_backbone("resnet19")


def test_unknown_timm_model_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"Unknown timm model 'timm:resnet181'.*timm:resnet18"):
        create_backbone("timm:resnet181")


def test_import_sslkit_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, sslkit; sslkit.SimCLR; print('timm' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
