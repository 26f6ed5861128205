"""``SSLDataModule``: loaders of augmented views for training and clean images for evaluation."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from sslkit.data.batched_views import BatchedMultiView, make_batched_views
from sslkit.data.datasets import ImageTensorDataset, TransformedDataset
from sslkit.data.keyed import (
    BatchedViewsCollate,
    EpochKeyedSampler,
    KeyedDataset,
    RawTrainBatch,
    collate_raw,
)
from sslkit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RECIPES,
    eval_transform,
    make_views,
)
from sslkit.dist import is_distributed, rank, world_size
from sslkit.errors import InvalidInputError


class SSLDataModule(LightningDataModule):
    """Base class of sslkit's datamodules.

    A subclass implements :meth:`load_splits`, returning raw ``(image, label)``
    datasets. This class adds the transforms and the loaders:

    - train: ``([view_1, view_2], label)`` batches, views ``(B, 3, S, S)``, with the
      view recipe of ``views`` or, when it is None, of the method being fitted
      (its ``view_recipe``: SimCLR's or BYOL's). For in-memory datasets the views are
      made per batch on the training device (see ``batched_views``);
    - val / test / predict: clean ``(images (B, 3, S, S), labels (B,))``.

    Negative labels mean "unlabelled" (e.g. STL-10's unlabelled split).

    Args:
        batch_size: per-device batch size; None for the dataset's ``default_batch_size``.
        num_workers: loader worker processes. None: 0 for batched views (measured fastest
            here: an 8-epoch default fit took 15.3 s with 0 workers, 18-19 s with one worker
            making the views), else ``min(4, CPU count)``. With batched views and workers on
            a CPU run, the workers make the views; on GPUs the device does.
        views: ``simclr``, ``byol`` or None (the method's own recipe).
        image_size: side ``S`` of the square images given to the encoder; None for the
            dataset's ``default_image_size``.
        pin_memory: pin loader memory (useful on GPU).
        batched_views: make the training views batch by batch on the training device
            (:mod:`~sslkit.data.batched_views`; the loader then yields uint8 images)
            instead of per sample in the loader. None: batched for in-memory uint8
            datasets (digits, CIFAR), per sample otherwise (image folders).
        seed: seed of the shuffling and of the augmentations, which are keyed by
            (seed, epoch, sample) so runs resume exactly (:mod:`~sslkit.data.keyed`).
            None: the seed of ``seed_everything`` (``PL_GLOBAL_SEED``), else 0.
    """

    #: Classes of the labelled splits; the online evaluator reads it.
    num_classes: int = 0
    #: Per-channel normalisation used by the transforms (and recorded on export).
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    #: Dataset-specific changes to the view recipe (arguments of
    #: :func:`~sslkit.data.transforms.augmented_view`), e.g. no flips for digits.
    view_overrides: dict[str, Any] = {}
    #: Used when ``batch_size`` / ``image_size`` are None.
    default_batch_size: int = 256
    default_image_size: int = 32

    def __init__(
        self,
        batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        views: Optional[str] = None,
        image_size: Optional[int] = None,
        pin_memory: bool = False,
        batched_views: Optional[bool] = None,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__()
        # Records the subclass's arguments too, so checkpoints can rebuild the datamodule.
        self.save_hyperparameters()
        if views is not None and views not in RECIPES:
            raise InvalidInputError(f"Unknown views '{views}'. Choose one of: {', '.join(RECIPES)} (or leave unset).")
        self.batch_size: int = self.default_batch_size if batch_size is None else batch_size
        self.image_size: int = self.default_image_size if image_size is None else image_size
        if self.batch_size < 1 or self.image_size < 1:
            raise InvalidInputError(f"batch_size and image_size must be >= 1, got {batch_size} and {image_size}.")
        self.num_workers = num_workers
        self.views = views
        self.pin_memory = pin_memory
        self.batched_views = batched_views
        self.seed = seed
        self._batched: Optional[BatchedMultiView] = None
        self._splits: Optional[tuple[Dataset, Dataset, Dataset]] = None

    # -- what subclasses implement --------------------------------------------------------
    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        """Return raw ``(train, val, test)`` datasets of ``(image, label)``."""
        raise NotImplementedError

    # -- LightningDataModule -------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        if self._splits is None:
            self._splits = self.load_splits()

    @property
    def splits(self) -> tuple[Dataset, Dataset, Dataset]:
        self.setup()
        assert self._splits is not None
        return self._splits

    def resolved_views(self) -> str:
        """The recipe in use: ``views``, else the fitted method's ``view_recipe``, else ``simclr``."""
        if self.views is not None:
            return self.views
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "view_recipe", "simclr")

    def uses_batched_views(self) -> bool:
        """Whether training views are made per batch (see ``batched_views``)."""
        in_memory = isinstance(self.splits[0], ImageTensorDataset)
        if self.batched_views and not in_memory:
            raise InvalidInputError(
                f"batched_views=True needs an in-memory uint8 training set (ImageTensorDataset); "
                f"{type(self).__name__} reads {type(self.splits[0]).__name__}. Leave batched_views unset."
            )
        return in_memory if self.batched_views is None else self.batched_views

    def _training_on_cpu(self) -> bool:
        device = getattr(getattr(self.trainer, "strategy", None), "root_device", None)
        return device is None or device.type == "cpu"

    def train_seed(self) -> int:
        """``seed``, else the seed of ``seed_everything``, else 0."""
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches: ``([view_1, view_2], labels)``, or a
        :class:`~sslkit.data.keyed.RawTrainBatch` of uint8 images when the views are batched
        (the Trainer then calls :meth:`on_after_batch_transfer`, which makes the views)."""
        train = self.splits[0]
        per_rank = len(train) // world_size()  # type: ignore[arg-type]
        if self.batch_size > per_rank:
            on = f" per device ({world_size()} devices)" if world_size() > 1 else ""
            raise InvalidInputError(
                f"batch_size {self.batch_size} is larger than the training set ({per_rank} images{on}), "
                "so no full batch can be formed. Lower --data.batch_size."
            )
        recipe, seed = self.resolved_views(), self.train_seed()
        sampler = EpochKeyedSampler(train, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
        if self.uses_batched_views():
            self._batched = self._make_batched_views()
            # CPU training with workers: a worker makes each batch's views; else the training device does.
            in_worker = self._training_on_cpu() and self.resolved_num_workers() > 0
            collate = BatchedViewsCollate(self._batched) if in_worker else collate_raw
            dataset = KeyedDataset(train, seed)
        else:
            self._batched = None
            transform = make_views(recipe, self.image_size, self.mean, self.std, **self.view_overrides)
            dataset, collate = KeyedDataset(train, seed, transform), None
        # drop_last: NT-Xent and BatchNorm need full, equal-size batches on every rank.
        return self._loader(dataset, shuffle=False, drop_last=True, sampler=sampler, collate_fn=collate)

    def make_views_of(self, batch: RawTrainBatch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([view_1, view_2], labels)`` of a raw batch, on the batch's device.

        The random parameters come from a CPU generator seeded with the batch's key, so
        the views depend only on (seed, epoch, samples), not on the device or the workers.
        """
        if self._batched is None:
            self._batched = self._make_batched_views()
        generator = torch.Generator().manual_seed(batch.key)
        return self._batched(batch.images, generator), batch.labels

    def _make_batched_views(self) -> BatchedMultiView:
        return make_batched_views(self.resolved_views(), self.image_size, self.mean, self.std, **self.view_overrides)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, RawTrainBatch):
            return batch
        views, labels = self.make_views_of(batch)
        trainer = self.trainer
        if trainer is not None:  # e.g. bf16-true: the same cast Lightning gives float inputs
            views = trainer.precision_plugin.convert_input(views)
        return views, labels

    def state_dict(self) -> dict[str, Any]:
        """The resolved data seed, so a resumed run shuffles and augments as the original did."""
        return {"seed": self.train_seed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "seed" in state_dict:
            self.seed = int(state_dict["seed"])

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits[1])

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits[2])

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits[2])

    def train_eval_dataloader(self) -> DataLoader:
        """Clean (un-augmented) images of the *training* split, e.g. for a kNN monitor's bank."""
        return self._eval_loader(self.splits[0])

    # -- helpers -------------------------------------------------------------------------------
    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        dataset = TransformedDataset(dataset, eval_transform(self.image_size, self.mean, self.std))
        # Under DDP, Lightning's default sampler pads the last shard with repeated
        # samples, which accuracies would count twice; this one shards without padding.
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False) if is_distributed() else None
        return self._loader(dataset, shuffle=False, drop_last=False, sampler=sampler)

    def resolved_num_workers(self) -> int:
        """``num_workers``, or its default (see the class docstring)."""
        if self.num_workers is not None:
            return self.num_workers
        if not self.uses_batched_views():
            return min(4, os.cpu_count() or 1)
        return 0

    def _loader(
        self,
        dataset: Dataset,
        shuffle: bool,
        drop_last: bool,
        sampler: Optional[Sampler] = None,
        collate_fn: Optional[Callable[[list[Any]], Any]] = None,
    ) -> DataLoader:
        kwargs: dict[str, Any] = {}
        workers = self.resolved_num_workers()
        if workers > 0:
            kwargs["persistent_workers"] = True
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=self.pin_memory,
            sampler=sampler,
            collate_fn=collate_fn,
            **kwargs,
        )
