"""Where a pretraining step's time goes, per-sample views vs batched views (Lightning's SimpleProfiler).

The default `sslkit fit` set-up (SimCLR, small CNN, digits, batch 128, online evaluator), 3 epochs,
once with the per-sample torchvision v2 pipeline in the loader and once with the batched views
made on the device, each in its own process. Writes results/profile_pipeline.{json,md}.

    python benchmarks/profile_pipeline.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: SimpleProfiler actions reported, and what they are.
ACTIONS = {
    "[_TrainingEpochLoop].train_dataloader_next": "fetch a batch from the loader (per-sample views are made here)",
    "[Strategy]SingleDeviceStrategy.batch_to_device": "move to the device + on_after_batch_transfer (batched views are made here)",
    "run_training_batch": "forward, loss, backward, optimizer step",
    "[Callback]SSLOnlineEvaluator{'name': '', 'probes': ['linear', 'mlp']}.on_train_batch_end": "online evaluator (probes)",
}


def profile(batched: bool, epochs: int, workers: int) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.profilers import SimpleProfiler

    from sslkit import DigitsDataModule, SimCLR, SSLOnlineEvaluator

    torch.set_num_threads(2)
    pl.seed_everything(0, verbose=False)
    model = SimCLR(backbone="small_cnn", proj_hidden_dim=512, proj_dim=128, temperature=0.2, optimizer="adamw",
                   lr=2e-3, weight_decay=1e-4, warmup_epochs=1)
    profiler = SimpleProfiler()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[SSLOnlineEvaluator()], profiler=profiler)
    trainer.fit(model, DigitsDataModule(batched_views=batched, num_workers=workers))
    rows = {}
    for action, durations in profiler.recorded_durations.items():
        if action in ACTIONS or action == "run_training_epoch":
            rows[action] = {"calls": len(durations), "mean_ms": 1000 * sum(durations) / len(durations),
                            "total_s": sum(durations)}
    return {"batched": batched, "workers": workers, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "profile_pipeline")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        batched, workers = json.loads(args.child)
        print(json.dumps(profile(batched, args.epochs, workers)))
        return
    runs = []
    for batched, workers in ((False, 0), (False, 2), (True, 0)):
        out = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--child",
                              json.dumps([batched, workers])], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    head = "| part of a training step | " + " | ".join(
        f"{'batched' if r['batched'] else 'per-sample'} views, {r['workers']} workers: ms/step (share)" for r in runs) + " |"
    lines = [f"`python benchmarks/profile_pipeline.py --epochs {args.epochs}`", "", head, "|---" * (len(runs) + 1) + "|"]
    for action, what in ACTIONS.items():
        cells = []
        for r in runs:
            row, epoch = r["rows"].get(action), r["rows"]["run_training_epoch"]
            steps = r["rows"]["run_training_batch"]["calls"]
            cells.append("-" if row is None else f"{1000 * row['total_s'] / steps:.1f} ({100 * row['total_s'] / epoch['total_s']:.0f} %)")
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    lines.append("| **whole epoch loop, per step** | " + " | ".join(
        f"**{1000 * r['rows']['run_training_epoch']['total_s'] / r['rows']['run_training_batch']['calls']:.1f}**"
        for r in runs) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=2))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
