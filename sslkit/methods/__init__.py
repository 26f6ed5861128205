"""Self-supervised methods as LightningModules."""

from sslkit.methods.base import SSLMethod
from sslkit.methods.byol import BYOL
from sslkit.methods.simclr import SimCLR

__all__ = ["BYOL", "SSLMethod", "SimCLR"]
