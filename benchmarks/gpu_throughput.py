"""Pretraining throughput on one GPU: SimCLR, CIFAR-stem ResNet-18, CIFAR-shaped synthetic data.

Measures images/s of full training steps (on-device batched augmentation of two views,
forward, NT-Xent, backward, LARS step) in bf16 autocast, with ``channels_last``, with
and without ``torch.compile`` of the backbone, and the share of the card's dense bf16
peak that the step's FLOPs represent.

    python benchmarks/gpu_throughput.py                       # on a GPU; writes results/gpu_throughput.{json,md}
    python benchmarks/gpu_throughput.py --device cpu --batch 32 --steps 3 --warmup 1 --no-compile   # smoke run

The data is ``gpu_check.synthetic_images`` (uint8, 50,000 x 3 x 32 x 32), kept on the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_check import synthetic_images  # noqa: E402

from sslkit.data.batched_views import make_batched_views  # noqa: E402
from sslkit.data.keyed import sample_key  # noqa: E402
from sslkit.methods import SimCLR  # noqa: E402
from sslkit.optim import LARS, decay_param_groups  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of the device name.
#: Checked in order: "H100 PCIe"/"H100 NVL" before the SXM parts, whose names ("NVIDIA H100 80GB HBM3") lack "SXM".
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "GH200": 989.4,
                    "A100": 312.0, "L40S": 362.0, "A10": 125.0}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def forward_flops(model: torch.nn.Module, batch: torch.Tensor) -> float:
    """FLOPs of one forward pass of ``batch`` (torch's FLOP counter: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    return float(counter.get_total_flops())


def run(args: argparse.Namespace, compile_backbone: bool) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    images, _ = synthetic_images(args.train_size, seed=0)
    images = images.to(device)
    module = SimCLR(backbone="resnet18", backbone_kwargs={"cifar_stem": True}, optimizer="lars", lr=0.3,
                    temperature=0.2).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    module = module.to(memory_format=fmt)
    if compile_backbone:
        module.backbone = torch.compile(module.backbone)
    opt = LARS(decay_param_groups([module], 1e-6), lr=0.3, momentum=0.9)
    views_of = make_batched_views("simclr", 32, CIFAR_MEAN, CIFAR_STD)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    n = images.shape[0]

    def step(i: int) -> torch.Tensor:
        idx = torch.randint(0, n, (args.batch,), device=device)
        gen = torch.Generator(device=device).manual_seed(sample_key(0, 0, i))
        views = [v.contiguous(memory_format=fmt) for v in views_of(images[idx], gen)]
        with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
            loss, _ = module.ssl_loss(views)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(args.warmup):  # compilation and autotuning happen here
        step(i)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(args.warmup + i)
    sync()
    seconds = time.perf_counter() - t0
    images_per_s = args.batch * args.steps / seconds
    # Training FLOPs ~ 3x the forward (backward = 2x), for both views of each image.
    probe = torch.zeros(args.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
        fwd = forward_flops(module.backbone, probe) / args.batch
    achieved = 3 * 2 * fwd * images_per_s / 1e12
    peak = peak_tflops(device)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "compile": compile_backbone, "channels_last": args.channels_last, "bf16": args.bf16, "batch": args.batch,
        "steps": args.steps, "images_per_s": images_per_s, "step_ms": 1000 * seconds / args.steps,
        "backbone_gflops_per_image_fwd": fwd / 1e9, "achieved_tflops": achieved,
        "bf16_peak_tflops": peak, "share_of_peak": achieved / peak if peak else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "final_loss": float(loss),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--train-size", type=int, default=50_000)
    p.add_argument("--no-compile", action="store_true", help="only the eager run")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--fp32", dest="bf16", action="store_false")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_throughput")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    results = [run(args, False)] + ([] if args.no_compile else [run(args, True)])
    rows = ["| device | torch.compile | channels_last | bf16 | batch | images/s | step ms | TFLOP/s | share of bf16 peak | peak GPU memory |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        share = f"{100 * r['share_of_peak']:.1f} %" if r["share_of_peak"] else "n/a"
        mem = f"{r['peak_memory_gb']:.1f} GB" if r["peak_memory_gb"] else "n/a"
        rows.append(f"| {r['device']} | {r['compile']} | {r['channels_last']} | {r['bf16']} | {r['batch']} | "
                    f"{r['images_per_s']:.0f} | {r['step_ms']:.1f} | {r['achieved_tflops']:.1f} | {share} | {mem} |")
    cmd = "python benchmarks/gpu_throughput.py " + " ".join(sys.argv[1:])
    md = f"`{cmd}`\n\n" + "\n".join(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"command": cmd, "results": results}, indent=2))
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
