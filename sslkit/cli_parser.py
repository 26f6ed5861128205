"""The ``sslkit`` argument parser: LightningCLI's, with "did you mean" for mistyped options and config keys."""

from __future__ import annotations

import difflib
import inspect
import re
from typing import NoReturn, Optional

from lightning.pytorch.cli import LightningArgumentParser

_UNKNOWN = re.compile(r"""(?:option|Option|Key|key) ['"]([\w.\-]+)['"]""")


def _class_parameters() -> list[str]:
    """``model.<arg>`` / ``data.<arg>`` names of sslkit's methods and datamodules (for suggestions)."""
    from sslkit.data import (
        CIFAR10DataModule,
        DigitsDataModule,
        ImageFolderDataModule,
        STL10DataModule,
    )
    from sslkit.methods import BYOL, SimCLR, SSLMethod

    names = []
    for group, classes in (("model", (SSLMethod, SimCLR, BYOL)),
                           ("data", (DigitsDataModule, CIFAR10DataModule, STL10DataModule, ImageFolderDataModule))):
        for cls in classes:
            for klass in cls.__mro__:
                if "__init__" in vars(klass):
                    names += [f"{group}.{p}" for p in inspect.signature(klass.__init__).parameters
                              if p not in ("self", "kwargs")]
    return names


def suggest(unknown: str, known: list[str]) -> list[str]:
    """The known options closest to ``unknown``: by the full dotted name, else all with the closest last part.

    >>> suggest("trainer.max_epoch", ["trainer.max_epochs", "trainer.max_steps"])
    ['trainer.max_epochs']
    >>> suggest("temprature", ["model.temperature", "knn.temperature", "model.lr"])
    ['knn.temperature', 'model.temperature']
    """
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.75) if "." in unknown else []
    if close:
        return close
    last = unknown.rsplit(".", 1)[-1]
    parts = sorted({k.rsplit(".", 1)[-1] for k in known})
    close = difflib.get_close_matches(last, parts, n=1, cutoff=0.75)
    return sorted(k for k in known if close and k.rsplit(".", 1)[-1] == close[0])


class SuggestingArgumentParser(LightningArgumentParser):
    """Adds ``Did you mean --trainer.max_epochs?`` to errors about unknown options or config keys."""

    def _known_options(self) -> list[str]:
        names = []
        parsers = [self]
        sub = getattr(self, "_subcommands_action", None)
        if sub is not None:
            parsers += list(sub._name_parser_map.values())
        for parser in parsers:
            names += [a.dest for a in parser._actions if a.dest and a.dest != "help"]
        return sorted(set(names + _class_parameters()))

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:  # type: ignore[override]
        if self.exit_on_error:  # the outermost parser: the one that prints
            known = self._known_options()
            for name in _UNKNOWN.findall(message):
                guesses = [] if name in known else suggest(name, known)
                if guesses:
                    message += "\nDid you mean " + " or ".join(f"'{g}' (--{g})" for g in guesses) + "?"
                    break
        super().error(message, ex)
