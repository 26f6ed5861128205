"""Per-step schedules: linear warm-up then cosine decay, and BYOL's EMA momentum."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_ratio: float = 0.0) -> float:
    """LR multiplier at optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps``
    steps (so the first step already moves), then a cosine from 1 down to
    ``final_ratio`` at ``total_steps``.

    >>> warmup_cosine(0, 10, 100), warmup_cosine(9, 10, 100), warmup_cosine(100, 10, 100)
    (0.1, 1.0, 0.0)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's target momentum after ``step`` optimizer steps (Grill et al., 2020, sec. 3.2).

    ``tau = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2``:
    ``base`` at step 0, ``final`` at ``total_steps``.

    >>> cosine_momentum(0, 100), cosine_momentum(100, 100)
    (0.996, 1.0)
    """
    progress = min(1.0, step / max(1, total_steps))
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
