"""How sslkit scales: epoch time vs dataset size, memory vs batch size (SimCLR, BYOL), and the kNN
monitor's working memory vs its bank size. Writes results/scaling.{json,md,png}.

    python benchmarks/scaling.py                    # ~5 min on 2 CPU cores
    python benchmarks/scaling.py --quick            # a smoke run

Each measurement runs in its own process (peak RSS is per process). Data: synthetic 32x32 uint8
images (``gpu_check.synthetic_images``), the small CNN, batched views, the online evaluator attached.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_fit(method: str, size: int, batch: int, epochs: int) -> dict[str, Any]:
    """Seconds of the last epoch and peak RSS of a fit on ``size`` synthetic images."""
    import lightning.pytorch as pl
    import torch

    sys.path.insert(0, str(HERE))
    from gpu_check import SyntheticDataModule

    from sslkit.callbacks import SSLOnlineEvaluator
    from sslkit.methods import BYOL, SimCLR

    torch.set_num_threads(2)
    pl.seed_everything(0, verbose=False)
    cls = {"simclr": SimCLR, "byol": BYOL}[method]
    model = cls(backbone="small_cnn", optimizer="adamw", lr=2e-3, warmup_epochs=0)
    dm = SyntheticDataModule(size, 256, batch_size=batch)
    ends: list[float] = []

    class EpochClock(pl.Callback):
        def on_train_epoch_start(self, *a: Any) -> None:
            ends.append(time.perf_counter())

        def on_train_epoch_end(self, *a: Any) -> None:
            ends.append(time.perf_counter())

    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[SSLOnlineEvaluator(num_classes=10), EpochClock()])
    trainer.fit(model, dm)
    return {"method": method, "size": size, "batch": batch, "epoch_s": ends[-1] - ends[-2], "peak_rss_mb": _rss_mb()}


def measure_knn(bank_size: int, dim: int, queries: int, chunked: bool) -> dict[str, Any]:
    """Peak RSS of kNN scoring against a bank, beyond the process's RSS with the bank loaded."""
    import torch
    import torch.nn.functional as F

    from sslkit.knn import weighted_knn_scores

    torch.set_num_threads(2)
    bank = F.normalize(torch.randn(bank_size, dim), dim=1)
    labels = torch.randint(0, 10, (bank_size,))
    query = F.normalize(torch.randn(queries, dim), dim=1)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if chunked:
        weighted_knn_scores(query, bank, labels, 10, k=200, chunk_size=4096)
    else:  # the naive way: the whole (queries, bank) similarity matrix at once
        sim, idx = (query @ bank.T).topk(200, dim=1)
        torch.zeros(queries, 10).scatter_add_(1, labels[idx], (sim / 0.1).exp())
    return {"bank": bank_size, "chunked": chunked, "seconds": time.perf_counter() - t0,
            "bank_mb": bank.numel() * 4 / 2**20, "extra_rss_mb": _status_mb("VmHWM") - base}


def _child(kind: str, **kw: Any) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **kw})]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(results: dict[str, list[dict[str, Any]]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=100)
    for method in ("simclr", "byol"):
        rows = [r for r in results["epoch_time"] if r["method"] == method]
        axes[0].plot([r["size"] for r in rows], [r["epoch_s"] for r in rows], marker="o", label=method)
        rows = [r for r in results["memory"] if r["method"] == method]
        axes[1].plot([r["batch"] for r in rows], [r["peak_rss_mb"] for r in rows], marker="o", label=method)
    axes[0].set(xlabel="training images", ylabel="seconds per epoch", title="Epoch time vs dataset size")
    axes[1].set(xlabel="batch size", ylabel="peak RSS (MB)", title="Memory vs batch size")
    for chunked in (True, False):
        rows = [r for r in results["knn"] if r["chunked"] == chunked]
        axes[2].plot([r["bank"] for r in rows], [r["extra_rss_mb"] for r in rows], marker="o",
                     label="sslkit (bank chunks + running top-k)" if chunked else "naive full similarity")
    axes[2].set(xlabel="kNN bank size", ylabel="working memory beyond the bank (MB)",
                title="kNN monitor memory", xscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=HERE / "results" / "scaling")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        print(json.dumps(measure_fit(**spec) if kind == "fit" else measure_knn(**spec)))
        return

    sizes = [256, 512] if args.quick else [1024, 2048, 4096, 8192]
    batches = [32, 64] if args.quick else [32, 64, 128, 256, 512]
    banks = [4096, 16384] if args.quick else [4096, 16384, 65536, 262144]
    results: dict[str, list[dict[str, Any]]] = {"epoch_time": [], "memory": [], "knn": []}
    for method in ("simclr", "byol"):
        for size in sizes:
            results["epoch_time"].append(_child("fit", method=method, size=size, batch=128 if not args.quick else 64, epochs=2))
            print(results["epoch_time"][-1], flush=True)
        for batch in batches:
            results["memory"].append(_child("fit", method=method, size=max(2 * batch, 1024 if not args.quick else 256),
                                            batch=batch, epochs=1))
            print(results["memory"][-1], flush=True)
    for bank in banks:
        for chunked in (True, False):
            results["knn"].append(_child("knn", bank_size=bank, dim=256, queries=512, chunked=chunked))
            print(results["knn"][-1], flush=True)

    lines = [f"`python benchmarks/scaling.py{' --quick' if args.quick else ''}`", "",
             "Epoch time vs training images (batch 128, small CNN, 32x32, online evaluator):", "",
             "| method | images | s/epoch | images/s |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['size']} | {r['epoch_s']:.2f} | {r['size'] / r['epoch_s']:.0f} |" for r in results["epoch_time"]]
    lines += ["", "Peak RSS vs batch size (one epoch):", "", "| method | batch | peak RSS (MB) |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['batch']} | {r['peak_rss_mb']:.0f} |" for r in results["memory"]]
    lines += ["", "kNN scoring of 512 queries (k=200, D=256): working memory beyond the bank itself:", "",
              "| bank | bank MB | sslkit chunked: extra MB | naive: extra MB | sslkit s | naive s |", "|---|---|---|---|---|---|"]
    for bank in banks:
        c = next(r for r in results["knn"] if r["bank"] == bank and r["chunked"])
        n = next(r for r in results["knn"] if r["bank"] == bank and not r["chunked"])
        lines.append(f"| {bank} | {c['bank_mb']:.0f} | {c['extra_rss_mb']:.0f} | {n['extra_rss_mb']:.0f} | "
                     f"{c['seconds']:.2f} | {n['seconds']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
