"""``srlrfr doctor``: what this machine has, and what the current params need from it.

Every check is a small function returning ``Check`` records (status, what was
found, how to fix it), so the same checks serve three callers: the ``srlrfr
doctor`` report, the pipeline's preflight (``preflight``, called by the
Snakefile before the first job) and the tests. What a check asks of the
outside world comes through a provider a caller can replace: ``probe_torch``
(the GPUs torch sees), ``nvidia_driver`` (nvidia-smi), ``probe_url`` (one HTTP
HEAD) and ``shutil.disk_usage``.

  machine.py   python, packages, torch build, GPUs, driver, the device keys
  inputs.py    data sets, weights and landmarks: present, local or to download
  network.py   whether the download hosts answer (short timeouts)
  disk.py      the space the run needs against what is free
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..paths import repo_root
from .base import FAIL, FIX_LOCK, INFO, OK, WARN, Check
from .disk import check_disk, plan_outputs
from .inputs import Plan, check_celeba, check_landmarks, check_lfw, check_weights, check_xqlfw
from .machine import (
    Driver,
    TorchInfo,
    check_devices,
    check_packages,
    check_python,
    check_torch,
    nvidia_driver,
    probe_torch,
)
from .network import Reach, check_network, probe_url

__all__ = ["Check", "OK", "INFO", "WARN", "FAIL", "PreflightError", "Providers", "failures", "preflight", "render",
           "run_checks", "scheduled"]


@dataclass
class Providers:
    """What the checks ask of the outside world, each replaceable by a caller (tests): the GPUs torch
    sees (None: probe them), the NVIDIA driver ("probe": ask nvidia-smi), one HTTP HEAD, the free disk."""
    torch_info: TorchInfo | None = None
    driver: Driver | None | str = "probe"
    probe: Callable[[str, float], Reach] = probe_url
    usage: Callable = shutil.disk_usage


def run_checks(cfg: dict | None, *, root: str | os.PathLike | None = None, network: bool = True,
               timeout: float = 3.0, jobs: Iterable[str] | None = None,
               providers: Providers | None = None) -> list[Check]:
    """Every check for the validated params ``cfg`` (None: the machine only); ``providers`` default to the
    real ones, and ``timeout`` bounds each network probe.

    ``jobs`` (see ``scheduled``) limits the input checks to what those jobs read:
    building only the FNet weights must not need the data sets. None: everything.
    """
    root = Path(root) if root is not None else repo_root()  # where relative params paths point (srlrfr.paths)
    providers = providers or Providers()
    wants = _wanted(jobs)
    checks = [check_python(), *check_packages()]
    try:
        info = providers.torch_info or probe_torch()
    except ImportError as exc:  # nothing below works without torch
        return checks + [Check("environment", "torch", FAIL, f"cannot import torch: {exc}", fix=FIX_LOCK)]
    drv = nvidia_driver() if providers.driver == "probe" else providers.driver
    checks += check_torch(info, drv)
    if cfg is None:
        return checks
    checks += check_devices(cfg, info, drv)
    plan = Plan()
    checks += check_lfw(cfg, root, plan) if wants("ingest:lfw") else []
    checks += check_celeba(cfg, root, plan) if wants("ingest:celeba") else []
    checks += check_xqlfw(cfg, root, plan) if wants("ingest:xqlfw") and "xqlfw" in cfg["evaluate"]["datasets"] else []
    checks += check_weights(cfg, root, plan, fnet=wants("fnet_weights"), authors=wants("import_authors"))
    checks += check_landmarks(cfg, root, [ds for ds in ("lfw", "celeba") if wants(f"landmarks:{ds}")], plan)
    if network:
        checks += check_network(plan.downloads, providers.probe, timeout)
    elif plan.downloads:
        checks.append(Check("network", "network", INFO, f"{len(plan.downloads)} file(s) to download; "
                                                         "network not checked (--quick)"))
    checks += check_disk(plan.disk + plan_outputs(cfg, root, plan), providers.usage)
    return checks


def scheduled(dag_jobs) -> set[str]:
    """Snakemake jobs as the names ``run_checks(jobs=...)`` takes: the rule, and the
    rule with its ``dataset`` wildcard (``ingest:lfw``)."""
    out = set()
    for job in dag_jobs:
        out.add(job.rule.name)
        if "dataset" in job.wildcards.keys():
            out.add(f"{job.rule.name}:{job.wildcards['dataset']}")
    return out


def _wanted(jobs: Iterable[str] | None) -> Callable[[str], bool]:
    if jobs is None:
        return lambda step: True
    jobs = set(jobs)
    return lambda step: step in jobs


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


def render(checks: list[Check], *, problems_only: bool = False) -> str:
    shown = [c for c in checks if not (problems_only and c.status in (OK, INFO))]
    width = max((len(c.name) for c in shown), default=0)
    lines, section = [], None
    for c in shown:
        if c.section != section:
            section = c.section
            lines.append(section)
        lines.append(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (WARN, FAIL):
            lines.append(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
    bad = failures(checks)
    lines.append(f"{len(bad)} problem(s) stop this run: fix them, then rerun `srlrfr doctor`." if bad else
                 "No problems found for these params.")
    return "\n".join(lines)


class PreflightError(RuntimeError):
    """The params need something this machine lacks; the message lists each problem and its fix."""


def preflight(cfg: dict, *, network: bool = True, stream=sys.stderr, jobs: Iterable[str] | None = None,
              **options) -> list[Check]:
    """The doctor's checks before a run (limited to ``jobs`` when given): print problems and
    warnings; raise if the run cannot succeed. ``options``: run_checks' root and providers."""
    checks = run_checks(cfg, network=network, jobs=jobs, **options)
    print(f"srlrfr preflight (python {platform.python_version()}):\n" + render(checks, problems_only=True),
          file=stream)
    bad = failures(checks)
    if bad:
        raise PreflightError(f"{len(bad)} problem(s) found before any job ran (listed above): "
                             + ", ".join(dict.fromkeys(c.name for c in bad)))
    return checks
