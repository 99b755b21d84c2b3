"""What each rule's job asks its scheduler for: GPUs, memory (MB), time (minutes), partition.

Snakemake reads these as rule resources: locally `--resources gpu=4` shares four
GPUs, and the SLURM executor turns them into `sbatch --gpus/--mem/-t/-p`
(workflow/profiles/slurm). Defaults derive from the params and from the number
of images the job reads; ``resources.<rule>`` in params.yaml overrides any of
them. Cluster limits are hard (a job over its memory is killed, over its time
cancelled), so the estimates err high.

A GPU is asked for only by rules that run a network and only when their device
setting can be a GPU: ``gpu=1`` on a CPU partition makes ``sbatch`` fail
("Invalid generic resource specification"). The cheap rules (indexing, downloads,
tables) say ``localrule: True`` and run on the submitting host: a compute node
may have no internet, and a job costs two Snakemake start-ups there.
"""
from __future__ import annotations

import errno
import math
from pathlib import Path

from .damaged import load_npy
from .pipeline import PIPELINE
from .registry import FNETS, GEOMETRIES, SRNETS

# The device key each GPU-capable rule reads, and every rule: from the steps' one list.
GPU_RULES = {s.name: s.device for s in PIPELINE if s.device}
RULES = tuple(s.name for s in PIPELINE)

# A SLURM job runs Snakemake twice on its node (batch script, then its srun step),
# each importing srlrfr and torch: ~650 MB each (docs/slurm.md).
SNAKEMAKE_MB = 1400
# Peak RSS of each step, flat in the data size since storage is read by row
# (benchmarks/bench_memory.py: 0.7-1.2 GB at 200 and 2,000 images, docs/scale.md), with headroom.
STEP_MB = {"landmarks": 2000, "align": 1500, "degrade": 1500, "train": 3000,
           "features": 2000, "evaluate": 2500}
DEFAULT_STEP_MB = 1000
# Where the peak still grew with the images (bench_memory, docs/scale.md): MB per image, the
# largest slope measured (landmarks keeps a row per image; evaluate, the probes' features).
STEP_MB_PER_IMAGE = {"landmarks": 0.16, "evaluate": 0.032}
# Seconds per image on the CPU, with headroom (MTCNN dominates landmarks; evaluate
# restores and embeds every probe); a GPU job is taken as GPU_SPEEDUP times faster.
CPU_S_PER_IMAGE = {"landmarks": 0.5, "align": 0.05, "degrade": 0.02, "features": 0.2, "evaluate": 0.5}
GPU_SPEEDUP = 10
# Training: FLOPs per step / an achieved rate (deliberately low, so the limit errs high).
# Each network's cost is its registry entry's (SRNetSpec.forward_flops_per_pixel on the
# largest low-resolution input, FNetSpec.identity_flops per face); forward + backward =
# 3x forward. Rates: the CPU's is what benchmarks/bench_train.py measured on 2 loaded
# cores (15-24 GFLOP/s); the GPU's is an assumption (no GPU measured yet), far below any
# current GPU's peak.
FLOPS_PER_S = {"cpu": 20e9, "gpu": 10e12}
MIN_RUNTIME = 10  # minutes: start-up, imports, writing outputs


def train_step_flops(cfg: dict) -> float:
    """Approximate FLOPs of one training step of the largest configured SRNet."""
    fnet = FNETS.get(cfg["fnet"])
    geom = GEOMETRIES.get(fnet.geometry)
    pixels = geom.height * geom.width / min(cfg["degrade"]["factors"]) ** 2
    nets = cfg["train"]["srnet"] if isinstance(cfg["train"]["srnet"], list) else [cfg["train"]["srnet"]]
    kwargs = [{k: v for k, v in n.items() if k not in ("type", "name")} for n in nets]
    body = max(SRNETS.get(n["type"]).forward_flops_per_pixel(**kw) for n, kw in zip(nets, kwargs))
    identity = fnet.identity_flops() if cfg["lambda"] or any(float(x) for x in cfg["lambdas"]) else 0
    return cfg["train"]["batch_size"] * (3 * body * pixels + identity)


def get(cfg: dict, dotted: str):
    for key in dotted.split("."):
        cfg = cfg[key]
    return cfg


def gpus(cfg: dict, rule: str) -> int:
    """GPUs the job asks for: 0 unless the rule runs a network on a device that can be a GPU."""
    override = cfg.get("resources", {}).get(rule, {}).get("gpus")
    if override is not None:
        return override
    if rule not in GPU_RULES or get(cfg, GPU_RULES[rule]) == "cpu":
        return 0
    return cfg["train"]["gpus"] if rule == "train" else 1


def count_images(path: str | Path) -> int:
    """Images in an index folder (rows of images.csv) or a storage folder (rows of images.npy).

    A missing input raises FileNotFoundError naming it: Snakemake then defers the
    resource (<TBD> in a dry run) until the job is ready to run.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "input not made yet", str(path))
    if (path / "images.npy").is_file():
        return int(load_npy(path / "images.npy", mmap_mode="r").shape[0])
    if (path / "images.csv").is_file():
        with open(path / "images.csv", "rb") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    return 0


def mem_mb(cfg: dict, rule: str, n_images: int = 0) -> int:
    override = cfg.get("resources", {}).get(rule, {}).get("mem_mb")
    if override is not None:
        return override
    return SNAKEMAKE_MB + STEP_MB.get(rule, DEFAULT_STEP_MB) + math.ceil(n_images * STEP_MB_PER_IMAGE.get(rule, 0))


def runtime(cfg: dict, rule: str, n_images: int = 0) -> int:
    """Minutes: the rule's per-image (or, for train, per-step) cost times the data size, x2 headroom."""
    override = cfg.get("resources", {}).get(rule, {}).get("runtime")
    if override is not None:
        return override
    speed = GPU_SPEEDUP if gpus(cfg, rule) else 1
    if rule == "train":
        rate = FLOPS_PER_S["gpu"] * cfg["train"]["gpus"] if gpus(cfg, rule) else FLOPS_PER_S["cpu"]
        seconds = cfg["train"]["iterations"] * train_step_flops(cfg) / rate
    else:
        seconds = n_images * CPU_S_PER_IMAGE.get(rule, 0.0) / speed
        if rule == "evaluate":  # the probes, restored at each of their mirrors
            seconds *= 2
    return MIN_RUNTIME + math.ceil(2 * seconds / 60)


def job_resources(cfg: dict, rule: str, images_from: str | None = None) -> dict:
    """The rule's resources as Snakemake keyword arguments.

    images_from names the input (key or index) whose image count sizes the runtime and
    memory; they are then functions Snakemake evaluates once that input exists.
    """
    res = {"mem_mb": mem_mb(cfg, rule), "gpu": gpus(cfg, rule)}
    if images_from is None:
        res["runtime"] = runtime(cfg, rule)
    else:
        res["runtime"] = lambda wildcards, input: runtime(cfg, rule, count_images(input[images_from]))
        if rule in STEP_MB_PER_IMAGE:
            res["mem_mb"] = lambda wildcards, input: mem_mb(cfg, rule, count_images(input[images_from]))
    partition = cfg.get("resources", {}).get(rule, {}).get("partition")
    if partition:
        res["slurm_partition"] = partition
    return res
