"""``sslkit predict SOURCE --out FILE``: embeddings and labels (or file paths) of a split, via ``predict_step``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from sslkit.checkpoints import method_from_checkpoint
from sslkit.commands.common import Split, datamodule, device, new_parser, split
from sslkit.data.datasets import TransformedDataset, sample_paths
from sslkit.data.transforms import eval_transform
from sslkit.errors import InvalidInputError
from sslkit.io import PathLike, atomic_write

FORMATS = (".npy", ".npz", ".pt")


def check_format(out: PathLike) -> Path:
    """``out`` as a Path, with a clear error unless it ends in .npy, .npz or .pt."""
    path = Path(out)
    if path.suffix not in FORMATS:
        raise InvalidInputError(f"--out must end in {', '.join(FORMATS)}, got '{path.name}'.")
    return path


def save_predictions(out: PathLike, embeddings: torch.Tensor, labels: torch.Tensor, paths: list[str] | None) -> list[Path]:
    """Write embeddings ``(N, D)``, labels ``(N,)`` and file paths; return the files written.

    - ``.pt``: one ``torch.save`` dict ``{"embeddings", "labels", "paths"}``;
    - ``.npz``: one NumPy archive with arrays ``embeddings``, ``labels`` (and ``paths``);
    - ``.npy``: the embeddings; the labels in ``<stem>.labels.npy`` and the paths
      in ``<stem>.paths.txt`` beside it.

    Each file is written atomically.
    """
    out = check_format(out)
    emb, lab = embeddings.float().numpy(), labels.long().numpy()
    written: list[Path] = []

    def save(path: Path, write: Any, *args: Any, **kwargs: Any) -> None:
        def to_file(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object, so NumPy adds no suffix to the temp name
                write(f, *args, **kwargs)

        written.append(atomic_write(path, to_file))

    if out.suffix == ".pt":
        save(out, lambda f: torch.save({"embeddings": embeddings.float(), "labels": labels.long(), "paths": paths}, f))
    elif out.suffix == ".npz":
        save(out, np.savez, embeddings=emb, labels=lab, **({"paths": np.asarray(paths)} if paths else {}))
    else:
        save(out, np.save, emb)
        save(out.with_name(out.stem + ".labels.npy"), np.save, lab)
        if paths:
            save(out.with_name(out.stem + ".paths.txt"), lambda f: f.write(("\n".join(paths) + "\n").encode()))
    return written


def main(argv: list[str]) -> None:
    parser = new_parser(
        "sslkit predict",
        "Embeddings (backbone features) of one split through the method's predict_step, with labels, "
        "and file paths for image folders.",
    )
    parser.add_argument("source", type=str, help="Run folder or .ckpt file.")
    parser.add_argument("--out", type=str, required=True, help="Output file: .npy, .npz or .pt.")
    parser.add_argument("--split", type=Split, default="test")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    check_format(cfg.out)  # before any work

    module, info = method_from_checkpoint(cfg.source)
    dm = datamodule(cfg.data, info.get("data"))
    raw = split(dm, cfg.split)
    if len(raw) == 0:  # type: ignore[arg-type]
        raise InvalidInputError(f"The {cfg.split} split of {type(dm).__name__} is empty; choose another --split.")
    size = info.get("image_size") or dm.image_size
    data = TransformedDataset(raw, eval_transform(size, info.get("mean") or dm.mean, info.get("std") or dm.std))
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=False)
    dev = device(cfg.device)
    trainer = Trainer(accelerator=dev.type, devices=[dev.index or 0] if dev.type == "cuda" else 1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    outputs = trainer.predict(module, dataloaders=loader)
    embeddings = torch.cat([o["embeddings"].float().cpu() for o in outputs])
    labels = torch.cat([torch.as_tensor(o["labels"]).long().cpu() for o in outputs])
    files = save_predictions(cfg.out, embeddings, labels, sample_paths(raw))
    print(f"{embeddings.shape[0]} {cfg.split} embeddings of dimension {embeddings.shape[1]}: "
          + json.dumps([str(f) for f in files]))
