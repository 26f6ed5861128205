"""The offline linear-evaluation protocol: a multinomial logistic regression on frozen features.

Features are standardised with the training set's statistics, the L2 penalty
is chosen on a held-out part of the training set from a small grid, and the
classifier is then refitted on the whole training set with L-BFGS (full
batch, up to 200 iterations), as in the transfer protocol of the SimCLR paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.errors import InvalidInputError

#: L2 penalties tried on the held-out split (on the mean loss, per weight squared). No 0: on
#: separable features an unpenalised fit never converges.
WEIGHT_DECAYS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class LinearEvalResult:
    """Accuracies of one evaluation (fractions in [0, 1]); ``top5`` is None below 6 classes."""

    top1: float
    top5: Optional[float]
    train_top1: float
    weight_decay: float
    num_train: int
    num_test: int
    num_features: int
    protocol: str = "linear"
    labels_per_class: Optional[int] = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(features: torch.Tensor, labels: torch.Tensor, num_classes: int, what: str) -> None:
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise InvalidInputError(
            f"{what}: features must be (N, D) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}."
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InvalidInputError(
            f"{what}: labels must be in [0, {num_classes - 1}], found {int(labels.min())}..{int(labels.max())}. "
            "Unlabelled samples (-1) cannot be used for linear evaluation."
        )
    if features.shape[0] < 2:
        raise InvalidInputError(f"{what}: needs at least 2 samples, got {features.shape[0]}.")
    if not torch.isfinite(features).all():
        raise InvalidInputError(f"{what}: the features contain NaN or Inf; the encoder's weights are broken.")


def fit_linear_classifier(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float = 1e-4, max_iter: int = 200
) -> nn.Linear:
    """Multinomial logistic regression on ``features (N, D)``, ``labels (N,)``, by full-batch L-BFGS.

    Minimises ``cross_entropy + weight_decay / 2 * ||W||^2`` (bias not penalised).
    Standardisation is folded into the returned layer, so it applies to raw features.

    >>> x = torch.cat([torch.randn(50, 2) - 3, torch.randn(50, 2) + 3]); y = torch.arange(2).repeat_interleave(50)
    >>> (fit_linear_classifier(x, y, 2)(x).argmax(1) == y).float().mean().item()
    1.0
    """
    _check(features, labels, num_classes, "fit_linear_classifier")
    x = features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, labels) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    layer = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        scaled = w.detach() / std[:, None]
        layer.weight.copy_(scaled.T.float())
        layer.bias.copy_((b.detach() - mean @ scaled).float())
    return layer


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest logits.

    >>> topk_accuracy(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), 2)
    0.5
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(1).double().mean())


def select_weight_decay(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> float:
    """The penalty of ``weight_decays`` with the best accuracy on a seeded held-out part of the training set.

    Ties go to the larger penalty (the simpler model).
    """
    n = features.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(val_fraction * n)))
    val, fit = order[:n_val], order[n_val:]
    best, best_acc = weight_decays[0], -1.0
    for wd in weight_decays:
        clf = fit_linear_classifier(features[fit], labels[fit], num_classes, wd)
        with torch.no_grad():
            acc = topk_accuracy(clf(features[val]), labels[val], 1)
        if acc >= best_acc:
            best, best_acc = wd, acc
    return best


def per_class_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` seeded random samples of each class (all of a smaller class), sorted.

    >>> per_class_subset(torch.tensor([0, 0, 0, 1, 1]), 2).shape
    torch.Size([4])
    """
    if per_class < 1:
        raise InvalidInputError(f"labels_per_class must be >= 1, got {per_class}.")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def linear_eval(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: Optional[int] = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    labels_per_class: Optional[int] = None,
    seed: int = 0,
) -> LinearEvalResult:
    """Fit on the training features (penalty chosen on a held-out part), report test top-1/top-5.

    Args:
        train_features, test_features: ``(N, D)`` frozen features of clean images.
        train_labels, test_labels: ``(N,)`` in ``[0, num_classes)``.
        num_classes: inferred from the labels when None.
        weight_decays: the penalty grid; one value skips the selection.
        labels_per_class: use only this many labelled training samples per class
            (the few-label protocol, which separates encoders more than all labels).
        seed: of the held-out split and of the per-class subset.

    >>> x = torch.cat([torch.randn(60, 4) - 2, torch.randn(60, 4) + 2]); y = torch.arange(2).repeat_interleave(60)
    >>> linear_eval(x[::2], y[::2], x[1::2], y[1::2]).top1
    1.0
    """
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    _check(test_features, test_labels, num_classes, "linear_eval test split")
    if labels_per_class is not None:
        keep = per_class_subset(train_labels, labels_per_class, seed)
        train_features, train_labels = train_features[keep], train_labels[keep]
    if len(weight_decays) > 1:
        wd = select_weight_decay(train_features, train_labels, num_classes, weight_decays, seed=seed)
    else:
        wd = weight_decays[0]
    clf = fit_linear_classifier(train_features, train_labels, num_classes, wd)
    with torch.no_grad():
        test_logits, train_logits = clf(test_features), clf(train_features)
    return LinearEvalResult(
        top1=topk_accuracy(test_logits, test_labels, 1),
        top5=topk_accuracy(test_logits, test_labels, 5) if num_classes > 5 else None,
        train_top1=topk_accuracy(train_logits, train_labels, 1),
        weight_decay=wd,
        num_train=int(train_features.shape[0]),
        num_test=int(test_features.shape[0]),
        num_features=int(train_features.shape[1]),
        labels_per_class=labels_per_class,
    )
