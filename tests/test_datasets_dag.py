"""XQLFW through the real rules: a tiny synthetic release (xqlfw.zip + pairs + scores, made from
the sample faces) in a copy of this checkout with the smoke params and evaluate.datasets
[lfw, xqlfw]; two targets (the published images with the FNet alone, and the
lower-quality image at 40x40 restored by bicubic), not the whole DAG."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BIN, make_smoke_repo
from conftest import run_cmd as run
from xqlfw_fixture import DEGRADED, make_xqlfw, zip_folder

from srlrfr.report.tables import accuracy_table, collect, dvc_metrics

pytestmark = pytest.mark.slow
N = 10  # pairs per class: one set of 10 + 10 makes the default 10 folds
TARGETS = ("results/eval/xqlfw/dlib_resnet34/hr/160x160/metrics.json",
           "results/eval/xqlfw/dlib_resnet34/bicubic/40x40/metrics.json")


@pytest.fixture(scope="module")
def xqlfw_run(tmp_path_factory, repo_root: Path, shared_data: Path) -> Path:
    base = tmp_path_factory.mktemp("xqlfw_dag")
    xq = make_xqlfw(base / "release", shared_data, n=N)
    work = make_smoke_repo(base / "repo", repo_root, shared_data)
    cfg = yaml.safe_load((work / "params.yaml").read_text())
    cfg["evaluate"]["datasets"] = ["lfw", "xqlfw"]
    cfg["data"]["xqlfw"] = {"images": str(zip_folder(xq["images"], base / "xqlfw.zip")), "pairs": str(xq["pairs"]),
                            "scores": str(xq["scores"]), "variant": "original"}
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (base / "dry_run.txt").write_text(run([str(BIN / "snakemake"), "-n", "all"], work))
    run([str(BIN / "snakemake"), "--cores", "2", *TARGETS], work, timeout=900)
    return work


def test_xqlfw_rows_in_the_plan(xqlfw_run: Path):
    plan = (xqlfw_run.parent / "dry_run.txt").read_text()
    for name in ("data/index/xqlfw", "data/aligned/xqlfw_dlib_160x160", "results/features/xqlfw/dlib_resnet34/hr.npz",
                 "results/eval/xqlfw/dlib_resnet34/edsr_lambda0.5/10x10/metrics.json",
                 "results/eval/lfw/dlib_resnet34/edsr_lambda0.5/10x10/metrics.json"):
        assert name in plan, name


def test_ingest_and_alignment(xqlfw_run: Path):
    pairs = pd.read_csv(xqlfw_run / "data/index/xqlfw/pairs.csv")
    assert len(pairs) == 2 * N and pairs["fold"].nunique() == 10
    assert (pairs["quality_right"] == DEGRADED).all()  # the probe is the lower-quality image
    summary = json.loads((xqlfw_run / "data/index/xqlfw/summary.json").read_text())
    assert summary["swapped"] == N and summary["variant"] == "original"
    faces = pd.read_csv(xqlfw_run / "data/aligned/xqlfw_dlib_160x160/faces.csv")
    assert len(faces) == summary["n_images"] and faces["landmark_ok"].mean() > 0.8


def test_metrics_and_table_rows(xqlfw_run: Path):
    files = [xqlfw_run / t for t in TARGETS]
    hr, low = (json.loads(f.read_text()) for f in files)
    assert hr["dataset"] == low["dataset"] == "xqlfw" and hr["n_pairs"] == low["n_pairs"] == 2 * N
    assert "restoration" in low and "restoration" not in hr
    print(f"xqlfw synthetic: hr {hr['acc_mean']:.1f}%, bicubic 40x40 {low['acc_mean']:.1f}%")
    assert 50 <= hr["acc_mean"] <= 100 and 0 <= low["acc_mean"] <= 100
    table = accuracy_table(collect(files)).set_index(["dataset", "method"])
    assert table.loc[("xqlfw", "bicubic"), "40x40"] == round(low["acc_mean"], 2)
    assert table.loc[("xqlfw", "bicubic"), "160x160"] == round(hr["acc_mean"], 2)  # the published images
    assert dvc_metrics(collect(files), 0.5)["xqlfw"]["acc"]["40x40"] == {"bicubic": round(low["acc_mean"], 4)}
