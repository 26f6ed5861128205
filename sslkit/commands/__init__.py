"""``sslkit`` commands besides LightningCLI's ``fit`` / ``validate`` / ``test``: one module per command."""

from __future__ import annotations

from typing import Callable

from sslkit.commands import export, linear_eval, plot, predict

#: name -> ``main(argv)`` of each command.
COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "export": export.main,
    "linear-eval": linear_eval.main,
    "predict": predict.main,
    "plot": plot.main,
}

__all__ = ["COMMANDS"]
