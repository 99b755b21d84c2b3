"""Outputs DVC restored: let Snakemake judge them by the params they were made with, not by timestamps.

After ``dvc pull`` or ``dvc checkout``, and in every queued experiment's copy
(``.dvc/tmp/exps/<tmp>/``), all outputs are present, but Snakemake has no record of them
(``.snakemake/metadata`` is local and versioned by nobody) and their timestamps follow the
order in which DVC happened to write them. Snakemake then reruns any job with an input
"newer" than its output, and it cannot see a params change at all, having no record to
compare with: a fresh clone replanned every job, or, with lucky timestamps, skipped one.

:func:`adopt` fixes both once: ``snakemake all --touch --forceall`` with the params
``dvc.lock`` says the outputs were made with touches every output in the DAG's order and
records each job's params, inputs and command, so the real run that follows reruns exactly
the jobs whose params or inputs differ, and the jobs of outputs missing, whatever order
the checkout took. A DVC stage does it by itself, where the workspace has outputs but no
record (see :func:`adopt_in_dvc_stage`); ``srlrfr adopt`` does it by hand, for plain
``snakemake`` after a ``dvc pull``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .atomic import write_text
from .yamlio import read_yaml

METADATA = Path(".snakemake") / "metadata"
LOCKED_PARAMS = Path(".snakemake") / "adopted-params.yaml"
# Set in the nested `snakemake --touch`, which must not adopt again.
ADOPTING_ENV = "SRLRFR_ADOPTING"


def has_records(root: Path) -> bool:
    folder = root / METADATA
    return folder.is_dir() and any(folder.iterdir())


def locked_params(root: Path) -> dict:
    """params.yaml with every value dvc.lock recorded for a stage put back: the outputs' own params.

    DVC writes ``-S`` values into params.yaml before the first stage runs; the lock still holds the
    values the present outputs were made with (each stage lists every key its jobs read)."""
    cfg = read_yaml(root / "params.yaml")  # YAML 1.2 numbers (DVC writes -S lambda=0.00001 as 1e-05)
    lock = read_yaml(root / "dvc.lock")
    for stage in (lock.get("stages") or {}).values():
        for key, value in ((stage.get("params") or {}).get("params.yaml") or {}).items():
            *parents, leaf = key.split(".")
            node = cfg
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return cfg


def adopt(root: str | os.PathLike = ".") -> str:
    """Touch every output in DAG order and record its job, as made with dvc.lock's params."""
    root = Path(root)
    if not (root / "dvc.lock").is_file():
        raise FileNotFoundError(f"{root / 'dvc.lock'}: no DVC lock, so nothing says with which params "
                                "the outputs here were made; run `dvc repro` (or plain `snakemake`) instead")
    write_text(root / LOCKED_PARAMS, yaml.safe_dump(locked_params(root), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    env[ADOPTING_ENV] = "1"
    cmd = [sys.executable, "-m", "snakemake", "all", "--touch", "--forceall", "--cores", "1",
           "--configfile", str(LOCKED_PARAMS), "--quiet", "all"]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"srlrfr adopt: `{' '.join(cmd[2:])}` failed in {root}:\n"
                           f"{out.stdout[-2000:]}{out.stderr[-3000:]}")
    return (f"srlrfr: adopted the outputs DVC restored (no Snakemake records here): touched in DAG order "
            f"and recorded with the params of dvc.lock ({LOCKED_PARAMS})")


def adopt_in_dvc_stage(root: str | os.PathLike = ".") -> str | None:
    """In a DVC stage's Snakemake run, before the DAG: adopt when outputs exist but no record does."""
    root = Path(root)
    if not os.environ.get("DVC_STAGE") or os.environ.get(ADOPTING_ENV) or has_records(root):
        return None
    if not (root / "dvc.lock").is_file():  # a first `dvc repro`: nothing was restored
        return None
    return adopt(root)
