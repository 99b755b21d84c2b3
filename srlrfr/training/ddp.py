"""Data-parallel training: ``srlrfr train`` with ``train.gpus > 1`` re-runs itself under torchrun.

One process per GPU (each leases its own, srlrfr.device), NCCL between GPUs,
gloo between CPU processes (tests; no speed-up). The global batch stays
``train.batch_size`` (split evenly), so the loss curve is the single-process
one within floating-point rounding (srlrfr.training.loop).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def under_launcher() -> bool:
    """Whether this process is one of torchrun's workers."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run ... -m srlrfr <argv>``, each worker with its share of ``--threads``."""
    argv = list(argv)
    if "--threads" in argv:
        i = argv.index("--threads") + 1
        argv[i] = str(max(1, int(argv[i]) // nproc))
    # --standalone: a private rendezvous on a free localhost port, so jobs on one machine never meet
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "srlrfr", *argv]


def relaunch(nproc: int, argv: list[str] | None = None) -> None:
    """Replace this process by torchrun running ``nproc`` copies of this command (never returns)."""
    cmd = torchrun_command(nproc, sys.argv[1:] if argv is None else argv)
    log.info("data-parallel training on %d processes: %s", nproc, " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join torchrun's process group for the block (NCCL when ``device`` means a GPU, else gloo).

    Does nothing outside torchrun.
    """
    if not under_launcher() or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        yield
        return
    gpu = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if gpu else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()
