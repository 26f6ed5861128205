"""sslkit: self-supervised learning on PyTorch Lightning 2.

The public API is re-exported here lazily, so ``import sslkit`` stays light
(timm and scikit-learn load only when a backbone or dataset needs them).

>>> import sslkit
>>> sslkit.SimCLR.__name__
'SimCLR'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SSLMethod": "sslkit.methods",
    "SimCLR": "sslkit.methods",
    "BYOL": "sslkit.methods",
    "SSLOnlineEvaluator": "sslkit.callbacks",
    "KNNOnlineEvaluator": "sslkit.callbacks",
    "create_backbone": "sslkit.backbones",
    "list_backbones": "sslkit.backbones",
    "NTXentLoss": "sslkit.losses",
    "NegativeCosineLoss": "sslkit.losses",
    "SSLDataModule": "sslkit.data",
    "DigitsDataModule": "sslkit.data",
    "CIFAR10DataModule": "sslkit.data",
    "CIFAR100DataModule": "sslkit.data",
    "STL10DataModule": "sslkit.data",
    "ImageFolderDataModule": "sslkit.data",
    "export_encoder": "sslkit.export",
    "load_encoder": "sslkit.export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sslkit' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
