"""sslkit checkpoints: what they record about the run, how to find the best one, and how to rebuild from one.

Every :class:`~sslkit.methods.SSLMethod` checkpoint carries, under the key
``"sslkit"``, the method's class path, the datamodule's class path and
arguments, and the preprocessing (image size, mean, std). That is what lets
``sslkit export``, ``predict``, ``linear-eval`` and ``plot`` start from a run
folder or a ``.ckpt`` file alone.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import LightningDataModule, LightningModule

from sslkit.errors import DataNotFoundError, InvalidInputError
from sslkit.io import PathLike

CKPT_KEY = "sslkit"


def class_path(cls: type) -> str:
    """``module.QualName`` of a class.

    >>> from sslkit.methods import SimCLR
    >>> class_path(SimCLR)
    'sslkit.methods.simclr.SimCLR'
    """
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str, base: type) -> type:
    """The class at ``path`` (``package.module.Class``), which must subclass ``base``."""
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise InvalidInputError(f"Cannot import '{path}' recorded in the checkpoint: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InvalidInputError(f"'{path}' is not a {base.__name__} subclass.")
    return cls


def init_args(hparams: dict[str, Any]) -> dict[str, Any]:
    """Saved hyperparameters as constructor arguments: without LightningCLI's private ``_class_path`` etc.

    >>> init_args({"_class_path": "sslkit.SimCLR", "lr": 0.1})
    {'lr': 0.1}
    """
    return {k: v for k, v in hparams.items() if not str(k).startswith("_")}


def run_info(module: LightningModule) -> dict[str, Any]:
    """What a checkpoint of ``module`` records under ``"sslkit"``: method, data and preprocessing.

    ``data`` is None when the module is not attached to a trainer with a datamodule.
    """
    trainer = module._trainer
    dm = getattr(trainer, "datamodule", None) if trainer is not None else None
    info: dict[str, Any] = {
        "method": class_path(type(module)),
        "num_features": getattr(module, "num_features", None),
        "data": None,
        "image_size": None,
        "mean": None,
        "std": None,
        "num_classes": None,
    }
    if dm is not None:
        info["data"] = {"class_path": class_path(type(dm)), "init_args": init_args(getattr(dm, "hparams", {}))}
        info["image_size"] = getattr(dm, "image_size", None)
        info["mean"] = [float(m) for m in dm.mean] if hasattr(dm, "mean") else None
        info["std"] = [float(s) for s in dm.std] if hasattr(dm, "std") else None
        info["num_classes"] = getattr(dm, "num_classes", None) or None
    return info


def resume_mismatch(checkpoint: dict[str, Any], cls: type, hparams: dict[str, Any]) -> Optional[str]:
    """Why ``checkpoint`` cannot be resumed into method ``cls`` with ``hparams`` (None when it can).

    Compares the method class and the backbone (name and kwargs), the parts whose
    mismatch would otherwise surface as a wall of missing/unexpected weight keys.
    """
    saved = (checkpoint.get(CKPT_KEY) or {}).get("method")
    if saved is not None and saved != class_path(cls):
        return (
            f"This checkpoint was written by {saved}, not {class_path(cls)}. Resume with the same --model, "
            "or start a new run without --ckpt_path (export its encoder with `sslkit export`)."
        )
    saved_hp = checkpoint.get("hyper_parameters") or {}
    for key in ("backbone", "backbone_kwargs"):
        if key in saved_hp and (saved_hp[key] or None) != (hparams.get(key) or None):
            return (
                f"The checkpoint's {key} is {saved_hp[key]!r} but this model's is {hparams.get(key)!r}. "
                f"Resume with --model.init_args.{key} {saved_hp[key]!r}, or start a new run without --ckpt_path."
            )
    return None


def read_checkpoint(path: PathLike) -> dict[str, Any]:
    """Load a checkpoint file on the CPU, with clear errors for missing, truncated or foreign files.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable checkpoint, or has no ``state_dict``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"Checkpoint '{p}' does not exist. Pass a run folder (runs/sslkit/version_N) or a .ckpt file.")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InvalidInputError(
            f"'{p}' holds objects that torch.load(weights_only=True) refuses to unpickle "
            f"({str(err).splitlines()[0][:200]}); sslkit loads checkpoints safely only. Save hyperparameters "
            "as plain values (numbers, strings, lists, dicts)."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise InvalidInputError(
            f"'{p}' is not a readable checkpoint (truncated or corrupted?): {str(err).splitlines()[0]}. "
            "Use another checkpoint of the run, e.g. checkpoints/last.ckpt or a best-*.ckpt."
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InvalidInputError(f"'{p}' is not a Lightning checkpoint (it has no 'state_dict').")
    return ckpt


def model_checkpoint_states(ckpt: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved states of the checkpoint's ``ModelCheckpoint`` callbacks."""
    return [state for key, state in ckpt.get("callbacks", {}).items() if str(key).startswith("ModelCheckpoint")]


def _best_from_last(last: Path, folder: Path) -> Optional[Path]:
    """The best checkpoint that ``last.ckpt``'s ModelCheckpoint state points to, if it still exists."""
    for state in model_checkpoint_states(read_checkpoint(last)):
        if state.get("best_model_path"):
            # The file beside last.ckpt first: the run folder may have been moved or copied.
            for candidate in (folder / Path(state["best_model_path"]).name, Path(state["best_model_path"])):
                if candidate.is_file():
                    return candidate
    return None


def resolve_checkpoint(run_or_ckpt: PathLike) -> Path:
    """A ``.ckpt`` file as is; for a run folder, its best checkpoint (else ``last.ckpt``).

    The best checkpoint is the one ``last.ckpt``'s ``ModelCheckpoint`` state
    names; without ``last.ckpt``, the only checkpoint of the folder.

    Raises:
        FileNotFoundError: the path does not exist, or the folder has no checkpoint.
        ValueError: several checkpoints and no ``last.ckpt`` to say which is best.
    """
    p = Path(run_or_ckpt)
    if p.is_file():
        return p
    if not p.is_dir():
        raise DataNotFoundError(f"'{p}' does not exist. Pass a run folder (runs/sslkit/version_N) or a .ckpt file.")
    folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    last = folder / "last.ckpt"
    if last.is_file():
        return _best_from_last(last, folder) or last
    found = sorted(folder.glob("*.ckpt"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataNotFoundError(
            f"No checkpoint (*.ckpt) in '{folder}'. Pass a run folder written by `sslkit fit` or a .ckpt file."
        )
    raise InvalidInputError(
        f"'{folder}' holds {len(found)} checkpoints and no last.ckpt to say which is best; pass one file: "
        + ", ".join(f.name for f in found)
    )


def checkpoint_info(ckpt: dict[str, Any], path: PathLike = "checkpoint") -> dict[str, Any]:
    """The ``"sslkit"`` record of a loaded checkpoint, with a clear error when it is not an sslkit one."""
    info = ckpt.get(CKPT_KEY)
    hparams = ckpt.get("hyper_parameters") or {}
    if not isinstance(info, dict) or "backbone" not in hparams:
        raise InvalidInputError(
            f"'{path}' was not written by an sslkit method (no '{CKPT_KEY}' record or backbone hyperparameters). "
            "Export encoders from checkpoints of `sslkit fit` or of an sslkit.methods.SSLMethod subclass."
        )
    return info


def method_from_checkpoint(path: PathLike) -> tuple[LightningModule, dict[str, Any]]:
    """Rebuild the trained method of a run folder or ``.ckpt`` (CPU, eval mode) and return it with its record.

    >>> # method, info = method_from_checkpoint("runs/sslkit/version_0")
    """
    from sslkit.methods import SSLMethod

    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    info = checkpoint_info(ckpt, ckpt_path)
    cls = import_class(info["method"], SSLMethod)
    module = cls(**init_args(ckpt["hyper_parameters"]))
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise InvalidInputError(f"The weights in '{ckpt_path}' do not fit {info['method']}: {err}") from None
    return module.eval(), {**info, "checkpoint": str(ckpt_path.resolve())}


def datamodule_from_info(data: Optional[dict[str, Any]], **overrides: Any) -> LightningDataModule:
    """Instantiate the datamodule a checkpoint or export recorded, with ``overrides`` on its arguments."""
    if not data:
        raise InvalidInputError(
            "This checkpoint or export does not record its dataset; name one with --data (e.g. --data digits)."
        )
    cls = import_class(data["class_path"], LightningDataModule)
    return cls(**{**init_args(data.get("init_args", {})), **overrides})
