"""Optimizers and schedules."""

from sslkit.optim.cpu_step import skip_accelerator_probe
from sslkit.optim.lars import LARS
from sslkit.optim.param_groups import decay_param_groups
from sslkit.optim.schedules import cosine_momentum, warmup_cosine

__all__ = ["LARS", "cosine_momentum", "decay_param_groups", "skip_accelerator_probe", "warmup_cosine"]
