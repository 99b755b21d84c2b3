"""Pick the compute device; 'auto' means the GPU when there is one."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.warning("no GPU found: running on the CPU (slow for full-size models)")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but torch sees no CUDA GPU")
    return torch.device(name)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    import platform
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
    import os
    import platform
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
