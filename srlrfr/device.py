"""Pick the compute device; 'auto' means a GPU when there is one, and a GPU no other job holds.

Several jobs on one machine (``snakemake --resources gpu=4``) must not all land
on ``cuda:0``. A process that resolves a CUDA device therefore *leases* it: an
exclusive ``flock`` on a per-GPU lock file, held until the process exits. The
kernel drops the lock of a process however it ends (``kill -9`` included), so a
dead job never keeps a GPU. Lock files are named by the GPU's UUID, not its
index, so jobs that see different ``CUDA_VISIBLE_DEVICES`` (SLURM sets it per
job) agree on which physical GPU is which; a job only ever considers the GPUs
visible to it (srlrfr.leases).
"""
from __future__ import annotations

import logging
import os
import platform

import torch

from .leases import holder, lease, try_lease

log = logging.getLogger(__name__)

WAIT_ENV = "SRLRFR_GPU_WAIT"  # seconds to wait for a free GPU (default: as long as it takes)
# evaluate.precision.fnet / .srnet: the dtype each network runs in for features and evaluation
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_keys() -> list[str]:
    """A stable name per GPU torch sees (its UUID), in torch's index order."""
    keys = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        if uuid is None:  # older torch: the physical index behind CUDA_VISIBLE_DEVICES
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
            uuid = visible[i].strip() if i < len(visible) and visible[i].strip() else str(i)
        keys.append(f"gpu-{uuid}")
    return keys


def _wait_limit() -> float | None:
    value = os.environ.get(WAIT_ENV)
    return float(value) if value else None


def resolve_device(name: str = "auto") -> torch.device:
    """'cpu', 'cuda:N' (that GPU), 'cuda' (a free GPU, error without one) or 'auto' (a free GPU, else the CPU).

    A CUDA device is leased for the life of the process (module doc) and made current.
    """
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        if name == "auto":
            log.warning("no GPU found: running on the CPU (slow for full-size models)")
            return torch.device("cpu")
        raise RuntimeError(f"device {name!r} requested but torch sees no CUDA GPU")
    keys = gpu_keys()
    if name.startswith("cuda:"):
        index = int(name.partition(":")[2])
        if index >= len(keys):
            raise RuntimeError(f"device {name!r} requested but torch sees {len(keys)} GPU(s)")
        if not try_lease(keys[index]):
            log.warning("%s is leased by another srlrfr job (%s); sharing it as asked", name, holder(keys[index]))
    else:
        index = lease(keys, wait=_wait_limit())
        if index is None:
            raise RuntimeError(f"no free GPU after {_wait_limit():g} s ({WAIT_ENV}): all {len(keys)} are leased "
                               f"by other srlrfr jobs ({'; '.join(holder(k) for k in keys)})")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device: torch.device | str = "cpu") -> str:
    """The machine a benchmark figure comes from, in one line (with the load average:
    other processes on the cores make every time longer)."""
    device = torch.device(device)
    parts = [cpu_model(), f"{os.cpu_count()} CPUs", f"{platform.system()} {platform.machine()}",
             f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"torch threads {torch.get_num_threads()}",
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"]
    if device.type == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(device)}")
    if hasattr(os, "getloadavg"):
        parts.append("load average %.1f %.1f %.1f" % os.getloadavg())
    return ", ".join(parts)


def cpu_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX512-BF16). oneDNN then runs bf16
    convolutions several times faster than fp32 (benchmarks/bench_forward.py); without it,
    bf16 is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def inference_dtype(device: torch.device | str, precision: str) -> torch.dtype:
    """The dtype networks run in for ``precision`` on ``device``; fp16 only on a GPU (CPU fp16
    convolutions are slow), bf16 on a CPU without native support only with a warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"evaluate.precision values must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("evaluate.precision: fp16 runs only on a GPU; on a CPU use bf16 (with AMX or "
                         "AVX512-BF16) or fp32")
    if device.type == "cpu" and precision == "bf16" and not cpu_bf16():
        log.warning("evaluate.precision bf16 on a CPU without AMX or AVX512-BF16: emulated, slower than fp32")
    return PRECISIONS[precision]
