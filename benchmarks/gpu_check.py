"""One prepared GPU check: a short bf16 SimCLR fit of a CIFAR-stem ResNet-18 on synthetic 32x32 data,
with the online evaluator and the kNN monitor. Prints images/s and the final probe accuracies as JSON.

    python benchmarks/gpu_check.py --steps 300 --batch 512          # one GPU
    torchrun --nproc_per_node 2 benchmarks/gpu_check.py ...         # DDP on 2 GPUs

The synthetic images have a learnable class signal (a class-specific colour
pattern under random noise and shifts), so the probe accuracy must rise well
above chance (0.1) if training works. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import Dataset

from sslkit.callbacks import KNNOnlineEvaluator, SSLOnlineEvaluator
from sslkit.data import SSLDataModule
from sslkit.data.datasets import ImageTensorDataset
from sslkit.methods import SimCLR


def synthetic_images(n: int, seed: int, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 3, 32, 32)`` uint8 images: class templates, randomly shifted, plus noise."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.rand(classes, 3, 8, 8, generator=g)
    templates = torch.nn.functional.interpolate(templates, size=32, mode="bilinear", align_corners=False)
    g.manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    images = torch.stack([templates[c].roll(tuple(s.tolist()), dims=(1, 2)) for c, s in zip(labels, shifts)])
    images = (0.7 * images + 0.3 * torch.rand(images.shape, generator=g)).clamp(0, 1)
    return (images * 255).to(torch.uint8), labels


class SyntheticDataModule(SSLDataModule):
    num_classes = 10

    def __init__(self, train_size: int = 50_000, val_size: int = 5_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_size, self.val_size = train_size, val_size

    def load_splits(self) -> tuple[Dataset, Dataset, Dataset]:
        val = ImageTensorDataset(*synthetic_images(self.val_size, seed=1))
        return ImageTensorDataset(*synthetic_images(self.train_size, seed=0)), val, val


class Throughput(pl.Callback):
    """Images/s over training steps after a warm-up."""

    def __init__(self, warmup: int = 20) -> None:  # steps
        self.warmup, self.images, self.t0, self.seconds = warmup, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            torch.cuda.synchronize() if torch.cuda.is_available() else None
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step > self.warmup:
            self.images += batch[1].shape[0] * trainer.world_size

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        self.seconds = time.perf_counter() - self.t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--train-size", type=int, default=50_000)
    p.add_argument("--val-size", type=int, default=5_000)
    args = p.parse_args()
    pl.seed_everything(0)
    torch.backends.cudnn.benchmark = True
    model = SimCLR(backbone="resnet18", backbone_kwargs={"cifar_stem": True}, temperature=0.2,
                   optimizer="lars", lr=0.3 * args.batch / 256, warmup_steps=max(1, args.steps // 10))
    model = model.to(memory_format=torch.channels_last)
    dm = SyntheticDataModule(args.train_size, args.val_size, batch_size=args.batch, num_workers=args.workers,
                             pin_memory=torch.cuda.is_available())
    speed = Throughput(warmup=min(20, args.steps // 2))
    trainer = pl.Trainer(
        max_steps=args.steps, precision=args.precision, val_check_interval=args.steps, limit_val_batches=None,
        callbacks=[SSLOnlineEvaluator(), KNNOnlineEvaluator(k=20), speed], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
    )
    trainer.fit(model, dm)
    if trainer.is_global_zero:
        m = trainer.callback_metrics
        print(json.dumps({
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "world_size": trainer.world_size, "precision": args.precision, "batch_per_device": args.batch,
            "steps": args.steps, "images_per_s": speed.images / max(speed.seconds, 1e-9),
            "online_val_acc": float(m["online_val_acc"]), "online_mlp_val_acc": float(m["online/mlp/val_acc"]),
            "online_knn_acc": float(m["online_knn_acc"]),
        }))


if __name__ == "__main__":
    main()
