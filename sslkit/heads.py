"""MLP heads: the projector and predictor of SSL methods, and probe classifiers."""

from __future__ import annotations

from torch import nn

from sslkit.errors import InvalidInputError


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int = 2,
    batch_norm: bool = True,
    last_batch_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A ``Linear -> [BN] -> ReLU -> ... -> Linear`` stack.

    ``num_layers`` counts the linear layers (2 for SimCLR's and BYOL's heads).
    ``last_batch_norm`` appends an affine-free BatchNorm to the output, as in
    SimCLR v2's projector. ``dropout`` is applied before every linear layer
    after the first (bolts' probe applies it to the input; see
    :func:`probe_head`).

    Shapes: ``(B, in_dim) -> (B, out_dim)``.

    >>> import torch
    >>> mlp(16, 32, 8)(torch.randn(4, 16)).shape
    torch.Size([4, 8])
    """
    if num_layers < 1:
        raise InvalidInputError(f"mlp: num_layers must be >= 1, got {num_layers}.")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    if last_batch_norm:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def probe_head(
    in_dim: int, num_classes: int, hidden_dim: int | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """A classifier on frozen features: linear when ``hidden_dim`` is None, else a 1-hidden-layer MLP.

    :class:`~sslkit.callbacks.SSLOnlineEvaluator` feeds it standardised features
    (one shared affine-free BatchNorm, as in MAE's linear probing), so the
    linear probe stays linear and is insensitive to the feature scale, which
    drifts while the encoder trains.

    Shapes: ``(B, in_dim) -> (B, num_classes)``.

    >>> import torch
    >>> probe_head(16, 10)(torch.randn(4, 16)).shape
    torch.Size([4, 10])
    """
    layers: list[nn.Module] = []
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    if hidden_dim is None:
        layers.append(nn.Linear(in_dim, num_classes))
    else:
        # No BatchNorm inside: the inputs are already standardised, and a BN here costs
        # about a tenth of the evaluator's step.
        layers.append(mlp(in_dim, hidden_dim, num_classes, num_layers=2, batch_norm=False))
    return nn.Sequential(*layers)
