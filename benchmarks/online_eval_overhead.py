"""Online-evaluator overhead and probe quality: none vs sslkit's evaluator vs lightning-bolts' evaluator.

Every system trains the *same* SimCLR module (same backbone, head, optimizer,
batch, data and seed) on one identical 3-view data pipeline ``((x1, x2,
x_eval), y)``, the format bolts' evaluator needs; only the evaluator differs.
Runs are interleaved (round-robin over systems, each run in its own process so
its peak memory is its own), so machine noise hits every system alike.

Measured per run:
- step time: median wall time from ``on_train_batch_start`` to the end of every
  ``on_train_batch_end`` hook (forward, backward, optimizer, evaluator), data loading excluded;
- evaluator time: median wall time of the evaluator's own ``on_train_batch_end`` (its whole
  per-step cost: probe forward/backward/step, metrics, and bolts' extra encoder forward);
  on 2 shared cores the step time drifts by more than the evaluator costs, so this direct
  figure, divided by the no-evaluator step time, is the overhead we report;
- online linear-probe accuracy at the end (``online_val_acc``);
- offline accuracy: logistic regression on clean train features of the final
  frozen encoder, scored on the validation split (the reference the online figure should approach);
- peak RSS of the process.

Usage:
    pip install -e ".[bench]"   # bolts with --no-deps: see README
    python benchmarks/online_eval_overhead.py --setting digits --epochs 30 --rounds 2
    python benchmarks/online_eval_overhead.py --setting resnet18 --steps 6 --rounds 2

Writes ``benchmarks/results/online_eval_overhead_<setting>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSTEMS = ("none", "sslkit", "bolts")
RESULTS = Path(__file__).parent / "results"


def import_bolts_evaluator() -> Any:
    """lightning-bolts 0.7.0 on Lightning 2 needs one import alias (see DESIGN.md)."""
    import lightning_utilities.core.apply_func as apply_func

    sys.modules.setdefault("pytorch_lightning.utilities.apply_func", apply_func)
    from pl_bolts.callbacks.ssl_online import SSLOnlineEvaluator as BoltsEvaluator

    class PatchedBoltsEvaluator(BoltsEvaluator):  # type: ignore[misc]
        """Bolts' hook requires ``dataloader_idx``, which Lightning 2 omits for one loader: the
        smallest patch that lets it run. Its logic is unchanged."""

        def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                                    batch_idx: int, dataloader_idx: int = 0) -> None:
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    return PatchedBoltsEvaluator


def run_one(system: str, setting: str, epochs: int, steps: int, seed: int) -> dict[str, Any]:
    import lightning.pytorch as pl
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from torch.utils.data import DataLoader, Dataset

    from sslkit.callbacks import SSLOnlineEvaluator
    from sslkit.data import DigitsDataModule, eval_transform, make_views
    from sslkit.data.datasets import TransformedDataset
    from sslkit.methods import SimCLR

    torch.set_num_threads(2)
    pl.seed_everything(seed)
    dm = DigitsDataModule()
    dm.setup()
    train_raw, val_raw, _ = dm.splits
    views = make_views("simclr", dm.image_size, dm.mean, dm.std, **dm.view_overrides)
    clean = eval_transform(dm.image_size, dm.mean, dm.std)

    class ThreeViews(Dataset):
        def __len__(self) -> int:
            return len(train_raw)

        def __getitem__(self, i: int) -> Any:
            x, y = train_raw[i]
            v1, v2 = views(x)
            return (v1, v2, clean(x)), y

    class Wrapped(Dataset):  # val as ((x,), y): bolts reads inputs[-1]
        def __len__(self) -> int:
            return len(val_raw)

        def __getitem__(self, i: int) -> Any:
            x, y = val_raw[i]
            return (clean(x),), y

    class BenchSimCLR(SimCLR):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            (x,), y = batch
            return super().validation_step((x, y), batch_idx)

    if setting == "digits":
        model = BenchSimCLR(backbone="small_cnn", proj_hidden_dim=512, temperature=0.2, optimizer="adamw",
                            lr=2e-3, weight_decay=1e-4, warmup_epochs=2)
        batch, limit = 128, None
    else:
        model = BenchSimCLR(backbone="resnet18", backbone_kwargs={"cifar_stem": True}, temperature=0.2,
                            optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_steps=0)
        batch, limit = 128, steps
    train = DataLoader(ThreeViews(), batch_size=batch, shuffle=True, drop_last=True, num_workers=2,
                       persistent_workers=True)
    val = DataLoader(Wrapped(), batch_size=batch, num_workers=0)

    times: list[float] = []
    hook_times: list[float] = []

    class Start(pl.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *args: Any) -> None:  # runs just before the evaluator's hook
            self.t1 = time.perf_counter()

    class End(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            now = time.perf_counter()
            times.append(now - start.t0)
            hook_times.append(now - start.t1)

    start = Start()
    callbacks: list[Any] = [start]
    if system == "sslkit":
        callbacks.append(SSLOnlineEvaluator(num_classes=10))
    elif system == "bolts":
        callbacks.append(import_bolts_evaluator()(z_dim=model.num_features, num_classes=10))
    callbacks.append(End())
    trainer = pl.Trainer(
        max_epochs=epochs if limit is None else 1, limit_train_batches=limit, limit_val_batches=None if limit is None else 2,
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
    )
    class BenchData(pl.LightningDataModule):  # bolts' evaluator reads `name` and `num_classes`
        name, num_classes = "digits", 10

        def train_dataloader(self) -> Any:
            return train

        def val_dataloader(self) -> Any:
            return val

    t0 = time.perf_counter()
    trainer.fit(model, BenchData())
    wall = time.perf_counter() - t0

    model.eval()
    feats: dict[str, Any] = {}
    with torch.no_grad():
        for name, raw in (("train", train_raw), ("val", val_raw)):
            loader = DataLoader(TransformedDataset(raw, clean), batch_size=256)
            f, ys = zip(*[(model(x), y) for x, y in loader])
            feats[name] = (torch.cat(f).numpy(), torch.cat(ys).numpy())
    scaler = StandardScaler().fit(feats["train"][0])
    offline = LogisticRegression(max_iter=3000).fit(scaler.transform(feats["train"][0]), feats["train"][1])
    online = trainer.callback_metrics.get("online_val_acc")
    warm = times[len(times) // 10 :] or times  # drop warm-up steps
    return {
        "system": system,
        "step_s": float(np.median(warm)),
        "hook_s": float(np.median(hook_times[len(hook_times) // 10 :] or hook_times)),
        "steps": len(times),
        "wall_s": wall,
        "online_val_acc": None if online is None else float(online),
        "offline_val_acc": float(offline.score(scaler.transform(feats["val"][0]), feats["val"][1])),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def available(system: str) -> str:
    if system != "bolts":
        return ""
    try:
        import_bolts_evaluator()
    except Exception as err:  # reported, not silently dropped
        return f"not installed or not importable: {type(err).__name__}: {err}"
    return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=("digits", "resnet18"), default="digits")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=6, help="resnet18: training steps per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions (seeds 0..rounds-1)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        system, seed = args.one.split(":")
        print(json.dumps(run_one(system, args.setting, args.epochs, args.steps, int(seed))))
        return

    missing = {s: why for s in SYSTEMS if (why := available(s))}
    runs: list[dict[str, Any]] = []
    for seed in range(args.rounds):
        for system in SYSTEMS:
            if system in missing:
                continue
            cmd = [sys.executable, __file__, "--setting", args.setting, "--epochs", str(args.epochs),
                   "--steps", str(args.steps), "--one", f"{system}:{seed}"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)

    base = statistics.median(r["step_s"] for r in runs if r["system"] == "none")
    table = ["| system | step time (median) | evaluator time per step | overhead (evaluator / step without) "
             "| online linear val acc | offline LR val acc | gap (offline - online) | peak RSS |",
             "|---|---|---|---|---|---|---|---|"]
    summary: dict[str, Any] = {}
    for system in SYSTEMS:
        if system in missing:
            table.append(f"| {system} | {missing[system]} | | | | | | |")
            continue
        rs = [r for r in runs if r["system"] == system]
        step = statistics.median(r["step_s"] for r in rs)
        hook = statistics.median(r["hook_s"] for r in rs)
        online = [r["online_val_acc"] for r in rs if r["online_val_acc"] is not None]
        offline = [r["offline_val_acc"] for r in rs]
        fmt = lambda xs: (f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}" if xs else "n/a")  # noqa: E731
        gap = [r["offline_val_acc"] - r["online_val_acc"] for r in rs if r["online_val_acc"] is not None]
        summary[system] = {"step_s": step, "hook_s": hook, "overhead": hook / base, "online": online, "offline": offline,
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
        table.append(
            f"| {system} | {step * 1000:.1f} ms | {hook * 1000:.2f} ms | {100 * hook / base:.1f} % | {fmt(online)} | {fmt(offline)} "
            f"| {fmt(gap)} | {summary[system]['peak_rss_mb']:.0f} MB |"
        )
    RESULTS.mkdir(exist_ok=True)
    cmd = " ".join(["python", "benchmarks/online_eval_overhead.py", *sys.argv[1:]])
    md = "\n".join([f"`{cmd}` ({args.rounds} interleaved rounds)", "", *table])
    (RESULTS / f"online_eval_overhead_{args.setting}.md").write_text(md + "\n")
    (RESULTS / f"online_eval_overhead_{args.setting}.json").write_text(
        json.dumps({"command": cmd, "runs": runs, "summary": summary, "missing": missing}, indent=2)
    )
    print(md)


if __name__ == "__main__":
    main()
