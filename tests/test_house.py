"""The house rules its users check for: snakemake --lint, snakefmt, ruff."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _ok(cmd, cwd):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout + out.stderr


def test_snakemake_lint_is_clean(repo_root: Path):
    out = _ok([BIN / "snakemake", "--lint", "--configfile", "params.yaml", ".test/params.yaml"], repo_root)
    assert "Congratulations" in out


def test_snakefmt_has_nothing_to_change(repo_root: Path):
    _ok([BIN / "snakefmt", "--check", "workflow"], repo_root)


def test_ruff_is_clean(repo_root: Path):
    _ok([BIN / "ruff", "check", "srlrfr", "tests", "benchmarks"], repo_root)
