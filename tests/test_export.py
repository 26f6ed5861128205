"""Export and import of encoders: bit-exact features, timm-only import, and clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from sslkit.checkpoints import method_from_checkpoint, resolve_checkpoint
from sslkit.export import METADATA_FILE, WEIGHTS_FILE, encoder_from_checkpoint, export_checkpoint, load_encoder
from sslkit.methods import BYOL, SimCLR
from tests.conftest import TINY_BACKBONE, trainer_kwargs


@pytest.fixture(scope="module")
def simclr_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a 2-step SimCLR fit on digits (16x16, width-8 CNN)."""
    from sslkit.data import DigitsDataModule

    root = tmp_path_factory.mktemp("ckpt")
    trainer = Trainer(**trainer_kwargs(max_steps=2, default_root_dir=root, limit_val_batches=0))
    trainer.fit(SimCLR(**TINY_BACKBONE, warmup_epochs=0), DigitsDataModule(batch_size=32, num_workers=0, image_size=16))
    path = root / "simclr.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_export_then_load_gives_bit_identical_features(simclr_ckpt: Path, tmp_path: Path) -> None:
    out = export_checkpoint(simclr_ckpt, tmp_path / "enc")
    encoder, transform = load_encoder(out)
    module, info = method_from_checkpoint(simclr_ckpt)
    assert not encoder.training and encoder.num_features == module.num_features == 64
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(encoder(x), module.backbone(x))
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["method"] == "SimCLR" and meta["input_size"] == [3, 16, 16]
    assert meta["data"]["class_path"] == "sslkit.data.digits.DigitsDataModule"
    assert meta["data"]["init_args"]["image_size"] == 16 and meta["training_config"]["backbone"] == "small_cnn"
    assert meta["mean"] == pytest.approx([0.3054] * 3) and meta["sslkit_version"]
    # The transform is the clean evaluation transform the encoder was trained with.
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    from sslkit.data import DigitsDataModule, eval_transform

    expected = eval_transform(16, DigitsDataModule.mean, DigitsDataModule.std)(image)
    assert torch.equal(transform(image), expected)
    # Loading from the .ckpt directly gives the same encoder.
    direct, _ = load_encoder(simclr_ckpt)
    with torch.no_grad():
        assert torch.equal(direct(x), encoder(x))


@pytest.mark.parametrize(
    "name, kwargs", [("timm:resnet18", {}), ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2})]
)
def test_timm_only_import_gives_the_same_features(name: str, kwargs: dict, tmp_path: Path) -> None:
    import timm

    from sslkit.backbones import create_backbone
    from sslkit.export import encoder_metadata, export_encoder

    net = create_backbone(name, **kwargs)
    meta = encoder_metadata({"backbone": name, "backbone_kwargs": kwargs}, "SimCLR", net.num_features, 32, [0.5] * 3, [0.2] * 3)
    out = export_encoder(net.state_dict(), meta, tmp_path)
    encoder, _ = load_encoder(out)
    # 1. timm's local-dir source: config.json + model.safetensors, nothing from sslkit.
    via_dir = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    # 2. the pretrained_cfg_overlay route, with the model's own kwargs.
    via_file = timm.create_model(
        name.removeprefix("timm:"), pretrained=True, num_classes=0,
        pretrained_cfg_overlay=dict(file=str(out / WEIGHTS_FILE)), **kwargs,
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = encoder(x)
        assert torch.equal(via_dir(x), reference) and torch.equal(via_file(x), reference)
    cfg = timm.data.resolve_data_config({}, model=via_dir)
    assert tuple(cfg["input_size"]) == (3, 32, 32) and list(cfg["mean"]) == [0.5] * 3


def test_run_folder_resolves_to_the_best_checkpoint(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from sslkit.data import DigitsDataModule

    ckpt_cb = ModelCheckpoint(
        dirpath=tmp_path / "checkpoints", monitor="step_metric", mode="min", save_last=True, every_n_train_steps=1
    )

    class Logged(SimCLR):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            out = super().training_step(batch, batch_idx)
            self.log("step_metric", float(abs(self.global_step - 2)))  # lowest at step 2 of 4
            return out

    trainer = Trainer(**trainer_kwargs(max_steps=4, callbacks=[ckpt_cb], enable_checkpointing=True, limit_val_batches=0))
    trainer.fit(Logged(**TINY_BACKBONE, warmup_epochs=0), DigitsDataModule(batch_size=32, num_workers=0, image_size=16))
    best = resolve_checkpoint(tmp_path)
    assert best == Path(ckpt_cb.best_model_path) and torch.load(best, weights_only=True)["global_step"] == 3  # logged at step 2, saved after it
    _, meta = encoder_from_checkpoint(tmp_path)
    assert meta["monitor"] == "step_metric" and meta["probe_accuracy"] == float(ckpt_cb.best_model_score)


def test_missing_metadata_file(simclr_ckpt: Path, tmp_path: Path) -> None:
    out = export_checkpoint(simclr_ckpt, tmp_path / "enc")
    (out / METADATA_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="sslkit.json' is missing.*sslkit export"):
        load_encoder(out)


def test_corrupted_safetensors(simclr_ckpt: Path, tmp_path: Path) -> None:
    out = export_checkpoint(simclr_ckpt, tmp_path / "enc")
    data = (out / WEIGHTS_FILE).read_bytes()
    (out / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file.*Re-export"):
        load_encoder(out)


def test_metadata_that_does_not_fit_the_weights(simclr_ckpt: Path, tmp_path: Path) -> None:
    out = export_checkpoint(simclr_ckpt, tmp_path / "enc")
    meta = json.loads((out / METADATA_FILE).read_text())
    meta["backbone_kwargs"] = {"width": 16}
    (out / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit backbone 'small_cnn'"):
        load_encoder(out)


def test_bad_checkpoints_leave_no_half_written_export(simclr_ckpt: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(simclr_ckpt.read_bytes()[:1000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "hyper_parameters": {"lr": 0.1}}, foreign)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        export_checkpoint(truncated, out)
    with pytest.raises(ValueError, match="not written by an sslkit method"):
        export_checkpoint(foreign, out)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_checkpoint(tmp_path / "nope.ckpt", out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["foreign.ckpt", "truncated.ckpt"]


def test_a_failed_write_keeps_the_previous_export(simclr_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = export_checkpoint(simclr_ckpt, tmp_path / "enc")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import sslkit.export as export_mod

    monkeypatch.setattr(export_mod.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(simclr_ckpt, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["enc"]  # no staging folder left


def test_resuming_from_another_method_or_backbone_is_refused(simclr_ckpt: Path) -> None:
    ckpt = torch.load(simclr_ckpt, weights_only=True)
    with pytest.raises(ValueError, match="written by sslkit.methods.simclr.SimCLR, not sslkit.methods.byol.BYOL"):
        BYOL(**TINY_BACKBONE).on_load_checkpoint(ckpt)
    with pytest.raises(ValueError, match="backbone_kwargs is \\{'width': 8\\} but this model's is \\{'width': 16\\}"):
        SimCLR(backbone="small_cnn", backbone_kwargs={"width": 16}).on_load_checkpoint(ckpt)
    SimCLR(**TINY_BACKBONE).on_load_checkpoint(ckpt)  # the matching model is accepted
