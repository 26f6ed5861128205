"""Plots of a run: probe accuracy per epoch, and a 2-D map of embeddings."""

from sslkit.plot.curves import plot_probe_curves, read_probe_curves
from sslkit.plot.embedding_map import embedding_map_2d, plot_embedding_map

__all__ = ["embedding_map_2d", "plot_embedding_map", "plot_probe_curves", "read_probe_curves"]
