"""The machine: Python, the packages the pipeline runs, torch, the GPUs and the driver.

``probe_torch`` and ``nvidia_driver`` are the only parts that ask the real
machine; the checks take their results, so tests can pass a fake device list.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass

from .base import FAIL, FIX_LOCK, INFO, OK, WARN, Check

PYTHONS = ((3, 11), (3, 13))  # the interpreters the lock and CI cover
TORCH_INDEX = "https://download.pytorch.org/whl/"
# Driver generation -> the PyTorch wheel variant it runs, newest first: (lowest CUDA
# version the driver reports, variant). CUDA minor-version compatibility lets a
# cu126 wheel run on any 12.x driver (R525+); cu118 is built up to torch 2.7.1.
TORCH_VARIANTS = (((13, 0), "cu130"), ((12, 8), "cu128"), ((12, 0), "cu126"), ((11, 0), "cu118"))
CU118_TORCH = ("2.7.1", "0.22.1")  # the last torch / torchvision with a CUDA 11.8 build


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory: int                  # bytes
    capability: tuple[int, int]
    bf16: bool                   # native bfloat16 (compute capability 8.0+)


@dataclass(frozen=True)
class TorchInfo:
    version: str
    cuda_build: str | None       # torch.version.cuda; None for a CPU-only build
    cuda_available: bool
    gpus: tuple[Gpu, ...] = ()
    reason: str = ""             # torch's own warning when CUDA is unusable


def probe_torch() -> TorchInfo:
    """What the installed torch reports about CUDA and every visible GPU."""
    # deferred: loads torch
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    reason = " ".join(" ".join(str(w.message).split()) for w in caught)
    gpus = []
    for i in range(torch.cuda.device_count() if available else 0):
        p = torch.cuda.get_device_properties(i)
        gpus.append(Gpu(i, p.name, int(p.total_memory), (p.major, p.minor), bf16=p.major >= 8))
    return TorchInfo(torch.__version__, torch.version.cuda, available, tuple(gpus), reason)


@dataclass(frozen=True)
class Driver:
    version: str                 # e.g. "535.104.05"
    cuda: tuple[int, int]        # the newest CUDA this driver runs, e.g. (12, 2)


def nvidia_driver(timeout: float = 5.0) -> Driver | None:
    """The NVIDIA driver as nvidia-smi reports it; None without nvidia-smi or a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    ver = re.search(r"Driver Version:\s*([\d.]+)", out)
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out)
    return Driver(ver.group(1), (int(cuda.group(1)), int(cuda.group(2)))) if ver and cuda else None


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    text = ".".join(map(str, version))
    lo, hi = PYTHONS
    if lo <= tuple(version[:2]) <= hi:
        return Check("environment", "python", OK, f"{text} ({sys.executable})")
    return Check("environment", "python", WARN, f"{text}: untested (tested: {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]})",
                 fix=f"use Python {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]}")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def check_packages() -> list[Check]:
    out = []
    try:
        # deferred: loads cv2
        import cv2
        out.append(Check("environment", "opencv", OK, cv2.__version__))
    except ImportError as exc:  # e.g. opencv-python (not -headless) without libGL
        out.append(Check("environment", "opencv", FAIL, f"cannot import cv2: {exc}",
                         fix=f"pip uninstall opencv-python; {FIX_LOCK}"))
    for dist in ("snakemake", "dvc"):
        v = _version(dist)
        out.append(Check("environment", dist, OK, v) if v else
                   Check("environment", dist, FAIL, "not installed", fix=FIX_LOCK))
    plugins = sorted(f"{d.metadata['Name']} {d.version}" for d in md.distributions()
                     if (d.metadata["Name"] or "").lower().startswith("snakemake-executor-plugin-"))
    out.append(Check("environment", "executor plugins", INFO, ", ".join(plugins) if plugins else
                     "none (local execution only; a cluster needs e.g. snakemake-executor-plugin-slurm)"))
    return out


def _variant_for(driver: Driver) -> str | None:
    return next((v for cuda, v in TORCH_VARIANTS if driver.cuda >= cuda), None)


def torch_install_command(torch_version: str, driver: Driver | None) -> str:
    """The pip command for the torch build that runs on ``driver`` (the CPU build without one)."""
    variant = _variant_for(driver) if driver else "cpu"
    if variant is None:
        return "no torch build runs on this driver: update the NVIDIA driver, or use the CPU build"
    base, tv = torch_version.split("+")[0], (_version("torchvision") or "").split("+")[0]
    if variant == "cu118":
        base, tv = CU118_TORCH
    pkgs = f"torch=={base}+{variant}" + (f" torchvision=={tv}+{variant}" if tv else "")
    return f"pip install {pkgs} --index-url {TORCH_INDEX}{variant}"


def check_torch(info: TorchInfo, driver: Driver | None) -> list[Check]:
    build = f"built for CUDA {info.cuda_build}" if info.cuda_build else "CPU-only build"
    out = [Check("environment", "torch", OK, f"{info.version}, {build}")]
    drv = f"NVIDIA driver {driver.version} (runs CUDA up to {driver.cuda[0]}.{driver.cuda[1]})" if driver else ""
    if info.gpus:
        for g in info.gpus:
            out.append(Check("gpu", f"cuda:{g.index}", OK,
                             f"{g.name}, {g.memory / 2**30:.1f} GiB, compute capability {g.capability[0]}."
                             f"{g.capability[1]}, bf16 {'yes' if g.bf16 else 'no (amp: fp16 or none)'}"))
        if drv:
            out.append(Check("gpu", "driver", INFO, drv))
        return out
    if driver is None:
        out.append(Check("gpu", "GPU", INFO, "no GPU: no NVIDIA driver found (nvidia-smi); runs use the CPU"))
        return out
    # A driver but no usable GPU: most often a torch built for a newer CUDA than the driver runs.
    why = info.reason or "torch.cuda.is_available() is False"
    if not info.cuda_build:
        why = "this torch is a CPU-only build"
    out.append(Check("gpu", "GPU", WARN, f"{drv}, but torch sees no GPU: {why}",
                     fix=f"{torch_install_command(info.version, driver)} after removing the current build "
                         f"(docs/install.md, 'GPU: the torch build for your driver'); then rerun srlrfr doctor"))
    return out


def _resolve(device: str, info: TorchInfo) -> tuple[str, Gpu | None, str]:
    """(what 'device' becomes, its GPU, a problem or '')."""
    if device == "cpu":
        return "cpu", None, ""
    if device == "auto":
        return ("cuda:0", info.gpus[0], "") if info.gpus else ("cpu", None, "")
    index = int(device.partition(":")[2] or 0)
    if not info.gpus:
        return device, None, f"{device} requested but torch sees no GPU"
    if index >= len(info.gpus):
        n = len(info.gpus)
        return device, None, f"{device} requested but torch sees {n} GPU(s) (cuda:0..cuda:{n - 1})"
    return device, info.gpus[index], ""


def check_devices(cfg: dict, info: TorchInfo, driver: Driver | None = None) -> list[Check]:
    out = []
    for key in ("align.device", "train.device", "evaluate.device"):
        stage, leaf = key.split(".")
        asked = cfg[stage][leaf]
        dev, gpu, problem = _resolve(asked, info)
        if problem:
            fix = (f"set {key}: auto, or one of cuda:0..cuda:{len(info.gpus) - 1}" if info.gpus else
                   f"{torch_install_command(info.version, driver)} (docs/install.md, GPU)"
                   if driver else f"run on a machine with an NVIDIA GPU and driver, or set {key}: cpu")
            out.append(Check("gpu", key, FAIL, problem, fix=fix))
        elif gpu is not None:
            out.append(Check("gpu", key, OK, f"{asked} -> {dev} ({gpu.name})"))
        elif asked == "auto":
            out.append(Check("gpu", key, WARN, "auto -> cpu: no GPU visible (full-size models take days on a CPU)"))
        else:
            out.append(Check("gpu", key, OK, "cpu"))
        if not problem:
            for low in LOW_PRECISION.get(stage, ()):
                value = cfg
                for part in low.split("."):
                    value = value[part]
                out.extend(check_precision(low, value, gpu))
    return out


# The keys that run networks in a low precision, per device key's stage; their full-precision values.
LOW_PRECISION = {"train": ("train.amp",), "evaluate": ("evaluate.precision.fnet", "evaluate.precision.srnet")}
FULL_PRECISION = ("none", "fp32")


def check_precision(key: str, value: str, gpu: Gpu | None, cpu_bf16: bool | None = None) -> list[Check]:
    """bf16 and fp16 where they are native: bf16 on a GPU of compute capability 8.0+ or on a CPU with
    AMX / AVX512-BF16 (``cpu_bf16``; default: this machine's CPU), fp16 on a GPU."""
    if value in FULL_PRECISION:
        return []
    full = "none" if key == "train.amp" else "fp32"
    if gpu is None:
        if cpu_bf16 is None:
            # deferred: loads torch
            from ..device import cpu_bf16 as native
            cpu_bf16 = native()
        if value == "bf16" and cpu_bf16:
            return [Check("gpu", key, OK, "bf16 on a CPU with AMX / AVX512-BF16")]
        if value == "fp16":  # evaluation refuses it on a CPU (srlrfr.device.inference_dtype)
            return [Check("gpu", key, WARN if key == "train.amp" else FAIL, "fp16 on the CPU: slow or unsupported",
                          fix=f"{key}: {full} (or bf16 on a CPU with AMX / AVX512-BF16)")]
        return [Check("gpu", key, WARN, "bf16 on a CPU without AMX or AVX512-BF16: emulated, slower than fp32",
                      fix=f"{key}: {full} on this CPU")]
    if value == "bf16" and not gpu.bf16:
        return [Check("gpu", key, FAIL,
                      f"bf16 needs compute capability 8.0+; {gpu.name} has {gpu.capability[0]}.{gpu.capability[1]}",
                      fix=f"{key}: fp16 (or {full}) in params.yaml")]
    return [Check("gpu", key, OK, f"{value} on {gpu.name}")]
