"""Save a trained encoder as safetensors + JSON metadata, and load it back with one call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from sslkit.io import PathLike, atomic_write
from sslkit.errors import DataNotFoundError, InvalidInputError

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "sslkit.json"
FORMAT = "sslkit-encoder"
FORMAT_VERSION = 1


def encoder_metadata(
    hparams: dict[str, Any],
    method: str,
    num_features: int,
    image_size: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON that travels with exported weights (see :func:`export_encoder`)."""
    from sslkit import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": hparams["backbone"],
        "backbone_kwargs": dict(hparams.get("backbone_kwargs") or {}),
        "num_features": int(num_features),
        "input_size": [3, image_size, image_size] if image_size else None,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "method": method,
        "training_config": {k: v for k, v in hparams.items()},
        "sslkit_version": __version__,
        **extra,
    }


def export_encoder(state_dict: dict[str, torch.Tensor], metadata: dict[str, Any], out_dir: PathLike) -> Path:
    """Write ``out_dir/model.safetensors`` (backbone weights) and ``out_dir/sslkit.json``.

    Both files are written atomically (temp file, then rename); the weights go
    first, so a metadata file always describes complete weights.

    Args:
        state_dict: the backbone's ``state_dict()`` (no ``backbone.`` prefix).
        metadata: from :func:`encoder_metadata`.
        out_dir: created if missing.

    >>> import tempfile
    >>> from sslkit.backbones import create_backbone
    >>> net = create_backbone("small_cnn", width=8)
    >>> meta = encoder_metadata({"backbone": "small_cnn", "backbone_kwargs": {"width": 8}}, "SimCLR", net.num_features)
    >>> out = export_encoder(net.state_dict(), meta, tempfile.mkdtemp())
    >>> load_encoder(out).num_features
    64
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write(out / METADATA_FILE, lambda tmp: Path(tmp).write_text(json.dumps(metadata, indent=2, default=str)))
    return out


def backbone_state_dict(module_state: dict[str, torch.Tensor], prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """The backbone's entries of a method's ``state_dict`` (``backbone.*``), prefix removed."""
    return {k[len(prefix) :]: v for k, v in module_state.items() if k.startswith(prefix)}


def load_encoder(path: PathLike) -> nn.Module:
    """Rebuild an exported encoder: an ``nn.Module`` in eval mode with ``num_features``.

    ``path`` is the export folder (or its ``sslkit.json``). The metadata is
    attached as ``encoder.sslkit_metadata``.

    Raises:
        FileNotFoundError: a file of the export is missing.
        ValueError: the files do not match each other.
    """
    from safetensors.torch import load_file

    from sslkit.backbones import create_backbone

    folder = Path(path)
    if folder.name == METADATA_FILE:
        folder = folder.parent
    meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise DataNotFoundError(
                f"'{p}' is missing: an sslkit export folder holds {WEIGHTS_FILE} and {METADATA_FILE}. "
                "Create one with `sslkit export RUN_OR_CKPT --out DIR`."
            )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise InvalidInputError(f"'{meta_path}' is not sslkit encoder metadata (format={meta.get('format')!r}).")
    encoder = create_backbone(meta["backbone"], **meta["backbone_kwargs"])
    try:
        encoder.load_state_dict(load_file(str(weights_path)))
    except RuntimeError as err:
        raise InvalidInputError(
            f"The weights in '{weights_path}' do not fit backbone '{meta['backbone']}' with "
            f"{meta['backbone_kwargs']} from '{meta_path}': {err}"
        ) from None
    encoder.sslkit_metadata = meta  # type: ignore[assignment]
    return encoder.eval()
