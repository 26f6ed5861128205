"""``sslkit linear-eval SOURCE``: offline linear evaluation (or fine-tuning) of a frozen encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from sslkit.commands.common import Split, datamodule, device, new_parser, split
from sslkit.data.transforms import augmented_view
from sslkit.errors import InvalidInputError
from sslkit.evaluation import (
    LinearEvalResult,
    embed,
    finetune_eval,
    labelled,
    linear_eval,
)
from sslkit.export import load_encoder
from sslkit.io import atomic_write


def describe(result: LinearEvalResult) -> str:
    """One line of accuracies, e.g. ``linear: top-1 0.9861, top-5 1.0000 (train 0.9993, ...)``."""
    top5 = f", top-5 {result.top5:.4f}" if result.top5 is not None else ""
    few = f" with {result.labels_per_class} labels per class" if result.labels_per_class else ""
    return (
        f"{result.protocol}{few}: top-1 {result.top1:.4f}{top5} (train top-1 {result.train_top1:.4f}, "
        f"{result.num_train} train / {result.num_test} test images, weight decay {result.weight_decay:g})"
    )


def main(argv: list[str]) -> None:
    parser = new_parser(
        "sslkit linear-eval",
        "Offline linear evaluation: features of clean train/test images from the frozen encoder, then a "
        "logistic regression (L-BFGS, L2 penalty chosen on 20% of the training split). With --finetune true, "
        "trains the whole encoder plus a linear head instead. Unlabelled images (label -1) are left out.",
    )
    parser.add_argument("source", type=str, help="Run folder, .ckpt file, or export folder.")
    parser.add_argument("--train_split", type=Split, default="train")
    parser.add_argument("--test_split", type=Split, default="test")
    parser.add_argument("--labels_per_class", type=Optional[int], default=None,
                        help="Linear eval with only this many labelled training images per class.")
    parser.add_argument("--finetune", type=bool, default=False, help="true: fine-tune encoder + head instead (--finetune true).")
    parser.add_argument("--epochs", type=int, default=10, help="Fine-tuning epochs.")
    parser.add_argument("--lr", type=float, default=1e-3, help="Fine-tuning AdamW learning rate.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--out", type=Optional[str], default=None,
                        help="JSON file for the result (default: linear_eval.json in a run folder SOURCE).")
    cfg = parser.instantiate_classes(parser.parse_args(argv))

    encoder, transform = load_encoder(cfg.source)
    meta = encoder.sslkit_metadata
    dm = datamodule(cfg.data, meta.get("data"))
    train, test = labelled(split(dm, cfg.train_split)), labelled(split(dm, cfg.test_split))
    dev = device(cfg.device)
    num_classes = int(getattr(dm, "num_classes", 0) or meta.get("num_classes") or 0) or None
    if cfg.finetune:
        size = (meta.get("input_size") or [dm.image_size])[-1]
        # Light augmentation, as usual for fine-tuning: crops and the dataset's own flip setting.
        aug = augmented_view(
            size, meta.get("mean") or dm.mean, meta.get("std") or dm.std, crop_scale=(0.5, 1.0),
            hflip_prob=dm.view_overrides.get("hflip_prob", 0.5), jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
        )
        if num_classes is None:
            raise InvalidInputError(f"--finetune needs the number of classes; {type(dm).__name__} does not give it.")
        result = finetune_eval(encoder, train, test, num_classes, aug, transform, epochs=cfg.epochs, lr=cfg.lr,
                               batch_size=cfg.batch_size, seed=cfg.seed, device=dev)
    else:
        train_x, train_y = embed(encoder, train, transform, cfg.batch_size, dev)
        test_x, test_y = embed(encoder, test, transform, cfg.batch_size, dev)
        keep_train, keep_test = train_y >= 0, test_y >= 0  # drop unlabelled samples (label -1)
        result = linear_eval(train_x[keep_train], train_y[keep_train], test_x[keep_test], test_y[keep_test],
                             num_classes=num_classes, labels_per_class=cfg.labels_per_class, seed=cfg.seed)
    print(describe(result))
    if meta.get("probe_accuracy") is not None:
        print(f"online probe at export ({meta.get('monitor')}): {meta['probe_accuracy']:.4f}")
    out = cfg.out
    if out is None and (Path(cfg.source) / "checkpoints").is_dir():
        out = str(Path(cfg.source) / ("finetune_eval.json" if cfg.finetune else "linear_eval.json"))
    if out is not None:
        record = {**result.as_dict(), "source": str(cfg.source), "train_split": cfg.train_split,
                  "test_split": cfg.test_split, "online_probe_accuracy": meta.get("probe_accuracy")}
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        print(f"Result: {out}")
