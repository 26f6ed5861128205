"""``KNNOnlineEvaluator``: weighted-kNN accuracy of the backbone's features at each validation."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics.classification import MulticlassAccuracy

from sslkit.callbacks.features import encode, shard, step_features
from sslkit.dist import gather_variable
from sslkit.errors import InvalidInputError
from sslkit.knn import weighted_knn_scores


class KNNOnlineEvaluator(Callback):
    """Weighted kNN monitor (InstDisc-style): no training, one number that tracks feature quality.

    At the start of each validation, a no-grad forward over *clean* training
    images builds a bank of L2-normalised backbone features (each rank encodes
    its shard; the bank is gathered from all ranks). Each validation batch's
    features (read from ``validation_step``'s outputs, so no extra forward) are
    classified by :func:`~sslkit.knn.weighted_knn_scores`, chunked so memory
    stays bounded. Logs ``online_knn_acc`` over all ranks' validation samples.

    Args:
        k: neighbours.
        temperature: vote weight ``exp(sim / temperature)``.
        num_classes: defaults to the datamodule's ``num_classes``.
        bank_dataloader: labelled ``(x, y)`` clean images for the bank; defaults to the
            datamodule's ``train_eval_dataloader()`` (sslkit's datamodules have it).
        chunk_size: bank rows compared at once.
        every_n_epochs: build the bank and score every this many epochs.

    >>> knn = KNNOnlineEvaluator(k=20)
    """

    def __init__(
        self,
        k: int = 200,
        temperature: float = 0.1,
        num_classes: Optional[int] = None,
        bank_dataloader: Optional[Iterable[Any]] = None,
        chunk_size: int = 4096,
        every_n_epochs: int = 1,
    ) -> None:
        if k < 1 or temperature <= 0 or chunk_size < 1 or every_n_epochs < 1:
            raise InvalidInputError(
                f"KNNOnlineEvaluator: need k >= 1, temperature > 0, chunk_size >= 1, every_n_epochs >= 1; got "
                f"k={k}, temperature={temperature}, chunk_size={chunk_size}, every_n_epochs={every_n_epochs}."
            )
        self.k = k
        self.temperature = temperature
        self.num_classes = num_classes
        self.bank_dataloader = bank_dataloader
        self.chunk_size = chunk_size
        self.every_n_epochs = every_n_epochs
        self._bank: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._accuracy: Optional[MulticlassAccuracy] = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        num_classes = self.num_classes or getattr(trainer.datamodule, "num_classes", None)
        if not num_classes:
            raise InvalidInputError(
                "KNNOnlineEvaluator needs num_classes: pass KNNOnlineEvaluator(num_classes=...) or use a "
                "datamodule with a `num_classes` attribute."
            )
        self.num_classes = int(num_classes)
        self._accuracy = MulticlassAccuracy(num_classes=self.num_classes, average="micro").to(pl_module.device)

    def _bank_loader(self, trainer: Trainer) -> Iterable[Any]:
        if self.bank_dataloader is not None:
            return self.bank_dataloader
        make = getattr(trainer.datamodule, "train_eval_dataloader", None)
        if make is None:
            raise InvalidInputError(
                "KNNOnlineEvaluator needs clean labelled training images for its bank: pass "
                "bank_dataloader=..., or use an sslkit datamodule (it has train_eval_dataloader())."
            )
        return make()

    def _active(self, trainer: Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        feats, labels = [], []
        for x, y in shard(self._bank_loader(trainer)):
            feats.append(F.normalize(encode(pl_module, x).float(), dim=1))
            labels.append(y.to(pl_module.device).long())
        bank = gather_variable(torch.cat(feats))
        bank_labels = gather_variable(torch.cat(labels))
        keep = bank_labels >= 0
        self._bank = (bank[keep], bank_labels[keep])

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._bank is None:
            return
        features, labels = step_features(pl_module, outputs, batch, training=False)
        if labels is None:
            return
        labels = labels.to(features.device)
        keep = labels >= 0
        query = F.normalize(features.detach().flatten(1).float()[keep], dim=1)
        scores = weighted_knn_scores(
            query, *self._bank, self.num_classes, self.k, self.temperature, self.chunk_size  # type: ignore[arg-type]
        )
        assert self._accuracy is not None
        self._accuracy.update(scores, labels[keep].long())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._bank is None:
            return
        assert self._accuracy is not None
        if self._accuracy.update_count:
            pl_module.log("online_knn_acc", self._accuracy.compute(), on_step=False, on_epoch=True)
        self._accuracy.reset()
        self._bank = None  # free it between validations
