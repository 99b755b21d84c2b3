"""DVC experiments as a team runs them, on copies of the finished smoke run (conftest's smoke_reference).

A fresh clone: push, `git clone`, `dvc pull`, every output's timestamp shuffled on purpose, then
`dvc exp run -S lambda=0.25` must run the new λ's training, its evaluations, aggregate and report,
and nothing else (counted from Snakemake's job list), and leave `dvc status` clean. The queue: two
λ queued and run with `dvc queue start -j 2` in DVC's temporary copies; both must succeed, each
training its own λ only, show in `srlrfr exps`, and `dvc exp apply` of one must leave `dvc status` clean.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, run_cmd, run_env

pytestmark = pytest.mark.slow

DVC = str(BIN / "dvc")
OUTPUT_ROOTS = ("data", "models", "results", "logs")


def committed_copy(smoke_reference: Path, work: Path) -> Path:
    """The finished smoke run as a git repository whose dvc.lock records its outputs (no stage runs)."""
    shutil.copytree(smoke_reference, work, symlinks=True, ignore=shutil.ignore_patterns("cache"))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke run"],
                [DVC, "commit", "--force"], ["git", "add", "-A"], ["git", "commit", "-qm", "dvc.lock"]):
        run_cmd(cmd, work)
    return work


def run_console(cmd: list[str], cwd: Path, timeout: int) -> str:
    """stdout and stderr as one console: Snakemake reports its jobs on stderr."""
    out = subprocess.run(cmd, cwd=cwd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-8000:]}"
    return out.stdout


def jobs_run(log: str) -> list[tuple[str, str]]:
    """(rule, shell command) of every job Snakemake started, from its console."""
    jobs, rule = [], None
    for line in log.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if head:
            rule = head.group(1)
        elif rule and line.startswith("Shell command: "):
            jobs.append((rule, line))
            rule = None
    return jobs


def new_lambda_jobs_only(jobs: list[tuple[str, str]], tag: str, n_evaluations: int) -> None:
    rules = [r for r, _ in jobs]
    assert sorted(set(rules)) == ["aggregate", "evaluate", "report", "train"], rules
    assert rules.count("train") == 1 and f"--lam {tag} " in next(c for r, c in jobs if r == "train")
    evaluations = [c for r, c in jobs if r == "evaluate"]
    assert len(evaluations) == n_evaluations and all(f"--method edsr_lambda{tag} " in c for c in evaluations)
    assert rules.count("aggregate") == 1 and rules.count("report") == 1


def shuffle_timestamps(root: Path, seed: int = 0) -> int:
    """Every output file and folder dated at random in the last month, as no checkout order would."""
    rng, now, n = random.Random(seed), time.time(), 0
    for top in OUTPUT_ROOTS:
        for path in sorted((root / top).rglob("*")) if (root / top).is_dir() else []:
            stamp = now - rng.uniform(60, 30 * 86400)
            os.utime(path, (stamp, stamp), follow_symlinks=False)
            n += 1
    return n


def test_fresh_clone_runs_only_the_new_lambda(smoke_reference: Path, tmp_path: Path):
    work = committed_copy(smoke_reference, tmp_path / "team")
    origin, clone = tmp_path / "origin.git", tmp_path / "clone"
    run_cmd([DVC, "remote", "add", "--default", "team", str(tmp_path / "dvc-store")], work)
    run_cmd(["git", "commit", "-qam", "team remote"], work)
    run_cmd([DVC, "push"], work)
    run_cmd(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run_cmd(["git", "push", "-q", str(origin), "HEAD:main"], work)

    run_cmd(["git", "clone", "-q", "--branch", "main", str(origin), str(clone)], tmp_path)
    run_cmd([DVC, "pull"], clone)
    for rel in ("logs/benchmarks/train", "logs/benchmarks/report.tsv"):  # Snakemake outputs too
        assert (clone / rel).exists(), rel
    assert shuffle_timestamps(clone) > 100
    assert "up to date" in run_cmd([DVC, "status"], clone)

    started = time.monotonic()
    log = run_console([DVC, "exp", "run", "-n", "lam025", "-S", "lambda=0.25"], clone, timeout=3600)
    print(f"fresh clone: dvc exp run -S lambda=0.25 took {time.monotonic() - started:.0f} s")
    evaluated = sorted(clone.glob("results/eval/*/*/edsr_lambda0.25/*/metrics.json"))
    new_lambda_jobs_only(jobs_run(log), "0.25", len(evaluated))
    assert evaluated and "adopted the outputs DVC restored" in log
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    assert lock["train"]["params"]["params.yaml"]["lambda"] == 0.25
    assert "up to date" in run_cmd([DVC, "status"], clone)
    # Nothing changed since: neither DVC nor Snakemake plans a job.
    assert "Running stage" not in run_cmd([DVC, "repro"], clone)
    assert "Nothing to be done" in run_cmd([str(BIN / "snakemake"), "-n", "all"], clone)


def queue_rows(work: Path, names: list[str]) -> dict[str, list[str]]:
    """`dvc queue status` by experiment name: [task, name, created..., status]."""
    status = run_cmd([DVC, "queue", "status"], work)
    return {n: line.split() for line in status.splitlines() for n in names if n in line.split()[1:2]}


def queue_finished(work: Path, names: list[str], timeout: float) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = queue_rows(work, names)
        status = "\n".join(" ".join(r) for r in rows.values())
        if len(rows) == len(names) and not any(r[-1] in ("Queued", "Running") for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"queue still busy after {timeout:.0f} s:\n{status}")
        time.sleep(10)


def test_two_queued_lambdas_run_in_parallel(smoke_reference: Path, tmp_path: Path):
    work = committed_copy(smoke_reference, tmp_path / "team")
    names = {"q025": "0.25", "q1": "1"}
    for name, lam in names.items():
        run_cmd([DVC, "exp", "run", "--queue", "-n", name, "-S", f"lambda={lam}"], work)
    started = time.monotonic()
    run_cmd([DVC, "queue", "start", "-j", "2"], work)
    rows = queue_finished(work, list(names), timeout=3600)
    print(f"queue: two λ with dvc queue start -j 2 took {time.monotonic() - started:.0f} s")
    for name, lam in names.items():
        assert rows[name][-1] == "Success", rows
        log = run_console([DVC, "queue", "logs", name], work, timeout=120)
        jobs = jobs_run(log)
        evaluations = [c for r, c in jobs if r == "evaluate"]
        new_lambda_jobs_only(jobs, lam, len(evaluations))
        assert evaluations, log

    exps = run_cmd([str(BIN / "srlrfr"), "exps"], work)
    rows = {line.split()[0]: line for line in exps.splitlines() if line.split()[:1] in ([n] for n in names)}
    assert set(rows) == set(names), exps
    assert all(lam in rows[n] for n, lam in names.items()), exps
    shown = json.dumps(json.loads(run_cmd([DVC, "exp", "show", "--json"], work)))
    assert "q025" in shown and "q1" in shown
    run_cmd([DVC, "exp", "apply", "q1"], work)
    assert yaml.safe_load((work / "params.yaml").read_text())["lambda"] == 1
    assert "up to date" in run_cmd([DVC, "status"], work)
