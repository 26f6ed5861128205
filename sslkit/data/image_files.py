"""Reading image files as 8-bit RGB, whatever their mode, with errors that name the file."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from sslkit.errors import InvalidInputError

#: Modes whose pixel values go up to 65535 (16-bit PNGs): scaled to 0..255, not clipped.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(path: str) -> Image.Image:
    """Open ``path`` as an 8-bit RGB image.

    Grayscale, grayscale + alpha, palette (with or without transparency), RGBA,
    CMYK and 16-bit images are converted; 16-bit values are scaled to 8 bits
    (PIL's own ``convert("RGB")`` would clip them to white).

    Raises:
        ValueError: the file is truncated, corrupt or not an image; the message
            names it and the fix.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _WIDE_MODES:
                wide = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if wide.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
                img = Image.fromarray(np.clip(np.rint(wide * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
            elif img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for unreadable files
        raise InvalidInputError(
            f"Cannot read image '{path}' ({type(err).__name__}: {err}): it is truncated, corrupt or not an "
            "image. Remove or replace it, or pass --data.skip_unreadable true to skip (and count) such files."
        ) from None


def unreadable(paths: Sequence[str]) -> list[str]:
    """The paths among ``paths`` that :func:`load_rgb` cannot read (a full decode of each)."""
    bad = []
    for path in paths:
        try:
            load_rgb(path)
        except InvalidInputError:
            bad.append(path)
    return bad
