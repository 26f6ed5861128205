"""Reading features for the monitors: from a step's outputs, or by a no-grad forward of the encoder."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DistributedSampler

from sslkit.dist import rank, world_size
from sslkit.errors import InvalidInputError
from sslkit.methods.batches import describe, split_eval_batch

CONTRACT = (
    "Return {'loss', 'features', 'labels'} from training_step and {'features', 'labels'} from "
    "validation_step/test_step (sslkit's methods do), or use batches ((x1, x2, ..., x_eval), y) for "
    "training and (x, y) for evaluation so the monitor can run its own forward of x_eval / x."
)


def encoder_of(pl_module: LightningModule) -> nn.Module:
    """The module's ``backbone`` if it has one (sslkit methods), else the module itself (bolts' convention)."""
    return getattr(pl_module, "backbone", pl_module)


@torch.no_grad()
def encode(pl_module: LightningModule, x: torch.Tensor) -> torch.Tensor:
    """Features ``(B, D)`` of images ``(B, C, H, W)``: a no-grad forward in eval mode.

    The encoder's previous train/eval mode is restored afterwards. The input is
    moved to the module's device and cast to its parameter dtype (for
    ``bf16-true`` models).
    """
    encoder = encoder_of(pl_module)
    param = next(encoder.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else x.dtype
    was_training = encoder.training
    encoder.eval()
    try:
        features = encoder(x.to(pl_module.device, dtype=dtype))
    finally:
        encoder.train(was_training)
    return features.flatten(1)


def step_features(
    pl_module: LightningModule, outputs: Any, batch: Any, training: bool
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(features, labels)`` of one step: the step's own outputs when they follow the contract, else a forward.

    Fallback batches: training ``((x1, x2, ..., x_eval), y)`` (the last view is
    the evaluation view, pl_bolts' convention); evaluation ``(x, y)``.
    """
    if isinstance(outputs, dict) and "features" in outputs:
        return outputs["features"], outputs.get("labels")
    try:
        if training:
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[0], (list, tuple))):
                raise InvalidInputError("not a ((views...), labels) batch")
            x, labels = batch[0][-1], batch[1]
        else:
            x, labels = split_eval_batch(batch)
    except InvalidInputError:
        raise InvalidInputError(
            f"The online evaluator cannot read this step: outputs {describe(outputs)}, batch {describe(batch)}. "
            + CONTRACT
        ) from None
    return encode(pl_module, x), labels


def shard(loader: Any) -> Iterator[Any]:
    """This rank's batches of a loader that Lightning does not shard.

    A loader whose sampler is already a ``DistributedSampler`` (e.g. sslkit's
    clean-image loaders under DDP) is iterated as is; any other gives every
    ``world_size``-th batch.
    """
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        yield from loader
        return
    r, n = rank(), world_size()
    for i, batch in enumerate(loader):
        if i % n == r:
            yield batch
