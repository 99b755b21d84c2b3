"""End to end through a real SLURM: part of the smoke DAG submitted with `sbatch`.

On a copy of the finished smoke run (conftest's smoke_reference), one evaluate
job (the cheapest configuration: a baseline at the smallest resolution) is
forced to rerun through workflow/profiles/slurm, then aggregate (a
`localrule`, so on this host); the accuracy table must equal the local run's,
sacct must keep the job's rule and wildcards and its MaxRSS, and `srlrfr
slurm-report` must show them. Then the same job fails for real (its features
file damaged): the step's own error line must reach the console.
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
from conftest import BIN, run_cmd, run_env

from srlrfr import config as params
from srlrfr import resources, slurm_report

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SLURM_LOCAL = REPO / "tools" / "slurm_local.sh"


def _missing() -> str:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        return "SLURM is not installed (no sbatch/sacct): `tools/slurm_local.sh up`, as root, installs one"
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


def slurm_run(repo: Path, target: Path, expect_ok: bool = True) -> tuple[str, str]:
    """Force ``target`` through workflow/profiles/slurm: the console and the SLURM run ID."""
    cmd = [str(BIN / "snakemake"), "--profile", "workflow/profiles/slurm", "--forcerun", str(target), "--",
           "results/accuracy.csv" if expect_ok else str(target)]
    # A shared cluster may queue the job behind others: generous time.
    if expect_ok:
        console = run_cmd(cmd, repo, timeout=1200)
    else:
        out = subprocess.run(cmd, cwd=repo, env=run_env(), capture_output=True, text=True, timeout=1200)
        assert out.returncode != 0, out.stdout[-3000:] + out.stderr[-3000:]
        console = out.stdout + out.stderr
    log = max((repo / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime).read_text()
    return console, re.search(r"SLURM run ID: (\S+)", log)[1]


def test_evaluate_through_sbatch_matches_the_local_run(cluster, smoke_reference: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(smoke_reference, repo, symlinks=True)
    target = cheapest_evaluation(repo)
    before = pd.read_csv(repo / "results" / "accuracy.csv")
    (repo / "results" / "accuracy.csv").unlink()
    out, run_id = slurm_run(repo, target)
    print(out)
    log = "".join(p.read_text() for p in (repo / ".snakemake" / "log").glob("*.snakemake.log"))
    jobids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(jobids) == 1, log[-3000:]  # exactly the one forced job went through sbatch
    assert "rule evaluate:" in log and "localrule aggregate:" in log, log[-3000:]
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-j", jobids[0], "-o", "State,ReqMem,Timelimit,JobName,Comment"],
                           capture_output=True, text=True)
    state, mem, limit, name, comment = sacct.stdout.strip().split("|")
    cfg = params.load(repo / "params.yaml")
    assert state == "COMPLETED", sacct.stdout + sacct.stderr
    n_images = resources.count_images(next((repo / "data" / "aligned").glob("lfw_*")))
    mem_mb = resources.mem_mb(cfg, "evaluate", n_images)
    assert mem == f"{mem_mb}M"  # the rule's derived resources reached sbatch
    # What the job is, kept by accounting: the rule and its wildcards (dataset, fnet, method, resolution).
    assert name == run_id and run_id.startswith("srlrfr_")
    assert comment == "rule_evaluate_wildcards_" + "_".join(target.parent.parts[-4:]), comment
    print(f"SLURM job {jobids[0]}: {state}, --mem {mem}, -t {limit}, comment {comment}")
    after = pd.read_csv(repo / "results" / "accuracy.csv")
    pd.testing.assert_frame_equal(after, before, check_exact=False, rtol=1e-9)

    # srlrfr slurm-report on the real sacct: this directory's latest run, found from its log.
    (job,) = slurm_report.parse(slurm_report.sacct(run_id, "now-1days"))
    assert (job.rule, job.state, job.req_mb) == ("evaluate", "COMPLETED", mem_mb)
    # Sampled (JobAcctGatherType): at least the two Snakemake start-ups on the node, ~650 MB each.
    assert job.max_rss_mb is not None and job.max_rss_mb > 600, job
    report = run_cmd([str(BIN / "srlrfr"), "slurm-report"], repo)
    print(report)
    assert run_id in report
    row = next(line for line in report.splitlines() if line.startswith("evaluate "))
    assert f"{mem_mb:,}M" in row and f"{job.max_rss_mb:,.0f}M" in row and row.endswith("1 COMPLETED"), report


def test_a_failed_job_shows_its_own_error_on_the_console(cluster, smoke_reference: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(smoke_reference, repo, symlinks=True)
    target = cheapest_evaluation(repo)
    cfg = params.load(repo / "params.yaml")
    features = repo / "results" / "features" / "lfw" / cfg["fnet"] / "hr.npz"
    assert not features.is_symlink()
    stat = features.stat()
    features.write_bytes(b"not an npz")  # damaged, its time kept: nothing upstream reruns
    os.utime(features, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    console, run_id = slurm_run(repo, target, expect_ok=False)
    rule_log = f"logs/evaluate_{'_'.join(target.parent.parts[-4:])}.log"
    text = (repo / rule_log).read_text()
    error = next(line for line in text.splitlines() if line.startswith("srlrfr evaluate: error:"))
    assert "hr.npz" in error, text[-2000:]
    # The cause itself, last on the console (the Snakefile's onerror), not only "Reason: Unknown".
    tail = console.rstrip().splitlines()[-12:]
    assert f"  evaluate ({rule_log}): {error}" in tail, console[-5000:]
    print(f"{run_id}: {error}")
    (job,) = slurm_report.parse(slurm_report.sacct(run_id, "now-1days"))
    assert (job.rule, job.state) == ("evaluate", "FAILED")
