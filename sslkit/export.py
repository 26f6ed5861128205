"""Save a trained encoder as safetensors + JSON metadata, and load it back with one call.

An export folder holds:

- ``model.safetensors``: the backbone's ``state_dict`` (no ``backbone.`` prefix);
- ``sslkit.json``: backbone name and kwargs, ``num_features``, input size,
  normalisation, method, dataset, training config, sslkit version and the probe
  accuracy at export;
- ``config.json`` (timm backbones only): timm's own model config, so that
  ``timm.create_model("local-dir:DIR", pretrained=True)`` loads the encoder
  without sslkit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from sslkit.checkpoints import (
    checkpoint_info,
    model_checkpoint_states,
    read_checkpoint,
    resolve_checkpoint,
)
from sslkit.errors import DataNotFoundError, InvalidInputError
from sslkit.io import PathLike, staged_folder

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "sslkit.json"
TIMM_CONFIG_FILE = "config.json"
FORMAT = "sslkit-encoder"
FORMAT_VERSION = 1
_REQUIRED = ("backbone", "backbone_kwargs", "num_features")


def encoder_metadata(
    hparams: dict[str, Any],
    method: str,
    num_features: int,
    image_size: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON that travels with exported weights (see :func:`export_encoder`).

    ``hparams`` are the method's hyperparameters (``backbone``, ``backbone_kwargs``, ...);
    ``extra`` adds fields such as ``data``, ``checkpoint`` or ``probe_accuracy``.
    """
    from sslkit import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": hparams["backbone"],
        "backbone_kwargs": dict(hparams.get("backbone_kwargs") or {}),
        "num_features": int(num_features),
        "input_size": [3, int(image_size), int(image_size)] if image_size else None,
        "mean": [float(m) for m in mean] if mean is not None else None,
        "std": [float(s) for s in std] if std is not None else None,
        "method": method,
        "training_config": dict(hparams),
        "sslkit_version": __version__,
        **extra,
    }


def _backbone_kwargs(metadata: dict[str, Any]) -> dict[str, Any]:
    """The recorded backbone kwargs without ``pretrained``: the exported weights replace them (no download)."""
    return {k: v for k, v in metadata["backbone_kwargs"].items() if k != "pretrained"}


def timm_config(metadata: dict[str, Any]) -> Optional[dict[str, Any]]:
    """timm's ``config.json`` for a ``timm:<name>`` backbone (None for other backbones).

    >>> timm_config({"backbone": "timm:resnet18", "backbone_kwargs": {}, "num_features": 512,
    ...              "input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.2] * 3})["architecture"]
    'resnet18'
    """
    from sslkit.backbones.factory import TIMM_PREFIX

    name: str = metadata["backbone"]
    if not name.startswith(TIMM_PREFIX):
        return None
    model_args = _backbone_kwargs(metadata)
    pretrained_cfg: dict[str, Any] = {"num_classes": 0, "crop_pct": 1.0, "interpolation": "bilinear"}
    for key in ("input_size", "mean", "std"):
        if metadata.get(key) is not None:
            pretrained_cfg[key] = list(metadata[key])
    return {
        "architecture": name[len(TIMM_PREFIX) :],
        "num_classes": 0,
        "num_features": metadata["num_features"],
        "model_args": model_args,
        "pretrained_cfg": pretrained_cfg,
    }


def export_encoder(state_dict: dict[str, torch.Tensor], metadata: dict[str, Any], out_dir: PathLike) -> Path:
    """Write an export folder (see the module docstring) and return its path.

    The files are written into a staging folder and moved into ``out_dir`` only
    when all of them are complete, so a failure leaves ``out_dir`` untouched.

    Args:
        state_dict: the backbone's ``state_dict()`` (no ``backbone.`` prefix).
        metadata: from :func:`encoder_metadata`.
        out_dir: created if missing; files of an earlier export are replaced.

    >>> import tempfile
    >>> from sslkit.backbones import create_backbone
    >>> net = create_backbone("small_cnn", width=8)
    >>> meta = encoder_metadata({"backbone": "small_cnn", "backbone_kwargs": {"width": 8}}, "SimCLR", net.num_features)
    >>> encoder, transform = load_encoder(export_encoder(net.state_dict(), meta, tempfile.mkdtemp()))
    >>> encoder.num_features, encoder.training
    (64, False)
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    config = timm_config(metadata)
    # Name order puts sslkit.json last: a folder with new metadata has new weights.
    with staged_folder(out_dir, owned=(WEIGHTS_FILE, METADATA_FILE, TIMM_CONFIG_FILE)) as stage:
        save_file(tensors, str(stage / WEIGHTS_FILE), metadata={"format": "pt"})
        (stage / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
        if config is not None:
            (stage / TIMM_CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return Path(out_dir)


def backbone_state_dict(module_state: dict[str, torch.Tensor], prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """The backbone's entries of a method's ``state_dict`` (``backbone.*``), prefix removed."""
    return {k[len(prefix) :]: v for k, v in module_state.items() if k.startswith(prefix)}


def _build_encoder(metadata: dict[str, Any], state_dict: dict[str, torch.Tensor], source: PathLike) -> nn.Module:
    from sslkit.backbones import create_backbone

    kwargs = _backbone_kwargs(metadata)
    encoder = create_backbone(metadata["backbone"], **kwargs)
    try:
        encoder.load_state_dict(state_dict)
    except RuntimeError as err:
        raise InvalidInputError(
            f"The weights in '{source}' do not fit backbone '{metadata['backbone']}' with {kwargs}: "
            f"{str(err).splitlines()[0]} Re-export the encoder from its checkpoint with `sslkit export`."
        ) from None
    if metadata["num_features"] and int(encoder.num_features) != int(metadata["num_features"]):
        raise InvalidInputError(
            f"'{source}' says num_features={metadata['num_features']} but backbone '{metadata['backbone']}' "
            f"gives {encoder.num_features}; the metadata does not describe these weights."
        )
    encoder.sslkit_metadata = metadata  # type: ignore[assignment]
    return encoder.eval()


def _probe_score(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The monitored probe accuracy when the checkpoint was saved (from ModelCheckpoint's state)."""
    for state in model_checkpoint_states(ckpt):
        if state.get("current_score") is not None:
            return {"monitor": state.get("monitor"), "probe_accuracy": float(state["current_score"])}
    return {"monitor": None, "probe_accuracy": None}


def encoder_from_checkpoint(run_or_ckpt: PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone of a run folder's best checkpoint (or of a ``.ckpt``) and its export metadata.

    Raises:
        FileNotFoundError: no such run folder or checkpoint.
        ValueError: not a readable sslkit checkpoint, or its weights do not fit its backbone.
    """
    path = resolve_checkpoint(run_or_ckpt)
    ckpt = read_checkpoint(path)
    info = checkpoint_info(ckpt, path)
    hparams = ckpt["hyper_parameters"]
    meta = encoder_metadata(
        hparams,
        method=info["method"].rsplit(".", 1)[-1],
        num_features=info.get("num_features") or 0,
        image_size=info.get("image_size"),
        mean=info.get("mean"),
        std=info.get("std"),
        data=info.get("data"),
        num_classes=info.get("num_classes"),
        checkpoint=str(path.resolve()),
        epoch=ckpt.get("epoch"),
        global_step=ckpt.get("global_step"),
        **_probe_score(ckpt),
    )
    weights = backbone_state_dict(ckpt["state_dict"])
    if not weights:
        raise InvalidInputError(f"'{path}' has no backbone.* weights: it is not a checkpoint of an sslkit method.")
    encoder = _build_encoder(meta, weights, path)
    meta["num_features"] = int(encoder.num_features)
    return encoder, meta


def export_checkpoint(run_or_ckpt: PathLike, out_dir: PathLike) -> Path:
    """``sslkit export``: write the export folder of a run's best checkpoint (or of a ``.ckpt``).

    The weights are checked to load into the backbone before anything is written.
    """
    encoder, meta = encoder_from_checkpoint(run_or_ckpt)
    return export_encoder(encoder.state_dict(), meta, out_dir)


def _read_export(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise DataNotFoundError(
                f"'{p}' is missing: an sslkit export folder holds {WEIGHTS_FILE} and {METADATA_FILE}. "
                "Create one with `sslkit export RUN_OR_CKPT --out DIR`."
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"'{meta_path}' is not valid JSON ({err}); re-export with `sslkit export`.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or any(k not in meta for k in _REQUIRED):
        raise InvalidInputError(
            f"'{meta_path}' is not sslkit encoder metadata (it needs format={FORMAT!r} and {', '.join(_REQUIRED)})."
        )
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise InvalidInputError(
            f"'{weights_path}' is not a readable safetensors file (truncated or corrupted?): {err}. "
            "Re-export the encoder with `sslkit export RUN_OR_CKPT --out DIR`."
        ) from None
    return meta, weights


def preprocess_transform(metadata: dict[str, Any]) -> Callable[[Any], torch.Tensor]:
    """The clean-image transform an encoder was trained with: resize, centre crop, normalise.

    Takes a PIL image or a ``(C, H, W)`` uint8 tensor; returns ``(3, S, S)`` float32.
    """
    from sslkit.data.transforms import eval_transform

    size = (metadata.get("input_size") or [None])[-1]
    return eval_transform(size, metadata.get("mean"), metadata.get("std"))


def load_encoder(path: PathLike) -> tuple[nn.Module, Callable[[Any], torch.Tensor]]:
    """Load a trained encoder in one call: ``encoder, transform = load_encoder(path)``.

    ``path`` is an export folder (or its ``sslkit.json``), a run folder of
    ``sslkit fit`` (its ``encoder/`` export, else its best checkpoint) or a
    ``.ckpt`` file. ``encoder`` is an ``nn.Module`` in eval mode mapping
    ``(B, 3, S, S) -> (B, num_features)``, with ``num_features`` and the
    metadata as ``sslkit_metadata``; ``transform`` turns one image (PIL or
    uint8 tensor) into the normalised ``(3, S, S)`` input it was trained on.

    Raises:
        FileNotFoundError: a file of the export is missing.
        ValueError: a file is corrupted, or the files do not match each other.
    """
    p = Path(path)
    if p.name == METADATA_FILE:
        p = p.parent
    if p.is_dir() and not (p / METADATA_FILE).exists() and (p / "encoder" / METADATA_FILE).is_file():
        p = p / "encoder"
    if p.is_dir() and (p / METADATA_FILE).exists() or p.is_dir() and (p / WEIGHTS_FILE).exists():
        meta, weights = _read_export(p)
        encoder = _build_encoder(meta, weights, p)
    elif p.is_file() or (p.is_dir() and any(p.glob("**/*.ckpt"))):
        encoder, meta = encoder_from_checkpoint(p)
    else:
        raise DataNotFoundError(
            f"'{p}' is not an export folder ({WEIGHTS_FILE} + {METADATA_FILE}), a run folder or a checkpoint. "
            "Create an export with `sslkit export RUN_OR_CKPT --out DIR`."
        )
    return encoder, preprocess_transform(meta)
