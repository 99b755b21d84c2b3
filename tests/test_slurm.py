"""End to end through a real SLURM: part of the smoke DAG submitted with `sbatch`.

On a copy of the finished smoke run (conftest's smoke_reference), one evaluate
job (the cheapest configuration: a baseline at the smallest resolution) is
forced to rerun through workflow/profiles/slurm, then aggregate (a
`localrule`, so on this host); the accuracy table must equal the local run's.
The cluster is the single-node one of tools/slurm_local.sh (SLURM 22.05 with
accounting, as root); it is brought up if needed and stopped again only if this
test started it. Skipped, saying why, where SLURM, root or the executor plugin
is missing (e.g. CI).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN, run_cmd

from srlrfr import config as params
from srlrfr import resources

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SLURM_LOCAL = REPO / "tools" / "slurm_local.sh"


def _missing() -> str:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        return "SLURM is not installed (no sbatch/sacct): `sudo tools/slurm_local.sh up` installs one"
    if os.geteuid() != 0:
        return "tools/slurm_local.sh needs root to start the single-node cluster"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return ""


@pytest.fixture(scope="module")
def cluster():
    if _missing():
        pytest.skip(_missing())
    status = subprocess.run([str(SLURM_LOCAL), "status"], capture_output=True, text=True)
    was_up = status.returncode == 0 and "not running" not in status.stdout + status.stderr
    up = subprocess.run([str(SLURM_LOCAL), "up"], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, f"tools/slurm_local.sh up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
    yield
    if not was_up:
        subprocess.run([str(SLURM_LOCAL), "down"], capture_output=True, text=True, timeout=120)


def cheapest_evaluation(repo: Path) -> Path:
    """metrics.json of the first baseline at the smallest resolution of the finished run."""
    cfg = params.load(repo / "params.yaml")
    folder = repo / "results" / "eval" / "lfw" / cfg["fnet"] / cfg["evaluate"]["baselines"][0]
    res = sorted(folder.iterdir(), key=lambda p: int(p.name.split("x")[0]))[0]
    return (res / "metrics.json").relative_to(repo)


def test_evaluate_through_sbatch_matches_the_local_run(cluster, smoke_reference: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(smoke_reference, repo, symlinks=True)
    target = cheapest_evaluation(repo)
    before = pd.read_csv(repo / "results" / "accuracy.csv")
    (repo / "results" / "accuracy.csv").unlink()
    out = run_cmd([str(BIN / "snakemake"), "--profile", "workflow/profiles/slurm", "--forcerun", str(target),
                   "--", "results/accuracy.csv"], repo, timeout=600)
    print(out)
    log = "".join(p.read_text() for p in (repo / ".snakemake" / "log").glob("*.snakemake.log"))
    jobids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(jobids) == 1, log[-3000:]  # exactly the one forced job went through sbatch
    assert "rule evaluate:" in log and "localrule aggregate:" in log, log[-3000:]
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-j", jobids[0], "-o", "State,ReqMem,Timelimit"],
                           capture_output=True, text=True)
    state, mem, limit = sacct.stdout.strip().split("|")
    cfg = params.load(repo / "params.yaml")
    assert state == "COMPLETED", sacct.stdout + sacct.stderr
    n_images = resources.count_images(next((repo / "data" / "aligned").glob("lfw_*")))
    assert mem == f"{resources.mem_mb(cfg, 'evaluate', n_images)}M"  # the rule's derived resources reached sbatch
    print(f"SLURM job {jobids[0]}: {state}, --mem {mem}, -t {limit}")
    after = pd.read_csv(repo / "results" / "accuracy.csv")
    pd.testing.assert_frame_equal(after, before, check_exact=False, rtol=1e-9)
