"""Read the two batch formats sslkit methods take, with errors that say what was expected."""

from __future__ import annotations

from typing import Any, Optional

import torch

from sslkit.data.keyed import RawTrainBatch
from sslkit.errors import InvalidInputError

Views = list[torch.Tensor]


def describe(obj: Any) -> str:
    """A short description of a batch: types and tensor shapes."""
    if isinstance(obj, torch.Tensor):
        return f"Tensor{tuple(obj.shape)}"
    if isinstance(obj, dict):
        return "dict{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in list(obj.items())[:6]) + "}"
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(describe(o) for o in obj[:4])}{', ...' if len(obj) > 4 else ''}]"
    return type(obj).__name__


def _check_images(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise InvalidInputError(
            f"{what} must be an image tensor of shape (B, C, H, W), got {describe(x)}. "
            "Batch images with a DataLoader, and add a channel axis to grayscale images."
        )
    if not x.is_floating_point():
        raise InvalidInputError(
            f"{what} has dtype {x.dtype}; the encoder needs float images. "
            "Convert with torchvision.transforms.v2.ToDtype(torch.float32, scale=True) and normalise."
        )
    return x


def split_train_batch(batch: Any, num_views: int) -> tuple[Views, Optional[torch.Tensor]]:
    """``((view_1, ..., view_V), labels)`` or ``(view_1, ..., view_V)`` -> (views, labels or None).

    Each view is ``(B, C, H, W)``; ``labels`` is ``(B,)`` (used only by the
    online evaluator). Raises ``ValueError`` naming the expected format.

    >>> v = torch.zeros(2, 3, 8, 8)
    >>> views, y = split_train_batch(([v, v], torch.tensor([0, 1])), num_views=2)
    >>> len(views), y.tolist()
    (2, [0, 1])
    """
    hint = (
        f"A training batch must be `(views, labels)` or `views`, with views a list of {num_views} "
        "image tensors (B, C, H, W) of one image batch, e.g. from sslkit's datamodules or a dataset "
        "whose transform is sslkit.data.MultiViewTransform."
    )
    labels: Optional[torch.Tensor] = None
    if isinstance(batch, RawTrainBatch):
        raise InvalidInputError(
            "This training batch holds raw uint8 images: sslkit's datamodules make the views in their "
            "on_after_batch_transfer hook, which runs only when the datamodule is given to the Trainer. "
            "Call trainer.fit(model, datamodule=dm), or build the datamodule with batched_views=False."
        )
    if isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[0], (list, tuple)):
        views, labels = list(batch[0]), batch[1]
    elif isinstance(batch, (list, tuple)) and all(isinstance(v, torch.Tensor) and v.ndim == 4 for v in batch):
        views = list(batch)
    else:
        raise InvalidInputError(f"{hint} Got {describe(batch)}.")
    if len(views) < num_views:
        raise InvalidInputError(f"{hint} Got {len(views)} view(s): {describe(views)}.")
    views = [_check_images(v, f"view {i}") for i, v in enumerate(views[:num_views])]
    if any(v.shape != views[0].shape for v in views):
        raise InvalidInputError(f"{hint} The views have different shapes: {describe(views)}.")
    return views, labels


def split_eval_batch(batch: Any) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(images, labels)`` or ``images`` -> (images ``(B, C, H, W)``, labels ``(B,)`` or None).

    >>> x, y = split_eval_batch((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])))
    >>> tuple(x.shape), y.tolist()
    ((2, 3, 8, 8), [0, 1])
    """
    if isinstance(batch, torch.Tensor):
        return _check_images(batch, "an evaluation batch"), None
    if isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        return _check_images(batch[0], "the images of an evaluation batch"), batch[1]
    raise InvalidInputError(
        "An evaluation batch must be `(images, labels)` or `images`, with images a (B, C, H, W) "
        f"tensor of clean (un-augmented) images. Got {describe(batch)}."
    )
