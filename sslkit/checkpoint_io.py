"""``AtomicCheckpointIO``: checkpoint files that are either the old one or the complete new one.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose
temporary file lives in the system temp folder; when that is another file system
(common on clusters: ``/tmp`` is local, runs are on shared storage) the final
move is a copy, and a kill during it leaves a truncated ``last.ckpt``. This
plugin writes the temporary file beside the target, flushes it to disk and
renames it over the target in one step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from sslkit.io import atomic_write


def _save_synced(checkpoint: dict[str, Any], tmp: str) -> None:
    with open(tmp, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with a same-folder temp file, ``fsync`` and an atomic rename.

    sslkit's methods install it on local file systems when a fit starts
    (:meth:`sslkit.methods.SSLMethod.setup`); pass it yourself with
    ``Trainer(plugins=[AtomicCheckpointIO()])`` for other modules.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ckpt")
    >>> AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, path)
    >>> sorted(torch.load(path))
    ['state_dict']
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(Path(path), lambda tmp: _save_synced(checkpoint, tmp))
