"""A 2-D map of embeddings coloured by label: UMAP when installed, else t-SNE from scikit-learn."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from sslkit.errors import InvalidInputError
from sslkit.io import PathLike, atomic_write

METHODS = ("auto", "umap", "tsne")


def resolve_method(method: str) -> str:
    """``umap`` or ``tsne`` for ``auto`` / ``umap`` / ``tsne``, with a clear error when UMAP is asked for but missing."""
    if method not in METHODS:
        raise InvalidInputError(f"Unknown map method '{method}'. Choose one of: {', '.join(METHODS)}.")
    has_umap = importlib.util.find_spec("umap") is not None
    if method == "umap" and not has_umap:
        raise InvalidInputError("method='umap' needs the umap-learn package: pip install umap-learn (or use 'tsne').")
    return "umap" if method == "umap" or (method == "auto" and has_umap) else "tsne"


def embedding_map_2d(
    embeddings: torch.Tensor | np.ndarray, method: str = "auto", seed: int = 0
) -> tuple[np.ndarray, str]:
    """``(coords (N, 2), method used)``: UMAP or t-SNE of L2-normalised ``embeddings (N, D)``.

    ``method``: ``auto`` (UMAP if ``umap-learn`` is installed, else t-SNE), ``umap`` or ``tsne``.

    >>> xy, used = embedding_map_2d(np.random.default_rng(0).normal(size=(40, 8)), method="tsne")
    >>> xy.shape, used
    ((40, 2), 'tsne')
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise InvalidInputError(f"embeddings must be (N, D) with N >= 3, got shape {x.shape}.")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    used = resolve_method(method)
    if used == "umap":
        import umap

        coords = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(x)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (x.shape[0] - 1) / 3))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    return np.asarray(coords, dtype=np.float32), used


def plot_embedding_map(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    out_png: PathLike,
    method: str = "auto",
    class_names: Optional[Sequence[str]] = None,
    max_points: int = 3000,
    seed: int = 0,
    title: Optional[str] = None,
) -> Path:
    """Write a PNG scatter of a 2-D map of ``embeddings (N, D)``, coloured by ``labels (N,)``.

    At most ``max_points`` samples (a seeded random subset) are mapped, since
    t-SNE's cost grows quadratically. Negative labels are drawn grey as "unlabelled".

    >>> import tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> out = plot_embedding_map(rng.normal(size=(30, 4)), rng.integers(0, 3, 30), os.path.join(tempfile.mkdtemp(), "m.png"), "tsne")
    >>> out.read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib.figure import (
        Figure,  # no pyplot: the caller's backend (e.g. a notebook's) is untouched
    )

    x, y = np.asarray(embeddings), np.asarray(labels).astype(np.int64)
    if y.shape != (x.shape[0],):
        raise InvalidInputError(f"labels must have shape ({x.shape[0]},), got {y.shape}.")
    if x.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_points, replace=False))
        x, y = x[keep], y[keep]
    coords, used = embedding_map_2d(x, method, seed)
    fig = Figure(figsize=(6.5, 5.5), dpi=100)
    ax = fig.subplots()
    if (y < 0).any():
        ax.scatter(*coords[y < 0].T, s=4, c="lightgrey", label="unlabelled")
    classes = np.unique(y[y >= 0])
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, c in enumerate(classes):
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        ax.scatter(*coords[y == c].T, s=5, color=cmap(i % cmap.N), label=name)
    ax.set_title(title or f"Embeddings ({'UMAP' if used == 'umap' else 't-SNE'}, {len(y)} samples)")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))
