"""SimCLR under three systems: sslkit vs lightning-bolts 0.7.0 vs lightly, same encoder and head.

Every system trains the *same* backbone (sslkit's ``small_cnn``, or the CIFAR-stem
``resnet18``), the *same* projection head (Linear(no bias) -> BN -> ReLU -> Linear,
hidden 512, out 128), NT-Xent at the same temperature, the same batch size,
AdamW (lr, weight decay) with a per-step cosine decay to 0 and no warm-up, for the
same number of epochs. What differs is each system's own parts:

- ``sslkit``: ``sslkit.methods.SimCLR`` + its datamodule + ``sslkit.callbacks.SSLOnlineEvaluator``
  (defaults: linear + MLP probes on the step's features, no extra forward).
- ``bolts``: a plain Lightning 2 module, bolts' ``nt_xent_loss`` (on L2-normalised
  projections, as bolts' SimCLR does), bolts' ``SSLOnlineEvaluator`` (defaults: linear,
  dropout 0.2, Adam 1e-4, its own no-grad forward of the batch's last view), patched
  only in one hook signature.
- ``lightly``: a plain Lightning 2 module with lightly's ``SimCLRProjectionHead``,
  ``NTXentLoss`` and ``OnlineLinearClassifier`` (called inside the steps, its
  parameters in the main optimizer without weight decay, as lightly's benchmarks do).

Modes:
- ``out-of-the-box``: each system's own SimCLR data pipeline at the dataset's image size:
  sslkit its datamodule (digits: crop scale (0.3, 1), no flips); bolts
  ``SimCLRTrainDataTransform`` / ``SimCLREvalDataTransform`` (paper set, blur on,
  jitter 1.0, dataset normalisation as bolts' own CLI passes one) on PIL images;
  lightly ``SimCLRTransform(input_size=S)`` with its defaults (ImageNet
  normalisation) on PIL images, clean val/eval images Resize -> ToTensor -> Normalize.
- ``controlled``: every system reads the loaders of the sslkit datamodule (same
  views, same clean images, same workers).

Loader settings (``--loaders``): ``common`` (default) gives the peers sslkit's
settings (2 workers, persistent, no pinning, shuffle, drop_last); ``native`` uses the
peer's own defaults (bolts' VisionDataModule: 0 workers, pin_memory, no drop_last;
lightly's examples: 8 workers, drop_last). Out-of-the-box mode only.

Per run (each in its own process; rounds interleaved and the system order rotated):
- images/s of pretraining epochs 2..N end to end (data loading, steps, evaluator,
  epoch-end hooks; the final validation excluded): from the end of epoch 1's last
  step to the end of epoch N's last step. With ``--epochs 1`` epoch 1 is used and
  the row is flagged;
- evaluator time: median per step of the evaluator's ``on_train_batch_end`` (sslkit,
  bolts) or of the ``online_classifier.training_step`` call inside the step (lightly;
  its backward and optimizer step are fused with the encoder's and not separable), and
  its share of the timed epochs' wall time;
- online linear-probe accuracy on the val split after N epochs (each system's own key);
- offline: logistic regression (standardised) on frozen clean train features -> test
  split, and weighted kNN (k=200, T=0.1, cosine) on the same features;
- peak RSS: ``ru_maxrss`` of the run's process, and of its loader workers (RUSAGE_CHILDREN).

Every run records the 1-minute load average before and after: the machines are shared, so
compare only runs of one invocation, and distrust rows whose load was high.

Usage (from the repo root; peers: pip install -e ".[bench]" and, for bolts, see benchmarks/README.md):
    python benchmarks/compare_peers.py --data digits --model small_cnn --mode out-of-the-box --epochs 30 --rounds 1 --seeds 0 1
    python benchmarks/compare_peers.py --data glyphs --mode controlled --epochs 10 --subset 4096
    python benchmarks/compare_peers.py --data digits --model resnet18 --epochs 2 --subset 512   # ~5 s/step on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

SYSTEMS = ("sslkit", "bolts", "lightly")
MODES = ("out-of-the-box", "controlled")
#: The harder real dataset (see ../shared/data/README.md); --glyphs overrides.
GLYPHS = Path(__file__).resolve().parents[2] / "shared" / "data" / "glyphs_kt.npz"
TEMPERATURE = 0.2


# ----------------------------------------------------------------------------------- peers ---
def import_bolts() -> dict[str, Any]:
    """lightning-bolts 0.7.0 on Lightning 2: one import alias (see DESIGN.md) and one hook patch."""
    import lightning_utilities.core.apply_func as apply_func

    sys.modules.setdefault("pytorch_lightning.utilities.apply_func", apply_func)
    import pl_bolts
    from pl_bolts.callbacks.ssl_online import SSLOnlineEvaluator as BoltsEvaluator
    from pl_bolts.models.self_supervised.simclr.simclr_module import SimCLR as BoltsSimCLR
    from pl_bolts.transforms.self_supervised.simclr_transforms import (
        SimCLREvalDataTransform,
        SimCLRTrainDataTransform,
    )

    class PatchedBoltsEvaluator(BoltsEvaluator):  # type: ignore[misc]
        """Lightning 2 calls ``on_validation_batch_end`` without ``dataloader_idx`` for one loader."""

        def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                                    batch_idx: int, dataloader_idx: int = 0) -> None:
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    return {
        "version": pl_bolts.__version__,
        "Evaluator": PatchedBoltsEvaluator,
        # nt_xent_loss never reads `self`; call it unbound instead of building bolts' module.
        "nt_xent": lambda a, b, t: BoltsSimCLR.nt_xent_loss(None, a, b, t),
        "TrainTransform": SimCLRTrainDataTransform,
        "EvalTransform": SimCLREvalDataTransform,
    }


def import_lightly() -> dict[str, Any]:
    import lightly
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from lightly.transforms.utils import IMAGENET_NORMALIZE

    try:
        from lightly.utils.benchmarking import OnlineLinearClassifier
    except ImportError:  # older lightly: no online probe
        OnlineLinearClassifier = None
    return {
        "version": lightly.__version__,
        "NTXentLoss": NTXentLoss,
        "Head": SimCLRProjectionHead,
        "Transform": SimCLRTransform,
        "normalize": IMAGENET_NORMALIZE,
        "Probe": OnlineLinearClassifier,
    }


def availability(system: str) -> dict[str, Any]:
    """``{"ok": True, "version": ...}`` or ``{"ok": False, "reason": ...}`` (run in a child process)."""
    try:
        if system == "sslkit":
            import sslkit

            return {"ok": True, "version": getattr(sslkit, "__version__", "?")}
        peer = import_bolts() if system == "bolts" else import_lightly()
        return {"ok": True, "version": peer["version"]}
    except Exception as err:  # reported in the table, not dropped
        return {"ok": False, "reason": f"{type(err).__name__}: {err}"}


# ------------------------------------------------------------------------------------ data ---
def glyphs_datamodule_cls() -> Any:
    import numpy as np
    import torch

    from sslkit.data.base import SSLDataModule
    from sslkit.data.datasets import ImageTensorDataset

    class GlyphsDataModule(SSLDataModule):
        """Letters K-T in ~2,000 fonts, 32x32 white on black, split by font (train -> val = test).

        sslkit's default SimCLR recipe, no dataset-specific overrides.
        """

        num_classes = 10
        default_batch_size = 128
        default_image_size = 32

        def __init__(self, path: Path = GLYPHS, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.path = path
            with np.load(path) as d:  # training-split statistics, grayscale so channels agree
                x = d["x_train"].astype(np.float32) / 255.0
            self.mean = (float(x.mean()),) * 3
            self.std = (float(x.std()),) * 3

        def load_splits(self) -> tuple[Any, Any, Any]:
            with np.load(self.path) as d:
                def split(x: Any, y: Any) -> Any:
                    images = torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
                    return ImageTensorDataset(images, torch.from_numpy(y).long())

                train = split(d["x_train"], d["y_train"])
                test = split(d["x_test"], d["y_test"])
            return train, test, test

    return GlyphsDataModule


def make_datamodule(data: str, batch_size: int, subset: Optional[int], val_subset: Optional[int]) -> Any:
    """sslkit's datamodule for ``data`` with its defaults, optionally on fixed random subsets."""
    import torch

    from sslkit.data import DigitsDataModule
    from sslkit.data.datasets import ImageTensorDataset

    base = DigitsDataModule if data == "digits" else glyphs_datamodule_cls()

    class Subsetted(base):  # type: ignore[misc, valid-type]
        def load_splits(self) -> tuple[Any, Any, Any]:
            train, val, test = super().load_splits()
            g = torch.Generator().manual_seed(1234)  # the same subset for every system and seed

            def cut(ds: Any, n: Optional[int]) -> Any:
                if n is None or n >= len(ds):
                    return ds
                keep = torch.randperm(len(ds), generator=g)[:n]
                return ImageTensorDataset(ds.images[keep], ds.labels[keep])  # still in memory, as the full set

            same = test is val  # both datamodules here test on the val split: keep one subset
            train, val = cut(train, subset), cut(val, val_subset)
            return train, val, (val if same else cut(test, val_subset))

    return Subsetted(batch_size=batch_size, views="simclr", **({} if data == "digits" else {"path": GLYPHS}))


def PILImages(base: Any, transform: Any) -> Any:  # noqa: N802 (reads like the dataset it makes)
    """Raw ``(uint8 (3, H, W) tensor, label)`` items as ``(transform(PIL RGB image), label)``: what
    torchvision datasets (CIFAR, ImageFolder) hand to the peers' PIL-based transforms."""
    from torchvision.transforms import v2

    from sslkit.data.datasets import TransformedDataset

    return TransformedDataset(base, v2.Compose([v2.ToPILImage(), transform]))


class BoltsEvalBatches:
    """Clean ``(x, y)`` items as ``((x,), y)``: bolts' evaluator reads ``inputs[-1]``."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.base[i]
        return (x,), y


def loader(dataset: Any, batch_size: int, train: bool, settings: dict[str, Any]) -> Any:
    from torch.utils.data import DataLoader

    workers = settings["num_workers"]
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train and settings["drop_last"],
                      num_workers=workers, pin_memory=settings["pin_memory"], persistent_workers=workers > 0)


COMMON_LOADER = {"num_workers": 2, "pin_memory": False, "drop_last": True}
NATIVE_LOADER = {
    "bolts": {"num_workers": 0, "pin_memory": True, "drop_last": False},  # pl_bolts VisionDataModule defaults
    "lightly": {"num_workers": 8, "pin_memory": False, "drop_last": True},  # lightly's examples' DataLoader
}


def pipelines(system: str, mode: str, dm: Any, batch: int, loaders: str, peer: dict[str, Any]) -> dict[str, Any]:
    """Train / val loaders and the clean transform (for offline features) of one system."""
    import torch
    from torchvision.transforms import v2

    from sslkit.data.datasets import TransformedDataset
    from sslkit.data.transforms import eval_transform

    train_raw, val_raw, test_raw = dm.splits
    sslkit_clean = eval_transform(dm.image_size, dm.mean, dm.std)
    if system == "sslkit" or mode == "controlled":
        out = {"train": dm.train_dataloader(), "val": dm.val_dataloader(), "clean": sslkit_clean,
               "pipeline": f"sslkit {type(dm).__mro__[1].__name__} loaders (views={dm.views}, "
                           f"batched={dm.uses_batched_views()}, workers={dm.resolved_num_workers()}, "
                           f"pin={dm.pin_memory})", "pil": False}
        if system == "bolts":  # same data, bolts' batch layout for its evaluator's val forward
            settings = {"num_workers": dm.resolved_num_workers(), "pin_memory": dm.pin_memory, "drop_last": False}
            out["val"] = loader(BoltsEvalBatches(TransformedDataset(val_raw, sslkit_clean)), batch, False, settings)
        return out

    settings = NATIVE_LOADER[system] if loaders == "native" else COMMON_LOADER
    size = dm.image_size
    if system == "bolts":
        normalize = v2.Normalize(list(dm.mean), list(dm.std))
        train_tf = peer["TrainTransform"](input_height=size, normalize=normalize)
        val_tf = peer["EvalTransform"](input_height=size, normalize=normalize)
        # bolts' val batches are ((xi, xj, x_clean), y); the clean view alone for offline features
        clean = lambda img: val_tf.online_transform(img)  # noqa: E731
        names = f"{type(train_tf).__name__}(input_height={size}) / {type(val_tf).__name__}"
    else:
        tf = peer["Transform"](input_size=size)
        norm = peer["normalize"]
        clean = v2.Compose([v2.Resize(size), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(norm["mean"], norm["std"])])
        train_tf, val_tf = tf, clean
        names = f"{type(tf).__name__}(input_size={size}) / Resize-ToTensor-Normalize(ImageNet)"
    return {
        "train": loader(PILImages(train_raw, train_tf), batch, True, settings),
        "val": loader(PILImages(val_raw, val_tf), batch, False, settings),
        "clean": clean,
        "pil": True,
        "pipeline": f"{names}; PIL inputs; workers={settings['num_workers']}, pin={settings['pin_memory']}, "
                    f"drop_last={settings['drop_last']}",
    }


# --------------------------------------------------------------------------------- modules ---
def peer_module_cls(system: str, peer: dict[str, Any]) -> Any:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    from sslkit.backbones import create_backbone
    from sslkit.heads import mlp

    class PeerSimCLR(pl.LightningModule):
        """A plain Lightning 2 SimCLR: ``forward`` is the encoder (bolts' evaluator calls it)."""

        def __init__(self, backbone: str, backbone_kwargs: dict[str, Any], lr: float, weight_decay: float,
                     num_classes: int) -> None:
            super().__init__()
            self.backbone = create_backbone(backbone, **backbone_kwargs)
            self.num_features = int(self.backbone.num_features)
            self.lr, self.weight_decay = lr, weight_decay
            self.probe_times: list[float] = []
            if system == "lightly":
                self.projector = peer["Head"](self.num_features, 512, 128)
                self.criterion = peer["NTXentLoss"](temperature=TEMPERATURE)
                self.online_classifier = (
                    peer["Probe"](feature_dim=self.num_features, num_classes=num_classes) if peer["Probe"] else None
                )
            else:
                self.projector = mlp(self.num_features, 512, 128)
                self.online_classifier = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.backbone(x)

        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            # Controlled mode: sslkit's loaders yield uint8 batches whose views the datamodule makes.
            maker = getattr(self, "view_maker", None)
            return maker.on_after_batch_transfer(batch, dataloader_idx) if maker is not None else batch

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            views, labels = batch  # ([v1, v2], y) or ((v1, v2, x_online), y)
            n = views[0].shape[0]
            features = self.backbone(torch.cat([views[0], views[1]]))
            z = self.projector(features)
            if system == "bolts":
                loss = peer["nt_xent"](F.normalize(z[:n], dim=1), F.normalize(z[n:], dim=1), TEMPERATURE)
            else:
                loss = self.criterion(z[:n], z[n:])
            self.log("train_loss", loss, prog_bar=True, batch_size=n)
            if self.online_classifier is not None:
                t0 = time.perf_counter()
                probe_loss, log = self.online_classifier.training_step((features.detach(), labels.repeat(2)), batch_idx)
                self.log_dict(log, batch_size=n)
                self.probe_times.append(time.perf_counter() - t0)
                loss = loss + probe_loss
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            if self.online_classifier is None:
                return None  # bolts: its evaluator does its own forward of the clean view
            x, labels = batch
            _, log = self.online_classifier.validation_step((self.backbone(x).detach(), labels), batch_idx)
            self.log_dict(log, batch_size=len(labels))
            return None

        def configure_optimizers(self) -> Any:
            groups = [{"params": [p for n, p in self.named_parameters() if not n.startswith("online_classifier.")]}]
            if self.online_classifier is not None:
                groups.append({"params": list(self.online_classifier.parameters()), "weight_decay": 0.0})
            opt = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
            total = max(1, int(self.trainer.estimated_stepping_batches))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return PeerSimCLR


# -------------------------------------------------------------------------------- one run ---
def run_one(args: argparse.Namespace, system: str, seed: int) -> dict[str, Any]:
    import lightning.pytorch as pl
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from torch.utils.data import DataLoader

    from sslkit.callbacks import SSLOnlineEvaluator
    from sslkit.data.datasets import TransformedDataset
    from sslkit.knn import weighted_knn_scores
    from sslkit.methods import SimCLR

    import os

    load_before = os.getloadavg()[0]
    # On 2 shared cores, 2 intra-op threads spin against the loader workers and other jobs: a tiny
    # Adam step on a 256x10 probe measured 50-56 ms at 2 threads under load vs 0.3 ms at 1 thread.
    if args.threads > 0:  # 0: torch's default, what a user of each system gets
        torch.set_num_threads(args.threads)
    pl.seed_everything(seed, verbose=False)
    peer = {} if system == "sslkit" else (import_bolts() if system == "bolts" else import_lightly())
    dm = make_datamodule(args.data, args.batch_size, args.subset, args.val_subset)
    dm.setup()
    bk = {"cifar_stem": True} if args.model == "resnet18" else {}
    pipe = pipelines(system, args.mode, dm, args.batch_size, args.loaders, peer)

    if system == "sslkit":
        model: Any = SimCLR(backbone=args.model, backbone_kwargs=bk, proj_hidden_dim=512, proj_dim=128,
                            temperature=TEMPERATURE, optimizer="adamw", lr=args.lr, weight_decay=args.weight_decay,
                            warmup_epochs=0)
    else:
        model = peer_module_cls(system, peer)(args.model, bk, args.lr, args.weight_decay, dm.num_classes)
        if args.mode == "controlled":
            model.view_maker = dm

    marks: dict[str, Any] = {"epoch_end": [], "images": [0], "hook": [], "step": []}

    class Start(pl.Callback):  # first callback
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.t0 = time.perf_counter()
            marks["images"][-1] += len(batch[1])

        def on_train_batch_end(self, *a: Any) -> None:
            self.t1 = time.perf_counter()

    class End(pl.Callback):  # last callback: the evaluator's hook ran between Start and End
        def on_train_batch_end(self, *a: Any) -> None:
            now = time.perf_counter()
            marks["step"].append(now - start.t0)
            marks["hook"].append(now - start.t1)
            marks["last_end"] = now

        def on_train_epoch_end(self, *a: Any) -> None:  # val (last epoch only) ran before this
            marks["epoch_end"].append(marks["last_end"])
            marks["images"].append(0)

        def on_train_start(self, *a: Any) -> None:
            marks["train_start"] = time.perf_counter()

    start = Start()
    callbacks: list[Any] = [start]
    if system == "sslkit":
        callbacks.append(SSLOnlineEvaluator(num_classes=dm.num_classes))
    elif system == "bolts":
        callbacks.append(peer["Evaluator"](z_dim=model.num_features, num_classes=dm.num_classes, dataset=args.data))
    callbacks.append(End())
    trainer = pl.Trainer(
        max_epochs=args.epochs, check_val_every_n_epoch=args.epochs, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    t0 = time.perf_counter()
    if system == "sslkit":
        trainer.fit(model, datamodule=dm)
    else:
        trainer.fit(model, train_dataloaders=pipe["train"], val_dataloaders=pipe["val"])
    wall = time.perf_counter() - t0

    # Throughput over epochs 2..N (epoch 1 only when there is no other).
    ends, images = marks["epoch_end"], marks["images"][: len(marks["epoch_end"])]
    steps_per_epoch = len(marks["step"]) // max(1, len(ends))
    if len(ends) >= 2:
        timed_s, timed_images, first = ends[-1] - ends[0], sum(images[1:]), steps_per_epoch
    else:
        timed_s, timed_images, first = ends[0] - marks["train_start"], images[0], 0
    hooks = marks["hook"][first:] if system != "lightly" else model.probe_times[first:]
    hook_total = sum(hooks)

    online_key = {"sslkit": "online_val_acc", "bolts": "online_val_acc", "lightly": "val_online_cls_top1"}[system]
    online = trainer.callback_metrics.get(online_key)

    # Offline: frozen clean features, train -> test.
    model.eval()
    train_raw, _, test_raw = dm.splits
    feats: dict[str, Any] = {}
    with torch.no_grad():
        for name, raw in (("train", train_raw), ("test", test_raw)):
            ds = PILImages(raw, pipe["clean"]) if pipe["pil"] else TransformedDataset(raw, pipe["clean"])
            fs, ys = [], []
            for x, y in DataLoader(ds, batch_size=256, num_workers=0):
                fs.append(model.backbone(x))
                ys.append(y)
            feats[name] = (torch.cat(fs), torch.cat(ys))
    (ftr, ytr), (fte, yte) = feats["train"], feats["test"]
    scaler = StandardScaler().fit(ftr.numpy())
    lr_clf = LogisticRegression(max_iter=2000).fit(scaler.transform(ftr.numpy()), ytr.numpy())
    offline = float(lr_clf.score(scaler.transform(fte.numpy()), yte.numpy()))
    nf = torch.nn.functional
    scores = weighted_knn_scores(nf.normalize(fte, dim=1), nf.normalize(ftr, dim=1), ytr, dm.num_classes, k=200,
                                 temperature=0.1)
    knn = float((scores.argmax(1) == yte).float().mean())

    return {
        "system": system, "seed": seed, "version": availability(system).get("version"),
        "pipeline": pipe["pipeline"],
        "images_per_s": timed_images / timed_s if timed_s > 0 else None,
        "timed_epochs": max(1, len(ends) - 1), "warmup_included": len(ends) < 2,
        "step_s_median": float(np.median(marks["step"][first:] or marks["step"])),
        "evaluator_s_median": float(np.median(hooks)) if hooks else None,
        "evaluator_share": hook_total / timed_s if timed_s > 0 and hooks else None,
        "steps": len(marks["step"]), "wall_s": wall,
        "online_val_acc": None if online is None else float(online), "online_key": online_key,
        "offline_lr_acc": offline, "knn_acc": knn,
        "loadavg_1min_before_after": [load_before, os.getloadavg()[0]],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


# ----------------------------------------------------------------------------------- table ---
def spread(xs: list[float], fmt: str = "{:.3f}") -> str:
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(statistics.mean(xs))} ± {fmt.format(statistics.stdev(xs))} (n={len(xs)})"


def summarise(runs: list[dict[str, Any]], status: dict[str, dict[str, Any]], systems: list[str]) -> tuple[dict, str]:
    head = ("| system | version | pipeline | images/s (epochs 2..N, median) | evaluator ms/step | evaluator share "
            "| online linear val acc | offline LR test acc | kNN test acc | peak RSS main / workers |")
    table = [head, "|" + "---|" * (head.count("|") - 1)]
    summary: dict[str, Any] = {}
    for system in systems:
        st = status[system]
        if not st["ok"]:
            table.append(f"| {system} | not installed: {st['reason']} |" + " |" * 8)
            summary[system] = {"status": f"not installed: {st['reason']}"}
            continue
        rs = [r for r in runs if r["system"] == system]
        if not rs:
            table.append(f"| {system} | {st['version']} | no successful run |" + " |" * 7)
            continue
        ips = [r["images_per_s"] for r in rs if r["images_per_s"]]
        ev = [1000 * r["evaluator_s_median"] for r in rs if r["evaluator_s_median"] is not None]
        share = [100 * r["evaluator_share"] for r in rs if r["evaluator_share"] is not None]
        col = lambda k: [r[k] for r in rs if r[k] is not None]  # noqa: E731
        warm = " (epoch 1 incl. warm-up)" if any(r["warmup_included"] for r in rs) else ""
        summary[system] = {
            "images_per_s_median": statistics.median(ips) if ips else None, "evaluator_ms": ev, "evaluator_pct": share,
            "online": col("online_val_acc"), "offline": col("offline_lr_acc"), "knn": col("knn_acc"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "peak_rss_workers_mb": max(r["peak_rss_workers_mb"] for r in rs),
        }
        s = summary[system]
        ips_txt = f"{s['images_per_s_median']:.0f}" if ips else "n/a"
        table.append(
            f"| {system} | {st['version']} | {rs[0]['pipeline']} | "
            f"{ips_txt}{warm} | {spread(ev, '{:.2f}')} | "
            f"{spread(share, '{:.1f}')} % | {spread(s['online'])} ({rs[0]['online_key']}) | {spread(s['offline'])} | "
            f"{spread(s['knn'])} | {s['peak_rss_mb']:.0f} / {s['peak_rss_workers_mb']:.0f} MB |"
        )
    return summary, "\n".join(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="out-of-the-box")
    p.add_argument("--data", choices=("digits", "glyphs"), default="digits")
    p.add_argument("--model", choices=("small_cnn", "resnet18"), default="small_cnn")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every (seed, system)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--subset", type=int, help="train images (fixed random subset)")
    p.add_argument("--val-subset", type=int, help="val/test images (fixed random subset)")
    p.add_argument("--loaders", choices=("common", "native"), default="common",
                   help="out-of-the-box peers: sslkit's loader settings, or each peer's own defaults")
    p.add_argument("--glyphs", type=Path, default=GLYPHS, help="path of glyphs_kt.npz")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads per run (see run_one); 0: torch's default (out-of-the-box)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compare_peers",
                   help="writes OUT.json and OUT.md")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--check", help=argparse.SUPPRESS)
    args = p.parse_args()
    globals()["GLYPHS"] = args.glyphs
    if args.check:
        print(json.dumps(availability(args.check)))
        return
    if args.one:
        system, seed = args.one.split(":")
        print(json.dumps(run_one(args, system, int(seed))))
        return

    status = {}
    for s in args.systems:
        out = subprocess.run([sys.executable, __file__, "--check", s], capture_output=True, text=True)
        try:
            status[s] = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            status[s] = {"ok": False, "reason": (out.stderr.strip().splitlines() or ["import check crashed"])[-1]}
    forwarded = [a for a in sys.argv[1:] if a]
    runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    ok = [s for s in args.systems if status[s]["ok"]]
    for rnd in range(args.rounds):
        for seed in args.seeds:
            order = ok[rnd % max(1, len(ok)):] + ok[: rnd % max(1, len(ok))]  # rotate who goes first
            for system in order:
                out = subprocess.run([sys.executable, __file__, *forwarded, "--one", f"{system}:{seed}"],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    failures.append({"system": system, "seed": seed, "round": rnd, "stderr_tail": out.stderr[-2000:]})
                    print(f"FAILED {system}:{seed}\n{out.stderr[-2000:]}", file=sys.stderr, flush=True)
                    continue
                runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "round": rnd})
                print(json.dumps(runs[-1]), flush=True)

    summary, table = summarise(runs, status, args.systems)
    cmd = " ".join(["python", "benchmarks/compare_peers.py", *sys.argv[1:]])
    md = "\n".join([
        f"`{cmd}`", "",
        f"mode={args.mode}, data={args.data}, model={args.model}, epochs={args.epochs}, batch={args.batch_size}, "
        f"AdamW lr={args.lr} wd={args.weight_decay}, cosine per step, no warm-up, NT-Xent T={TEMPERATURE}, "
        f"head Linear-BN-ReLU-Linear 512/128, threads={args.threads}, rounds={args.rounds}, seeds={args.seeds}, loaders={args.loaders}",
        "", table,
        *(["", f"failed runs: {[(f['system'], f['seed']) for f in failures]}"] if failures else []),
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(md + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "args": {k: str(v) for k, v in vars(args).items()}, "status": status, "runs": runs,
         "failures": failures, "summary": summary}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
