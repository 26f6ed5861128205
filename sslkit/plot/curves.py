"""Probe accuracy per epoch, from a run's metrics.csv."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from sslkit.errors import InvalidInputError
from sslkit.io import PathLike, atomic_write

_PROBE_KEY = re.compile(r"^online/(?P<probe>[^/]+)/val_acc$|^online_(?P<monitor>knn)_acc$")


def read_probe_curves(metrics_csv: PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{probe: [(epoch, val_acc), ...]}`` from a CSVLogger ``metrics.csv``.

    Reads the ``online/<probe>/val_acc`` columns that
    :class:`~sslkit.callbacks.SSLOnlineEvaluator` logs, and ``online_knn_acc``
    of :class:`~sslkit.callbacks.KNNOnlineEvaluator` (as probe ``knn``).
    """
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            for key, value in row.items():
                m = _PROBE_KEY.match(key or "")
                if m and value not in ("", None) and epoch not in ("", None):
                    curves[m["probe"] or m["monitor"]][int(float(epoch))] = float(value)
    return {probe: sorted(points.items()) for probe, points in curves.items()}


def plot_probe_curves(metrics_csv: PathLike, out_png: PathLike, title: str = "Online probe accuracy") -> Path:
    """Write a PNG of validation accuracy per epoch, one line per probe.

    Raises ``ValueError`` when the CSV has no probe accuracy (e.g. a run
    without :class:`~sslkit.callbacks.SSLOnlineEvaluator`).
    """
    from matplotlib.figure import (
        Figure,  # no pyplot: the caller's backend (e.g. a notebook's) is untouched
    )

    curves = read_probe_curves(metrics_csv)
    if not curves:
        raise InvalidInputError(f"'{metrics_csv}' has no online/<probe>/val_acc column to plot.")
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for probe, points in sorted(curves.items()):
        epochs, accs = zip(*points)
        ax.plot(epochs, accs, marker="o", markersize=3, label=f"{probe} (last {accs[-1]:.3f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))
