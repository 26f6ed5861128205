"""``sslkit export RUN_OR_CKPT --out DIR``: the encoder of a run as safetensors + JSON."""

from __future__ import annotations

from jsonargparse import ArgumentParser

from sslkit.export import export_checkpoint


def main(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="sslkit export",
        description="Write the backbone of a run's best checkpoint (or of a .ckpt) as model.safetensors + "
        "sslkit.json (+ timm's config.json for timm backbones). Load it with sslkit.load_encoder(DIR).",
    )
    parser.add_argument("source", type=str, help="Run folder (runs/sslkit/version_N) or .ckpt file.")
    parser.add_argument("--out", type=str, required=True, help="Export folder (created; existing files replaced).")
    args = parser.parse_args(argv)
    out = export_checkpoint(args.source, args.out)
    from sslkit.export import load_encoder

    encoder, _ = load_encoder(out)  # proves the export loads before we say it worked
    meta = encoder.sslkit_metadata
    acc = meta.get("probe_accuracy")
    score = f", {meta.get('monitor')} {acc:.4f}" if acc is not None else ""
    print(f"Exported {meta['backbone']} ({meta['num_features']} features{score}) from {meta['checkpoint']}")
    print(f"Encoder folder: {out}")
