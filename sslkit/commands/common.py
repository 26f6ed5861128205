"""What the downstream commands share: the ``--data`` argument and choosing a split."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from jsonargparse import ArgumentParser
from torch.utils.data import Dataset

from sslkit.checkpoints import datamodule_from_info
from sslkit.data import SSLDataModule
from sslkit.errors import InvalidInputError

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]
MapMethod = Literal["auto", "umap", "tsne"]


def new_parser(prog: str, description: str) -> ArgumentParser:
    """A parser whose ``--data`` takes the same names and ``--data.<arg>`` options as ``sslkit fit``."""
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=True)
    parser.add_subclass_arguments(
        SSLDataModule,
        "data",
        required=False,
        help="Dataset (default: the one the encoder was pretrained on), e.g. --data digits, "
        "--data imagefolder --data.root DIR.",
    )
    return parser


def datamodule(data: Optional[SSLDataModule], recorded: Optional[dict[str, Any]]) -> SSLDataModule:
    """The ``--data`` datamodule, else the one recorded at pretraining."""
    dm = data if data is not None else datamodule_from_info(recorded)
    if not isinstance(dm, SSLDataModule):
        raise InvalidInputError(f"{type(dm).__name__} is not an sslkit SSLDataModule; pass --data.")
    return dm


def split(dm: SSLDataModule, name: str) -> Dataset:
    """The raw ``(image, label)`` dataset of split ``train``, ``val`` or ``test``."""
    if name not in SPLITS:
        raise InvalidInputError(f"Unknown split '{name}'. Choose one of: {', '.join(SPLITS)}.")
    return dm.splits[SPLITS.index(name)]


def device(name: str) -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
