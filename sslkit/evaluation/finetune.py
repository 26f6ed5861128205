"""Fine-tuning: train the whole encoder plus a linear head, for comparison with linear evaluation."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sslkit.data.datasets import TransformedDataset
from sslkit.evaluation.embed import embed
from sslkit.evaluation.linear import LinearEvalResult, topk_accuracy
from sslkit.rng import seeded_cpu_rng


def finetune_eval(
    encoder: nn.Module,
    train: Dataset,
    test: Dataset,
    num_classes: int,
    train_transform: Callable[[Any], torch.Tensor],
    test_transform: Callable[[Any], torch.Tensor],
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    device: Optional[torch.device | str] = None,
) -> LinearEvalResult:
    """Train a copy of ``encoder`` with a new linear head on ``train``; report accuracy on ``test``.

    AdamW with a cosine schedule over ``epochs``; BatchNorm layers train too.
    ``encoder`` itself is left unchanged. Items are ``(image, label)``;
    ``train_transform`` (usually light augmentation) and ``test_transform``
    map an image to the encoder's ``(3, S, S)`` input.

    >>> # result = finetune_eval(encoder, train_ds, test_ds, 10, aug, transform, epochs=5)
    """
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    backbone = copy.deepcopy(encoder).to(device)
    with seeded_cpu_rng(seed):
        head = nn.Linear(int(backbone.num_features), num_classes).to(device)
    model = nn.Sequential(backbone, nn.Flatten(1), head)
    loader = DataLoader(
        TransformedDataset(train, train_transform), batch_size=batch_size, shuffle=True, drop_last=False, generator=gen
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    with seeded_cpu_rng(seed):  # the augmentations draw from the global CPU RNG
        for _ in range(epochs):
            model.train()
            for x, y in loader:
                loss = F.cross_entropy(model(x.to(device)), torch.as_tensor(y).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    test_logits, test_labels = embed(model, test, test_transform, batch_size, device)
    train_logits, train_labels = embed(model, train, test_transform, batch_size, device)
    return LinearEvalResult(
        top1=topk_accuracy(test_logits, test_labels, 1),
        top5=topk_accuracy(test_logits, test_labels, 5) if num_classes > 5 else None,
        train_top1=topk_accuracy(train_logits, train_labels, 1),
        weight_decay=weight_decay,
        num_train=len(train),  # type: ignore[arg-type]
        num_test=len(test),  # type: ignore[arg-type]
        num_features=int(backbone.num_features),
        protocol=f"finetune ({epochs} epochs, AdamW lr {lr})",
    )
