"""Fault injection: kill -9 inside each rule kind, rerun, and compare bytes with an uninterrupted run.

The uninterrupted run is the session's smoke run (tests/conftest.py). Each
fault reruns one job exactly as Snakemake ran it (its shell command from
Snakemake's metadata) on copies of its inputs: the step is stopped at a named
pause point (srlrfr.faults) and killed with SIGKILL there, then run again.
After the kill, every declared output is either absent or already complete;
after the rerun, every output equals the uninterrupted run's byte for byte,
and no temporary file is left anywhere. A last case kills Snakemake itself:
its orphaned job stops, and the next run needs no --unlock.
"""
from __future__ import annotations

import base64
import filecmp
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, COUNTS, run_env, silent

pytestmark = pytest.mark.slow
SNAKEMAKE_MARKER = ".snakemake_timestamp"  # Snakemake's, in every folder output (.dvcignore leaves it out)
WAIT_S = 900  # the longest a step may take to reach its pause point on a loaded 2-core machine


@dataclass(frozen=True)
class Job:
    rule: str
    shellcmd: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def recorded_jobs(repo: Path) -> list[Job]:
    """Every job of a finished run, from Snakemake's own metadata (one record per output)."""
    by_cmd: dict[str, tuple[dict, list[str]]] = {}
    for f in (repo / ".snakemake" / "metadata").iterdir():
        out = base64.urlsafe_b64decode(f.name + "=" * (-len(f.name) % 4)).decode()
        meta = json.loads(f.read_text())
        by_cmd.setdefault(meta["shellcmd"], (meta, []))[1].append(out)
    return [Job(m["rule"], cmd, tuple(m["input"]), tuple(sorted(outs))) for cmd, (m, outs) in by_cmd.items()]


def pick(repo: Path, rule: str, contains: str) -> Job:
    found = [j for j in recorded_jobs(repo) if j.rule == rule and any(contains in o for o in j.outputs)]
    assert len(found) == 1, f"expected one {rule} job writing *{contains}*, got {found}"
    return found[0]


def same(a: Path, b: Path) -> bool:
    """Byte equality of two files or two folder trees (less Snakemake's own marker in folder outputs)."""
    if a.is_file() and b.is_file():
        return filecmp.cmp(a, b, shallow=False)
    if a.is_dir() and b.is_dir():
        def files(root: Path) -> list[Path]:
            return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != SNAKEMAKE_MARKER)
        files_a, files_b = files(a), files(b)
        return files_a == files_b and all(filecmp.cmp(a / p, b / p, shallow=False) for p in files_a)
    return False


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def stage_inputs(job: Job, reference: Path, work: Path) -> None:
    for rel in job.inputs:
        src, dst = reference / rel, work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    (work / "logs").mkdir(parents=True, exist_ok=True)


def start_paused(cmd: list[str] | str, cwd: Path, point: str, marker: Path) -> subprocess.Popen:
    env = run_env(SRLRFR_PAUSE_AT=point, SRLRFR_PAUSE_FILE=str(marker))
    return subprocess.Popen(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), executable="/bin/bash"
                            if isinstance(cmd, str) else None, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(marker: Path, proc: subprocess.Popen, what: str) -> int:
    deadline = time.monotonic() + WAIT_S
    while not marker.is_file() or not marker.read_text().strip():
        if proc.poll() is not None:
            raise AssertionError(f"{what} ended ({proc.returncode}) before its pause point:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{what} did not reach its pause point in {WAIT_S} s")
        time.sleep(0.2)
    return int(marker.read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").is_dir() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


# (rule, a path its job writes, where it is killed). Cheap jobs of every rule kind:
# CelebA's 64 images for the image steps, lambda = 0 for training, the undegraded
# configuration for evaluation (killed between two of its outputs).
FAULTS = [
    ("landmarks", "landmarks/celeba.csv", "landmarks:batch#2"),
    ("align", "aligned/celeba_", "align:image#20"),
    ("degrade", "degraded/celeba_", "degrade:level#3"),
    ("train", "edsr_lambda0/model.pt", "train:checkpoint#1"),
    ("features", "/hr.npz", "features:chunk#1"),
    ("evaluate", "/hr/", "replace:metrics.json"),
    ("aggregate", "results/metrics.json", "replace:folds.csv"),
    ("report", "results/report.html", "replace:accuracy_vs_resolution.png"),
]


@pytest.mark.parametrize("rule, writes, point", FAULTS, ids=[f[0] for f in FAULTS])
def test_kill_inside_rule_then_rerun(rule, writes, point, smoke_reference: Path, tmp_path: Path):
    job = pick(smoke_reference, rule, writes)
    work = tmp_path / "work"
    stage_inputs(job, smoke_reference, work)
    marker = tmp_path / "paused"
    COUNTS["faults injected"] += 1
    proc = start_paused(job.shellcmd, work, point, marker)
    wait_for(marker, proc, f"{rule} ({point})")
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the step (and its shell)
    proc.wait()
    half = [o for o in job.outputs if (work / o).exists() and not same(work / o, smoke_reference / o)]
    assert not silent(half), f"kill -9 at {point} left outputs that differ from a complete run: {half}"

    rerun = subprocess.run(job.shellcmd, shell=True, executable="/bin/bash", cwd=work, env=run_env(),
                           capture_output=True, text=True, timeout=3600)
    assert rerun.returncode == 0, f"{rule} rerun failed:\n{rerun.stdout}{rerun.stderr}"
    differ = [o for o in job.outputs if not same(work / o, smoke_reference / o)]
    assert not silent(differ), f"{rule} after kill -9 and rerun: outputs differ from the uninterrupted run: {differ}"
    assert not temp_files(work), f"temporary files left behind: {temp_files(work)}"
    COUNTS["faults survived"] += 1


@pytest.mark.parametrize("rule, writes", [("fnet_weights", ".pt"), ("ingest", "index/lfw"), ("ingest", "index/celeba")])
def test_rerun_gives_the_same_bytes(rule, writes, smoke_reference: Path, tmp_path: Path):
    """Byte-reproducible outputs (so DVC's hashes match a reproduction) for the rules the kill tests do not
    rerun: model weights regenerated twice equal the smoke run's, sha256 for sha256."""
    job = pick(smoke_reference, rule, writes)
    work = tmp_path / "work"
    stage_inputs(job, smoke_reference, work)
    for _ in range(2):  # twice: the second overwrites the first
        subprocess.run(job.shellcmd, shell=True, executable="/bin/bash", cwd=work, env=run_env(), check=True,
                       timeout=600)
        assert all(same(work / o, smoke_reference / o) for o in job.outputs), job.outputs


def test_kill_snakemake_itself(smoke_reference: Path, tmp_path: Path):
    """kill -9 of Snakemake: its job stops by itself, and the next run starts without --unlock."""
    repo = tmp_path / "repo"
    shutil.copytree(smoke_reference, repo, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    job = pick(repo, "landmarks", "landmarks/celeba.csv")
    for out in job.outputs:
        (repo / out).unlink()
    target = [str(BIN / "snakemake"), "--cores", "2", *job.outputs]  # the threads of the smoke run: same bytes
    marker = tmp_path / "paused"
    COUNTS["faults injected"] += 1
    proc = start_paused(target, repo, "landmarks:batch#1", marker)
    step_pid = wait_for(marker, proc, "snakemake landmarks")
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: its job is left running as an orphan
    proc.wait()
    deadline = time.monotonic() + 20  # it polls every second; 20 s is far below its 30 s hard stop
    while pid_alive(step_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(step_pid), "the orphaned job kept running after Snakemake was killed"
    assert list((repo / ".snakemake" / "locks").glob("*.lock")), "expected the killed run's lock to remain"

    out = subprocess.run(target, cwd=repo, env=run_env(), capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, f"rerun after kill -9 of snakemake failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    assert "cleared the lock left by a killed Snakemake run" in out.stderr
    assert not silent([o for o in job.outputs if not same(repo / o, smoke_reference / o)])
    assert not temp_files(repo / "data")
    COUNTS["faults survived"] += 1
