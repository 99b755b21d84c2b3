"""End-to-end: the real DAG on the sample data with the tiny preset.

Runs in a temporary git repository made from this checkout: `snakemake all`,
then `dvc repro` (which must find Snakemake's work up to date) and two
`dvc exp run -S lambda=...` experiments compared with `dvc exp show` and
`dvc metrics diff`. Nothing is written outside the temporary directory.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN
from conftest import run_cmd as run

from srlrfr import config as params
from srlrfr.registry import FNETS, GEOMETRIES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(smoke_repo: Path) -> Path:
    """A git repository holding this checkout's files and the smoke params (tests/conftest.py)."""
    return smoke_repo


@pytest.fixture(scope="module")
def snakemake_run(smoke_run: Path) -> Path:
    """``snakemake --cores 2 all`` in that repository, run once per session (tests/conftest.py)."""
    return smoke_run


def test_dry_run_lists_every_rule_kind(workdir: Path):
    out = (workdir.parent / "dry_run.txt").read_text()  # `snakemake -n all` before anything ran
    for rule in ("ingest", "landmarks", "align", "degrade", "fnet_weights", "train",
                 "features", "evaluate", "aggregate", "report"):
        assert rule in out, rule


def test_table_filled_from_real_runs(snakemake_run: Path):
    cfg = params.load(snakemake_run / "params.yaml")
    geom = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    table = pd.read_csv(snakemake_run / "results" / "accuracy.csv")
    lowres = [geom.resolution_name(f) for f in cfg["degrade"]["factors"]]
    methods = set(table["method"])
    assert {"bicubic", "bilinear_authors", "edsr_lambda0", "edsr_lambda0.5"} <= methods
    for r in lowres:
        assert table[r].notna().all() and table[r].between(40, 100).all(), r
    full = f"{geom.height}x{geom.width}"
    baseline = table[table["method"] == "bicubic"].iloc[0]
    # dlib's recogniser on aligned full-resolution LFW faces.
    assert baseline[full] >= 97.0
    # Degradation costs accuracy: the smallest probes are the hardest.
    assert baseline[lowres[0]] < baseline[full]
    provenance = json.loads((snakemake_run / "models" / "fnets" / f"{cfg['fnet']}.source.json").read_text())
    assert len(provenance["sha256"]) == 64  # the converted weights name their source file's hash
    assert len(pd.read_csv(snakemake_run / "results" / "folds.csv")) == 10 * (len(table) * len(lowres) + 1)
    metrics = json.loads((snakemake_run / "results" / "metrics.json").read_text())
    assert set(metrics["acc"][lowres[0]]) >= {"bicubic", "edsr"}


def test_landmarks_found_for_lfw(snakemake_run: Path):
    lm = pd.read_csv(snakemake_run / "data" / "landmarks" / "lfw.csv")
    assert (lm["status"] == "ok").mean() >= 0.99
    missing = pd.read_csv(snakemake_run / "data" / "landmarks" / "lfw_no_face.csv")
    assert len(missing) == (lm["status"] != "ok").sum()


def test_report_and_figures(snakemake_run: Path):
    html = (snakemake_run / "results" / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    figures = list((snakemake_run / "results" / "figures").glob("*.png"))
    assert len(figures) >= 4


def test_dvc_yaml_agrees_in_smoke_config(snakemake_run: Path):
    run([str(BIN / "srlrfr"), "dvc-yaml", "--check"], snakemake_run)


def test_dvc_repro_and_experiments(snakemake_run: Path):
    work = snakemake_run
    dvc = str(BIN / "dvc")
    run([dvc, "repro"], work, timeout=1800)
    assert (work / "dvc.lock").is_file()
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "repro"], work)
    run([dvc, "exp", "run", "-n", "lam025", "-S", "lambda=0.25"], work, timeout=1800)
    run([dvc, "exp", "run", "-n", "lam0", "-S", "lambda=0"], work, timeout=1800)
    shown = json.loads(run([dvc, "exp", "show", "--json"], work))
    text = json.dumps(shown)
    assert "lam025" in text and "lam0" in text
    diff = run([dvc, "metrics", "diff", "HEAD", "--all"], work)
    assert "acc." in diff or "acc/" in diff
