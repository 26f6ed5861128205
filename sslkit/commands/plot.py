"""``sslkit plot RUN``: probe curves per epoch and a 2-D map of the encoder's embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from sslkit.commands.common import (
    MapMethod,
    Split,
    datamodule,
    device,
    new_parser,
    split,
)
from sslkit.evaluation import embed
from sslkit.export import load_encoder
from sslkit.plot import plot_embedding_map, plot_probe_curves
from sslkit.plot.embedding_map import resolve_method


def main(argv: list[str]) -> None:
    parser = new_parser(
        "sslkit plot",
        "probe_accuracy.png (linear, MLP and kNN accuracy per epoch, from metrics.csv) and "
        "embeddings.png (UMAP if umap-learn is installed, else t-SNE) of a run.",
    )
    parser.add_argument("source", type=str, help="Run folder (or export folder / .ckpt for the map only).")
    parser.add_argument("--out", type=Optional[str], default=None, help="Folder for the PNGs (default: the run folder).")
    parser.add_argument("--split", type=Split, default="val", help="Images of the embedding map.")
    parser.add_argument("--method", type=MapMethod, default="auto")
    parser.add_argument("--max_points", type=int, default=3000)
    parser.add_argument("--device", type=str, default="auto")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    resolve_method(cfg.method)  # fail before any work when UMAP is asked for but missing

    source = Path(cfg.source)
    out = Path(cfg.out) if cfg.out else (source if source.is_dir() else source.parent)
    metrics = source / "metrics.csv"
    if metrics.is_file():
        print(f"Probe curves: {plot_probe_curves(metrics, out / 'probe_accuracy.png')}")
    encoder, transform = load_encoder(source)
    meta = encoder.sslkit_metadata
    dm = datamodule(cfg.data, meta.get("data"))
    features, labels = embed(encoder, split(dm, cfg.split), transform, device=device(cfg.device))
    names = getattr(split(dm, cfg.split), "classes", None)
    png = plot_embedding_map(features, labels, out / "embeddings.png", cfg.method,
                             class_names=names, max_points=cfg.max_points)
    print(f"Embedding map: {png}")
