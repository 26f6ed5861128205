"""The ``sslkit`` command: LightningCLI with sslkit's defaults. The only place that parses configs.

``sslkit fit`` with no arguments pretrains SimCLR with a small CNN on the
bundled digits data, with the online evaluator, and writes a run folder.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from sslkit.backbones import check_backbone_name
from sslkit.callbacks import KNNOnlineEvaluator, RunArtifacts, SSLOnlineEvaluator
from sslkit.checkpoints import (
    CKPT_KEY,
    import_class,
    init_args,
    read_checkpoint,
    resume_mismatch,
)
from sslkit.data import SSLDataModule
from sslkit.errors import DataNotFoundError, InvalidInputError, UserInputError
from sslkit.methods import SSLMethod
from sslkit.methods.base import SYNC_BN_ON_CPU

MONITOR = "online_val_acc"

#: `sslkit fit` with no arguments: sized to finish in a few minutes on 2 CPU cores.
QUICKSTART_MODEL: dict[str, Any] = {
    "class_path": "sslkit.methods.SimCLR",
    "init_args": {
        "backbone": "small_cnn",
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "temperature": 0.2,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 2,
    },
}
QUICKSTART_TRAINER: dict[str, Any] = {
    "max_epochs": 30,
    "log_every_n_steps": 5,
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "sslkit"}},
}


#: Short names accepted by ``--model`` and ``--data`` (case-insensitive), besides class names and paths.
MODEL_ALIASES = {"simclr": "sslkit.methods.SimCLR", "byol": "sslkit.methods.BYOL"}
DATA_ALIASES = {
    "digits": "sslkit.data.DigitsDataModule",
    "cifar10": "sslkit.data.CIFAR10DataModule",
    "cifar100": "sslkit.data.CIFAR100DataModule",
    "stl10": "sslkit.data.STL10DataModule",
    "imagefolder": "sslkit.data.ImageFolderDataModule",
}


def resolve_aliases(argv: list[str]) -> list[str]:
    """Rewrite ``--model byol`` / ``--data CIFAR10`` to class paths; reject unknown names clearly.

    A value with a dot (``my_pkg.MyMethod``) is passed through for LightningCLI to import.

    >>> resolve_aliases(["fit", "--model", "BYOL", "--data=cifar10"])
    ['fit', '--model', 'sslkit.methods.BYOL', '--data=sslkit.data.CIFAR10DataModule']
    """
    out = list(argv)
    for flag, aliases in (("--model", MODEL_ALIASES), ("--data", DATA_ALIASES)):
        known = {**aliases, **{path.rsplit(".", 1)[1].lower(): path for path in aliases.values()}}
        for i, arg in enumerate(out):
            if arg == flag and i + 1 < len(out):
                idx, value, prefix = i + 1, out[i + 1], ""
            elif arg.startswith(flag + "="):
                idx, value, prefix = i, arg[len(flag) + 1 :], flag + "="
            else:
                continue
            if "." in value or value.startswith(("{", "-")) or value.endswith((".yaml", ".yml")):
                continue
            if value.lower() not in known:
                names = sorted(aliases)
                close = difflib.get_close_matches(value.lower(), list(known), n=3, cutoff=0.5)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                what = "method" if flag == "--model" else "dataset"
                raise InvalidInputError(
                    f"Unknown {what} '{value}' for {flag}.{hint} Known: {', '.join(names)} "
                    f"(or a class path such as my_package.MyClass)."
                )
            out[idx] = prefix + known[value.lower()]
    return out


def expand_shortcuts(argv: list[str]) -> list[str]:
    """``--seed N`` -> ``--seed_everything N``; ``--deterministic [true|false]`` -> ``--trainer.deterministic ...``.

    >>> expand_shortcuts(["fit", "--seed", "3", "--deterministic", "--trainer.max_epochs", "2"])
    ['fit', '--seed_everything', '3', '--trainer.deterministic', 'true', '--trainer.max_epochs', '2']
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--seed" or arg.startswith("--seed="):
            out.append(arg.replace("--seed", "--seed_everything", 1))
        elif arg == "--deterministic":
            value = argv[i + 1] if i + 1 < len(argv) and argv[i + 1].lower() in ("true", "false") else None
            out += ["--trainer.deterministic", value or "true"]
            i += value is not None
        else:
            out.append(arg)
        i += 1
    return out


def _gpu_requested(accelerator: Any) -> bool:
    if accelerator in ("gpu", "cuda", "mps"):
        return True
    import torch

    return accelerator in (None, "auto") and torch.cuda.is_available()


def find_last_checkpoint(config: Any) -> Path:
    """The newest ``last.ckpt`` of the runs under the configured logger's ``save_dir/name``.

    Each ``sslkit fit`` writes a new ``version_N`` folder, so Lightning's own
    ``ckpt_path="last"`` would look only in the new, empty one and silently
    start from scratch. Resuming writes to a new version folder too, so the
    metrics of the interrupted run stay where they were.
    """
    logger = config.get("trainer", {}).get("logger")
    init = logger.get("init_args", {}) if hasattr(logger, "get") else {}
    root = Path(init.get("save_dir") or "runs") / (init.get("name") or "")
    found = sorted(root.glob("**/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DataNotFoundError(
            f"--ckpt_path last: no last.ckpt under '{root}'. Start a new run without --ckpt_path, "
            "or pass the checkpoint file: --ckpt_path runs/.../checkpoints/last.ckpt."
        )
    rank_zero_info(f"sslkit: resuming from {found[-1]}")
    return found[-1]


class SSLKitCLI(LightningCLI):
    """LightningCLI with the online evaluator, checkpointing and run artifacts always attached."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = kwargs.get("args")
        self._argv: list[str] = list(given) if isinstance(given, list) else sys.argv[1:]
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(SSLOnlineEvaluator, "evaluator")
        parser.add_lightning_class_args(KNNOnlineEvaluator, "knn")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(RunArtifacts, "artifacts")
        parser.set_defaults(
            {
                "checkpoint.monitor": MONITOR,
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}-{online_val_acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
                "model": QUICKSTART_MODEL,
                "data": {"class_path": "sslkit.data.DigitsDataModule"},
            }
        )
        parser.add_argument(
            "--early_stopping_patience",
            type=Optional[int],
            default=None,
            help=f"Stop when {MONITOR} has not improved for this many validation runs (off when unset).",
        )

    def before_instantiate_classes(self) -> None:
        # jsonargparse would bury an unknown backbone under a usage dump; check it first.
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        backbone = config.get("model", {}).get("init_args", {}).get("backbone")
        if isinstance(backbone, str):
            check_backbone_name(backbone)
        trainer_cfg = config.get("trainer", {})
        if trainer_cfg.get("sync_batchnorm") and not _gpu_requested(trainer_cfg.get("accelerator")):
            raise InvalidInputError(SYNC_BN_ON_CPU)

    def _parse_ckpt_path(self) -> None:
        # Lightning replaces the model's config with the checkpoint's hyperparameters. Resolve
        # `--ckpt_path last` first, read the file with a clear error, and refuse settings given on
        # the command line that the resumed run would silently drop.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        if config.get("ckpt_path") == "last":
            config["ckpt_path"] = str(find_last_checkpoint(config))
        ckpt_path = config.get("ckpt_path")
        if ckpt_path:
            problem = self._resume_problem(config, read_checkpoint(ckpt_path))
            if problem:
                raise InvalidInputError(problem)
        super()._parse_ckpt_path()

    def _resume_problem(self, config: Any, checkpoint: dict[str, Any]) -> Optional[str]:
        """Why the command line's model or data does not fit the checkpoint (None when it does)."""
        from sslkit.data import SSLDataModule as DataBase

        model = config["model"]
        explicit = [a.split("=")[0][2:] for a in self._argv if a.startswith("--model")]
        if explicit:
            cls = import_class(model["class_path"], SSLMethod)
            init = dict(model.get("init_args") or {})
            problem = resume_mismatch(checkpoint, cls, init)
            if problem:
                return problem
            saved = init_args(checkpoint.get("hyper_parameters") or {})
            for flag in explicit:
                key = flag.split(".")[-1]
                if key in saved and key in init and saved[key] != init[key]:
                    return (
                        f"--{flag} {init[key]!r} differs from the checkpoint's {saved[key]!r}: a resumed run "
                        "continues the checkpoint's model, optimizer and schedule. Drop the option to resume, "
                        "or start a new run (without --ckpt_path) to change it."
                    )
        recorded = (checkpoint.get(CKPT_KEY) or {}).get("data")
        data = config.get("data")
        if recorded and hasattr(data, "get") and data.get("class_path"):
            saved_cls = import_class(recorded["class_path"], DataBase)
            if import_class(data["class_path"], DataBase) is not saved_cls:
                return (
                    f"The checkpoint was trained on {saved_cls.__name__} but this run's data is "
                    f"{data['class_path'].rsplit('.', 1)[-1]}. Resume with --data {saved_cls.__name__} "
                    "(and its options), or start a new run without --ckpt_path."
                )
        return None

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        patience = self._get(self.config, "early_stopping_patience")
        if patience is not None:
            # Before the checkpoint callbacks, as Lightning orders them itself.
            trainer.callbacks.insert(0, EarlyStopping(monitor=MONITOR, mode="max", patience=patience))
        return trainer

    def before_fit(self) -> None:
        trainer, dm = self.trainer, self.datamodule
        world = trainer.world_size
        batch = getattr(dm, "batch_size", None)
        if batch is not None:
            rank_zero_info(
                f"sslkit: {type(self.model).__name__} on {type(dm).__name__}, world size {world}, "
                f"per-device batch {batch}, global batch {batch * world * trainer.accumulate_grad_batches}."
            )

    def after_fit(self) -> None:
        trainer = self.trainer
        ckpt = trainer.checkpoint_callback
        lines = []
        if ckpt is not None and ckpt.best_model_score is not None:
            lines.append(f"best {ckpt.monitor}: {float(ckpt.best_model_score):.4f}")
        if trainer.log_dir is not None:
            lines.append(f"Run folder: {trainer.log_dir}")
        for line in lines:
            rank_zero_info(line)


OVERVIEW = """usage: sslkit COMMAND [options]   (sslkit COMMAND --help for the options of one)

Pretraining (LightningCLI; --config FILE.yaml, --model, --data, --trainer.*):
  fit           pretrain; no options: SimCLR on the bundled digits, with the online evaluator
  validate      probe accuracy of a checkpoint (--ckpt_path)
  test          the same on the test split

Downstream (SOURCE: a run folder runs/sslkit/version_N, a .ckpt, or an export folder):
  export        SOURCE --out DIR: the encoder as model.safetensors + sslkit.json
  linear-eval   SOURCE: offline linear evaluation (--finetune true: fine-tune encoder + head)
  predict       SOURCE --out FILE.npy|.npz|.pt: embeddings and labels via predict_step
  plot          SOURCE: probe_accuracy.png and embeddings.png (UMAP or t-SNE)"""


def main(args: Optional[list[str]] = None) -> None:
    """Entry point of the ``sslkit`` console script.

    Errors in the user's input (:class:`~sslkit.errors.UserInputError`) are
    printed as one line, exit status 2.
    """
    from sslkit.commands import COMMANDS

    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv[:1] in ([], ["-h"], ["--help"]):
            print(OVERVIEW)
        elif argv[0] in COMMANDS:
            COMMANDS[argv[0]](resolve_aliases(argv[1:]))
        elif args is None:  # LightningCLI warns when both argv and args are given
            sys.argv[1:] = expand_shortcuts(resolve_aliases(argv))
            _run_cli(None)
        else:
            _run_cli(expand_shortcuts(resolve_aliases(argv)))
    except UserInputError as err:  # NonFiniteLossError included
        print(f"sslkit: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _run_cli(args: Optional[list[str]]) -> None:
    from sslkit.cli_parser import SuggestingArgumentParser

    SSLKitCLI(
        parser_class=SuggestingArgumentParser,
        model_class=SSLMethod,
        datamodule_class=SSLDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults=QUICKSTART_TRAINER,
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
