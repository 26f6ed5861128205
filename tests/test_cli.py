"""The `sslkit` command: default run folder, BYOL, fast_dev_run, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslkit.cli import main, resolve_aliases

FAST = ["--data.num_workers", "0", "--trainer.enable_progress_bar", "false"]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sslkit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_default_fit_writes_a_complete_run_folder(tmp_path: Path) -> None:
    res = run_cli(["fit", "--trainer.max_epochs", "2", *FAST], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    last = (res.stdout + res.stderr).strip().splitlines()[-1]
    assert last.startswith("Run folder: ")
    run = tmp_path / last.removeprefix("Run folder: ")
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert {"online_val_acc", "online/mlp/val_acc", "online_knn_acc", "train_loss_epoch"} <= set(header.split(","))
    assert (run / "probe_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The exported encoder is the best checkpoint's backbone, bit for bit.
    from sslkit import load_encoder
    from sslkit.methods import SimCLR

    meta = json.loads((run / "encoder" / "sslkit.json").read_text())
    assert meta["backbone"] == "small_cnn" and meta["method"] == "SimCLR" and meta["input_size"] == [3, 32, 32]
    assert meta["checkpoint"].endswith(".ckpt") and "best-" in meta["checkpoint"]
    encoder, _ = load_encoder(run / "encoder")
    module = SimCLR.load_from_checkpoint(meta["checkpoint"], map_location="cpu").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), module.backbone(x))
    assert meta["probe_accuracy"] == pytest.approx(float(Path(meta["checkpoint"]).stem.split("-")[-1]), abs=1e-4)


def test_fast_dev_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--trainer.fast_dev_run", "true", *FAST])


def test_byol_runs_a_few_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--model", "BYOL", "--model.proj_hidden_dim", "64", "--model.pred_hidden_dim", "64",
          "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", *FAST])
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["global_step"] == 3 and any(k.startswith("target_backbone.") for k in state["state_dict"])


def test_early_stopping_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    from sslkit.cli import SSLKitCLI

    monkeypatch.chdir(tmp_path)
    cli_holder = []
    monkeypatch.setattr(SSLKitCLI, "after_fit", lambda self: cli_holder.append(self))
    main(["fit", "--early_stopping_patience", "3", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--trainer.limit_val_batches", "1", *FAST])
    stoppers = [c for c in cli_holder[0].trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and stoppers[0].monitor == "online_val_acc" and stoppers[0].patience == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.backbone", "resnet19"], "Unknown backbone 'resnet19'. Did you mean: resnet18"),
        (["--model", "SimCRL"], "Unknown method 'SimCRL' for --model. Did you mean: simclr"),
        (["--data", "cifar11"], "Unknown dataset 'cifar11' for --data. Did you mean: cifar10"),
        (["--data", "imagefolder", "--data.root", "/no/such/dir"], "Image folder '/no/such/dir' does not exist"),
        (["--data.batch_size", "5000"], "batch_size 5000 is larger than the training set"),
        (["--data.batch_size", "1"], "A per-device batch of 1 cannot train BatchNorm layers"),
        (["--trainer.sync_batchnorm", "true"], "--trainer.sync_batchnorm true needs GPUs"),
    ],
)
def test_bad_input_gets_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    res = run_cli(["fit", *args, *FAST], tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    error_lines = [line for line in res.stderr.splitlines() if line.startswith("sslkit: error:")]
    assert len(error_lines) == 1 and message in error_lines[0], res.stderr[-2000:]


def test_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    res = run_cli(["fit", "--data", "imagefolder", "--data.root", str(tmp_path / "imgs"), *FAST], tmp_path)
    assert res.returncode == 2 and "holds no images" in res.stderr and "Traceback" not in res.stderr


def test_aliases() -> None:
    assert resolve_aliases(["fit", "--data", "Digits", "--model=byol"]) == [
        "fit", "--data", "sslkit.data.DigitsDataModule", "--model=sslkit.methods.BYOL",
    ]
    assert resolve_aliases(["fit", "--model", "my.pkg.Method"]) == ["fit", "--model", "my.pkg.Method"]


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_shipped_configs_parse(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parents[1] / "configs" / config
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: sslkit" in printed


def test_ckpt_path_last_resumes_the_newest_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", *FAST]
    main(["fit", "--trainer.max_epochs", "1", *short])
    main(["fit", "--trainer.max_epochs", "2", "--ckpt_path", "last", *short])
    first = torch.load(tmp_path / "runs/sslkit/version_0/checkpoints/last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "runs/sslkit/version_1/checkpoints/last.ckpt", weights_only=False)
    assert (first["global_step"], resumed["global_step"]) == (2, 4)
    assert (tmp_path / "runs/sslkit/version_0/metrics.csv").is_file()  # the first run's log is kept


def test_resuming_a_checkpoint_of_another_method_or_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1", *FAST])
    ckpt = str(tmp_path / "runs/sslkit/version_0/checkpoints/last.ckpt")
    res = run_cli(["fit", "--model", "byol", "--ckpt_path", ckpt, *FAST], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "written by sslkit.methods.simclr.SimCLR, not sslkit.methods.byol.BYOL" in res.stderr
    res = run_cli(["fit", "--model.backbone_kwargs", "{width: 8}", "--ckpt_path", ckpt, *FAST], tmp_path)
    assert res.returncode == 2 and "backbone_kwargs is None but this model's is {'width': 8}" in res.stderr
    # Settings a resumed run would silently drop (Lightning reads the model from the checkpoint).
    res = run_cli(["fit", "--model.lr", "0.5", "--ckpt_path", "last", *FAST], tmp_path)
    assert res.returncode == 2 and "--model.lr 0.5 differs from the checkpoint's 0.002" in res.stderr
    res = run_cli(["fit", "--data", "cifar10", "--ckpt_path", ckpt, *FAST], tmp_path)
    assert res.returncode == 2 and "trained on DigitsDataModule but this run's data is CIFAR10DataModule" in res.stderr
    (tmp_path / "bad.ckpt").write_bytes(Path(ckpt).read_bytes()[:500])
    res = run_cli(["fit", "--ckpt_path", "bad.ckpt", *FAST], tmp_path)
    assert res.returncode == 2 and "is not a readable checkpoint" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "config, suggestion",
    [
        ("trainer:\n  max_epoch: 3\n", "Did you mean 'trainer.max_epochs'"),
        ("model:\n  init_args:\n    temprature: 0.3\n", "'model.temperature' (--model.temperature)"),
        ("data:\n  init_args:\n    batch_sise: 32\n", "Did you mean 'data.batch_size'"),
    ],
)
def test_config_typos_get_a_suggestion(tmp_path: Path, config: str, suggestion: str) -> None:
    (tmp_path / "c.yaml").write_text(config)
    res = run_cli(["fit", "--config", "c.yaml"], tmp_path)
    assert res.returncode == 2 and suggestion in res.stderr, res.stderr[-1500:]


def test_seed_and_deterministic_shortcuts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--seed", "5", "--deterministic", "--print_config"])
    printed = capsys.readouterr().out
    assert "seed_everything: 5" in printed and "deterministic: true" in printed


def test_ckpt_path_last_without_a_run(tmp_path: Path) -> None:
    res = run_cli(["fit", "--ckpt_path", "last", *FAST], tmp_path)
    assert res.returncode == 2 and "no last.ckpt under 'runs/sslkit'" in res.stderr


def test_default_config_file_matches_the_built_in_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    def printed(args: list[str]) -> dict:
        with pytest.raises(SystemExit):
            main(["fit", *args, "--print_config"])
        return yaml.safe_load(capsys.readouterr().out)

    default = printed([])
    written = printed(["--config", str(Path(__file__).parents[1] / "configs" / "simclr_digits.yaml")])
    for key in ("model", "data"):
        assert written[key]["init_args"] == default[key]["init_args"], key
        assert written[key]["class_path"].rsplit(".", 1)[1] == default[key]["class_path"].rsplit(".", 1)[1]
    assert written["seed_everything"] == default["seed_everything"]
    assert written["trainer"]["max_epochs"] == default["trainer"]["max_epochs"]
