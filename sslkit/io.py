"""Crash-safe writes: a temporary file (or folder) beside the target, then a rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` to ``path`` in one step.

    A crash or an exception inside ``write`` leaves any previous ``path``
    untouched and no temporary file behind.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = atomic_write(os.path.join(d, "a.txt"), lambda tmp: open(tmp, "w").write("hi"))
    >>> p.read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


@contextlib.contextmanager
def staged_folder(out_dir: PathLike, owned: Sequence[str] = ()) -> Iterator[Path]:
    """Write several files into a hidden staging folder; move them into ``out_dir`` only on success.

    An exception inside the ``with`` block removes the staging folder and leaves
    ``out_dir`` exactly as it was, so a failed export never leaves half its files.
    Each file is then moved with ``os.replace`` (atomic per file), in name order; files
    named in ``owned`` that this write does not produce are removed from ``out_dir`` (stale
    parts of an earlier write).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()) / "export"
    >>> with staged_folder(d) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        written = {f.name for f in stage.iterdir()}
        for name in owned:
            if name not in written and (out / name).is_file():
                (out / name).unlink()
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
