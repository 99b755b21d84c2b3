"""Shared storage: a finished run pushed to a DVC remote and pulled into a fresh clone.

On a copy of the finished smoke run (conftest's smoke_reference): `dvc commit`
records Snakemake's outputs in dvc.lock (no stage runs), `dvc push` sends them
to a local-directory remote (docs/running.md's walkthrough default), then a fresh
`git clone` + `dvc pull` must give the same results, `dvc status` must be
clean and `dvc repro` must run nothing. An experiment travels the same way:
`dvc exp push` to the team's git remote (a bare repository here), `dvc exp pull`
in the clone.
"""
from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest
from conftest import BIN, run_cmd

pytestmark = pytest.mark.slow


def test_push_clone_pull_is_complete_and_up_to_date(smoke_reference: Path, tmp_path: Path):
    dvc, work, remote, clone = str(BIN / "dvc"), tmp_path / "team", tmp_path / "dvc-store", tmp_path / "clone"
    origin = tmp_path / "origin.git"
    shutil.copytree(smoke_reference, work, symlinks=True, ignore=shutil.ignore_patterns("cache"))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke run"],
                [dvc, "commit", "--force"],  # hash what Snakemake made; runs no stage
                [dvc, "remote", "add", "--default", "team", str(remote)],
                ["git", "add", "-A"], ["git", "commit", "-qm", "dvc.lock, team remote"]):
        run_cmd(cmd, work)
    pushed = run_cmd([dvc, "push"], work)
    assert "pushed" in pushed, pushed
    assert any(remote.rglob("*")), "nothing in the remote"

    run_cmd(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run_cmd(["git", "remote", "add", "origin", str(origin)], work)
    run_cmd(["git", "push", "-q", "origin", "HEAD:main"], work)
    exp = run_cmd([dvc, "exp", "run", "-n", "shared"], work)  # params unchanged: no stage runs
    assert "Running stage" not in exp, exp
    run_cmd([dvc, "exp", "push", "origin", "shared"], work)

    run_cmd(["git", "clone", "-q", "--branch", "main", str(origin), str(clone)], tmp_path)
    assert not (clone / "results" / "accuracy.csv").exists()
    run_cmd([dvc, "pull"], clone)
    for rel in ("results/accuracy.csv", "results/summary.csv", "results/report.html"):
        assert filecmp.cmp(work / rel, clone / rel, shallow=False), rel
    status = run_cmd([dvc, "status"], clone)
    assert "up to date" in status, status
    repro = run_cmd([dvc, "repro"], clone)
    assert "Running stage" not in repro and "up to date" in repro, repro
    run_cmd([dvc, "exp", "pull", "origin", "shared"], clone)
    assert "shared" in run_cmd([dvc, "exp", "list"], clone)
