"""Start tests/ddp/run.py in a subprocess with a free port and a timeout, and read what each rank wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

SCRIPT = Path(__file__).with_name("run.py")
ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_script(args: list[str], out: Path, timeout: float = 240) -> None:
    """Run ``python args...`` in ``out`` with a free MASTER_PORT; fail with its log on error or timeout.

    A crashed or hung rank fails the test after ``timeout`` seconds; the whole
    process group is killed, so no rank is left behind.
    """
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, *[a.replace("{port}", str(port)) for a in args]],
        cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        log, _ = proc.communicate()
        raise AssertionError(f"DDP run timed out after {timeout}s:\n{log[-4000:]}") from None
    assert proc.returncode == 0, log[-4000:]


def launch(cfg: dict[str, Any], out: Path, timeout: float = 240) -> list[dict[str, Any]]:
    """Run tests/ddp/run.py with ``cfg`` and return each rank's results (rank 0 first)."""
    run_script([str(SCRIPT), json.dumps({**cfg, "out": str(out)})], out, timeout)
    n = cfg.get("devices", 1)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(n)]
