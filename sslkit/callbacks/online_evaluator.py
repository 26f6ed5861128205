"""``SSLOnlineEvaluator``: fit detached probes on frozen features while the encoder trains."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy

from sslkit.callbacks.cpu_threads import single_cpu_thread
from sslkit.callbacks.features import encode, shard, step_features
from sslkit.dist import all_reduce_mean_
from sslkit.errors import InvalidInputError
from sslkit.heads import probe_head
from sslkit.optim import skip_accelerator_probe
from sslkit.rng import seeded_cpu_rng

PROBE_KINDS = ("linear", "mlp")
PROBE_OPTIMIZERS = ("adam", "adamw", "sgd")
SPLITS = ("train", "val", "test")


class SSLOnlineEvaluator(Callback):
    """Online probes: each training batch, fit classifiers on the encoder's detached features.

    The probes have their own parameters and optimizers and never send a
    gradient into the encoder. They read the features that sslkit methods
    already return (``training_step`` -> ``{"loss", "features", "labels"}``,
    ``validation_step`` / ``test_step`` -> ``{"features", "labels"}``), so they
    cost no extra encoder forward. For modules that return only a loss (code
    written for pl_bolts, with batches ``((x1, x2, x_eval), y)``) they fall back
    to a no-grad forward of the evaluation view, in eval mode.

    With ``train_dataloader`` / ``val_dataloader`` the probes learn and are
    scored on *other* labelled data (e.g. pretrain on unlabelled images, watch a
    small labelled set): every ``every_n_train_steps`` training steps one batch
    of ``train_dataloader`` goes through a no-grad forward; at validation the
    whole ``val_dataloader`` does. Under DDP each rank takes every
    ``world_size``-th batch of these loaders.

    Logged, per probe ``<p>`` (``<prefix>`` is ``online``, or ``online/<name>``):
    ``<prefix>/<p>/{train,val,test}_{acc,loss}`` and ``{val,test}_top5`` (at
    least 5 classes). The first probe is primary: an unnamed evaluator also logs
    lightning-bolts' keys ``online_train_acc``, ``online_train_loss``,
    ``online_val_acc`` (in the progress bar) and ``online_val_loss``.
    Accuracies are epoch values over all ranks' samples (torchmetrics);
    validation uses the probes in eval mode. Samples labelled -1 (unlabelled,
    e.g. STL-10's extra split) are skipped.

    Under DDP the probes start identical on every rank (seeded initialisation
    that leaves the global RNG alone) and stay identical (gradients and
    BatchNorm statistics are averaged over ranks). Probe weights and optimizer
    states are saved in checkpoints and restored on resume, and for
    ``validate``/``test`` from a checkpoint. The probes run in float32 under any
    precision; features are cast.

    Args:
        z_dim: feature width; defaults to the module's ``num_features``.
        num_classes: defaults to the datamodule's ``num_classes``.
        hidden_dim: hidden width of the ``mlp`` probe; default ``z_dim`` (the probe's cost
            grows with it, and wider bought no accuracy on digits).
        drop_p: dropout on the probe input (bolts' default was 0.2).
        probes: probe kinds to fit, from ``linear`` and ``mlp``; the first is primary.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9).
        lr: probe learning rate (1e-2 suits Adam on the standardised features; measured
            on digits, 1e-3 left the linear probe 9 points lower after 30 epochs).
        weight_decay: probe weight decay.
        seed: seed of the probes' initialisation (identical on every rank).
        name: distinguishes several evaluators in one Trainer (metric prefix and checkpoint key).
        train_dataloader: labelled ``(x, y)`` batches to fit the probes on, instead of the
            training step's features.
        val_dataloader: labelled ``(x, y)`` batches to score the probes on at validation,
            instead of the validation step's features.
        every_n_train_steps: with ``train_dataloader``, fit one of its batches every this many steps.

    >>> import lightning.pytorch as pl
    >>> evaluator = SSLOnlineEvaluator(num_classes=10)   # z_dim read from the module
    >>> trainer = pl.Trainer(callbacks=[evaluator], logger=False, enable_checkpointing=False)
    """

    def __init__(
        self,
        z_dim: Optional[int] = None,
        num_classes: Optional[int] = None,
        hidden_dim: Optional[int] = None,
        drop_p: float = 0.0,
        probes: Sequence[str] = PROBE_KINDS,
        optimizer: str = "adam",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        seed: int = 0,
        name: str = "",
        train_dataloader: Optional[Iterable[Any]] = None,
        val_dataloader: Optional[Iterable[Any]] = None,
        every_n_train_steps: int = 1,
    ) -> None:
        super().__init__()
        probes = tuple(probes)
        if not probes or len(set(probes)) != len(probes) or any(p not in PROBE_KINDS for p in probes):
            raise InvalidInputError(f"probes must be distinct names from {PROBE_KINDS}, got {list(probes)}.")
        if optimizer not in PROBE_OPTIMIZERS:
            raise InvalidInputError(
                f"Unknown probe optimizer '{optimizer}'. Choose one of: {', '.join(PROBE_OPTIMIZERS)}."
            )
        if not 0.0 <= drop_p < 1.0:
            raise InvalidInputError(f"drop_p must be in [0, 1), got {drop_p}.")
        if every_n_train_steps < 1:
            raise InvalidInputError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}.")
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.drop_p = drop_p
        self.probe_kinds = probes
        self.optimizer_name = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.name = name
        self.probe_train_loader = train_dataloader
        self.probe_val_loader = val_dataloader
        self.every_n_train_steps = every_n_train_steps
        self.probes: Optional[nn.ModuleDict] = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._metrics: dict[str, Metric] = {}
        self._train_totals: dict[str, torch.Tensor] = {}
        self._pending_state: Optional[dict[str, Any]] = None
        self._train_iter: Optional[Iterator[Any]] = None

    @property
    def primary(self) -> str:
        """The probe whose figures are logged under bolts' keys."""
        return self.probe_kinds[0]

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name, probes=list(self.probe_kinds))

    @property
    def prefix(self) -> str:
        return f"online/{self.name}" if self.name else "online"

    # -- set-up -----------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.probes is None:
            self._build(trainer, pl_module)
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None
        elif stage != "fit" and trainer.ckpt_path:
            # Lightning restores callback states only when fitting; validate/test
            # from a checkpoint must see the probes trained with that encoder.
            self._load_from_checkpoint(trainer.ckpt_path)

    def _build(self, trainer: Trainer, pl_module: LightningModule) -> None:
        z_dim = self.z_dim or getattr(pl_module, "num_features", None)
        if z_dim is None:
            raise InvalidInputError(
                "SSLOnlineEvaluator needs z_dim: pass SSLOnlineEvaluator(z_dim=...) or give the module a "
                "`num_features` attribute."
            )
        num_classes = self.num_classes or getattr(trainer.datamodule, "num_classes", None)
        if not num_classes:
            raise InvalidInputError(
                "SSLOnlineEvaluator needs num_classes: pass SSLOnlineEvaluator(num_classes=...) or use a "
                "datamodule with a `num_classes` attribute."
            )
        self.z_dim, self.num_classes = int(z_dim), int(num_classes)
        # A fixed seed in a forked RNG: identical probes on every rank, and the
        # global RNG stream (hence the encoder's run) is untouched.
        with seeded_cpu_rng(self.seed):
            self.probes = nn.ModuleDict(
                {
                    kind: probe_head(
                        self.z_dim, self.num_classes, (self.hidden_dim or self.z_dim) if kind == "mlp" else None,
                        self.drop_p,
                    )
                    for kind in self.probe_kinds
                }
            )
        # One standardisation shared by all probes (computed once per batch); in eval
        # mode it is a fixed affine map, so the linear probe stays linear.
        self.probes["norm"] = nn.BatchNorm1d(self.z_dim, affine=False)
        self.probes.to(pl_module.device)
        self.optimizers = {kind: self._make_optimizer(self.probes[kind]) for kind in self.probe_kinds}
        # Top-5 for evaluation only: it costs a top-k per training step and says little there.
        self._metrics = {
            f"{kind}/{split}_{what}": self._make_metric(what).to(pl_module.device)
            for kind in self.probe_kinds
            for split in SPLITS
            if split != "train"
            for what in ("acc", "top5", "loss")
            if what != "top5" or self.num_classes >= 5
        }
        # Training split: (correct, loss sum, count) per probe, one tensor add per step (cheaper than
        # a torchmetrics update: 0.6 ms of the evaluator's ~3 ms step on the small CNN).
        self._train_totals = {kind: torch.zeros(3, device=pl_module.device) for kind in self.probe_kinds}

    def _make_optimizer(self, probe: nn.Module) -> torch.optim.Optimizer:
        params = probe.parameters()
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        cls = torch.optim.AdamW if self.optimizer_name == "adamw" else torch.optim.Adam
        params = list(params)
        try:  # the fused kernel is the cheapest step (CUDA; CPU since torch 2.4)
            opt = cls(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)
        except RuntimeError:
            opt = cls(params, lr=self.lr, weight_decay=self.weight_decay)
        return skip_accelerator_probe(opt)

    def _make_metric(self, what: str) -> Metric:
        if what == "loss":
            return MeanMetric()
        # Labels are checked once in _prepare; torchmetrics' own checks would cost a sync per update.
        return MulticlassAccuracy(
            num_classes=self.num_classes, top_k=5 if what == "top5" else 1, average="micro", validate_args=False
        )

    # -- inputs --------------------------------------------------------------------------------
    def _prepare(
        self, features: torch.Tensor, labels: Optional[torch.Tensor]
    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        if labels is None:
            return None
        features = features.detach().flatten(1).float()
        if features.shape[1] != self.z_dim:
            raise InvalidInputError(
                f"SSLOnlineEvaluator: features have {features.shape[1]} dimensions but z_dim is {self.z_dim}. "
                "Pass the encoder's output width as z_dim, or leave it unset to read the module's num_features."
            )
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.ndim != 1:
            raise InvalidInputError(
                "SSLOnlineEvaluator: labels must be a 1-D integer tensor of class indices (-1 = unlabelled), "
                f"got {getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}."
            )
        labels = labels.to(features.device).long()
        # One host sync per batch for both checks; boolean indexing only when needed.
        low, high = torch.stack(torch.aminmax(labels)).tolist()
        if high >= self.num_classes:
            raise InvalidInputError(
                f"SSLOnlineEvaluator: labels must lie in [0, num_classes={self.num_classes}); got a label "
                f"{high}. Set num_classes to the number of classes in your data."
            )
        if low >= 0:
            return features, labels
        keep = labels >= 0
        return features[keep], labels[keep]

    def _train_batch(self, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> Any:
        if self.probe_train_loader is None:
            return self._prepare(*step_features(pl_module, outputs, batch, training=True))
        if batch_idx % self.every_n_train_steps:
            return None
        if self._train_iter is None:
            self._train_iter = shard(self.probe_train_loader)
        own = next(self._train_iter, None)
        if own is None:  # one pass done: start the next
            self._train_iter = shard(self.probe_train_loader)
            own = next(self._train_iter)
        x, labels = own
        return self._prepare(encode(pl_module, x), labels)

    # -- training ------------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        assert self.probes is not None
        prepared = self._train_batch(pl_module, outputs, batch, batch_idx)
        if prepared is None:
            return
        features, labels = prepared
        n = len(labels)
        # The probes train in float32 under any precision plugin, on one thread on the CPU.
        with torch.autocast(device_type=features.device.type, enabled=False), single_cpu_thread(features.device):
            norm = _train_mode(self.probes["norm"])
            if n > 1:  # BatchNorm needs two samples; the collectives below run on every rank regardless
                with torch.no_grad():
                    features = norm(features)
            all_reduce_mean_(norm.buffers())
            for kind in self.probe_kinds:
                probe = _train_mode(self.probes[kind])
                opt = self.optimizers[kind]
                for p in probe.parameters():  # = opt.zero_grad(set_to_none=True), minus its Python overhead
                    p.grad = None
                if n > 1:
                    with torch.enable_grad():
                        logits = probe(features)
                        loss = F.cross_entropy(logits, labels)
                    loss.backward()
                    correct = (logits.detach().argmax(1) == labels).sum().float()
                    self._train_totals[kind] += torch.stack([correct, loss.detach() * n, torch.ones_like(correct) * n])
                for p in probe.parameters():
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                all_reduce_mean_(p.grad for p in probe.parameters())
                opt.step()
                all_reduce_mean_(probe.buffers())

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log_split(pl_module, "train")

    # -- evaluation ------------------------------------------------------------------------------
    def _update(self, kind: str, split: str, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        for what, metric in self._metrics.items():
            if what.startswith(f"{kind}/{split}_"):
                if what.endswith("_loss"):
                    metric.update(loss, weight=len(labels))
                else:
                    metric.update(logits, labels)

    @torch.no_grad()
    def _score(self, features: torch.Tensor, labels: Optional[torch.Tensor], split: str) -> None:
        assert self.probes is not None
        prepared = self._prepare(features, labels)
        if prepared is None or not len(prepared[1]):
            return
        features, labels = prepared
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = self.probes["norm"].eval()(features)
            for kind in self.probe_kinds:
                logits = self.probes[kind].eval()(features)
                self._update(kind, split, logits, labels, F.cross_entropy(logits, labels))

    def _eval_batch(self, pl_module: LightningModule, outputs: Any, batch: Any, split: str) -> None:
        if split == "val" and self.probe_val_loader is not None:
            return  # scored on its own loader at the end of the epoch
        self._score(*step_features(pl_module, outputs, batch, training=False), split)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_batch(pl_module, outputs, batch, "val")

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_batch(pl_module, outputs, batch, "test")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.probe_val_loader is not None and not trainer.sanity_checking:
            for x, labels in shard(self.probe_val_loader):
                self._score(encode(pl_module, x), labels, "val")
        self._log_split(pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log_split(pl_module, "test")

    def _log_split(self, pl_module: LightningModule, split: str) -> None:
        if split == "train":
            self._log_train(pl_module)
            return
        for key, metric in self._metrics.items():
            kind, what = key.split("/")
            if not what.startswith(split + "_") or not metric.update_count:
                continue
            value = metric.compute()  # synced over ranks by torchmetrics
            metric.reset()
            self._log(pl_module, kind, what, value)

    def _log_train(self, pl_module: LightningModule) -> None:
        for kind, totals in self._train_totals.items():
            all_reduce_mean_([totals])  # every rank, every epoch; the ratios below are sums over ranks
            if totals[2] > 0:
                self._log(pl_module, kind, "train_acc", totals[0] / totals[2])
                self._log(pl_module, kind, "train_loss", totals[1] / totals[2])
            totals.zero_()

    def _log(self, pl_module: LightningModule, kind: str, what: str, value: torch.Tensor) -> None:
        pl_module.log(f"{self.prefix}/{kind}/{what}", value, on_step=False, on_epoch=True)
        if kind == self.primary and not self.name and not what.endswith("_top5"):
            pl_module.log(f"online_{what}", value, on_step=False, on_epoch=True, prog_bar=(what == "val_acc"))

    # -- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.probes is None:
            return {}
        return {
            "probes": self.probes.state_dict(),
            "optimizers": {kind: opt.state_dict() for kind, opt in self.optimizers.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if self.probes is None:
            self._pending_state = state_dict
        else:
            self._apply_state(state_dict)

    def _load_from_checkpoint(self, path: str) -> None:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        state = checkpoint.get("callbacks", {}).get(self.state_key)
        if state:
            self._apply_state(state)
        else:
            rank_zero_warn(
                f"SSLOnlineEvaluator: '{path}' holds no probe state for {self.state_key}; the probes are "
                "untrained, so online accuracies are meaningless in this run."
            )

    def _apply_state(self, state: dict[str, Any]) -> None:
        assert self.probes is not None
        saved = set(state["optimizers"])
        if saved != set(self.probe_kinds):
            rank_zero_warn(
                f"SSLOnlineEvaluator: the checkpoint has probes {sorted(saved)}, this run has "
                f"{sorted(self.probe_kinds)}; loading the probes both have."
            )
        own = self.probes.state_dict()
        try:
            self.probes.load_state_dict({k: v for k, v in state["probes"].items() if k in own}, strict=False)
        except RuntimeError as err:
            raise InvalidInputError(
                f"SSLOnlineEvaluator: the checkpoint's probes do not fit this run (z_dim={self.z_dim}, "
                f"num_classes={self.num_classes}): {err}"
            ) from None
        for kind in saved & set(self.probe_kinds):
            self.optimizers[kind].load_state_dict(state["optimizers"][kind])


def _train_mode(module: nn.Module) -> nn.Module:
    """``module.train()`` only when needed: the call walks every submodule, each step."""
    return module if module.training else module.train()
