"""Skip torch's per-step accelerator probe for optimizers that only ever see CPU tensors."""

from __future__ import annotations

import torch


def skip_accelerator_probe(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Turn off ``Optimizer._accelerator_graph_capture_health_check`` for a CPU-only optimizer.

    Adam and AdamW run that check on every ``step()``; on a machine without a GPU it
    re-probes NVML through ``torch.cuda.is_available()`` each time (0.27 ms per step
    measured here, 9 % of the online evaluator's step). The check guards CUDA-graph
    capture, which cannot involve CPU tensors, so it is skipped only when every
    parameter is on the CPU. Optimizers without the check are returned unchanged.

    >>> opt = skip_accelerator_probe(torch.optim.Adam([torch.zeros(2, requires_grad=True)]))
    >>> opt._accelerator_graph_capture_health_check()  # now a no-op
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if hasattr(optimizer, "_accelerator_graph_capture_health_check") and all(p.device.type == "cpu" for p in params):
        optimizer._accelerator_graph_capture_health_check = lambda: None  # type: ignore[method-assign]
    return optimizer
