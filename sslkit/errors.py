"""Errors about the user's input. Their messages name the problem and the fix.

The ``sslkit`` command prints them as one line instead of a traceback. They
subclass the built-in exception a Python caller would expect
(``ValueError``, ``FileNotFoundError``), so ``except ValueError`` still works.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Base class: something the user passed (a name, a path, a size, a batch) is wrong."""


class InvalidInputError(UserInputError, ValueError):
    """A value, name or batch that sslkit cannot use."""


class DataNotFoundError(UserInputError, FileNotFoundError):
    """A data folder or file that does not exist."""


class NonFiniteLossError(UserInputError, FloatingPointError):
    """The training loss became NaN or Inf; raised before the optimizer step, so no weight is changed by it.

    It counts as a problem of the run's settings (learning rate, temperature,
    precision, input data), so the ``sslkit`` command prints it as one line too.
    """
