"""Self-supervised losses."""

from sslkit.losses.negative_cosine import NegativeCosineLoss
from sslkit.losses.ntxent import NTXentLoss

__all__ = ["NTXentLoss", "NegativeCosineLoss"]
