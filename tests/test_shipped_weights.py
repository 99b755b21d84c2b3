"""The CPU preset's shipped SRNets, evaluated on the sample fold without training (train.pretrained):
no training data is touched and the accuracy is the committed run's."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BIN, make_smoke_repo, preset_params
from conftest import run_cmd as run

pytestmark = pytest.mark.slow
FNET, RES = "dlib_resnet34", "10x10"
METHODS = ("edsr_lambda0", "edsr_lambda0.5")


@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory, repo_root: Path, shared_data: Path) -> Path:
    work = make_smoke_repo(tmp_path_factory.mktemp("shipped") / "repo", repo_root, shared_data)
    cfg = preset_params(repo_root, shared_data, "presets/cpu.yaml", "presets/cpu-shipped.yaml")
    cfg["data"]["faces"]["images"] = str(work / "no_such_folder")  # never needed: nothing is trained
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = [f"results/eval/lfw/{FNET}/{m}/{RES}/metrics.json" for m in METHODS]
    (work.parent / "dry_run.txt").write_text(run([str(BIN / "snakemake"), "-n", *targets], work))
    run([str(BIN / "snakemake"), "--cores", "2", *targets], work, timeout=1200)
    return work


def test_nothing_is_trained_and_no_training_data_is_read(shipped_run: Path):
    plan = (shipped_run.parent / "dry_run.txt").read_text()
    assert "data/index/faces" not in plan and "data/aligned/faces" not in plan
    log = (shipped_run / f"logs/train_{FNET}_edsr_lambda0.5.log").read_text()
    assert "checked against the params and installed" in log and "nothing trained" in log


def test_accuracy_is_the_committed_runs(shipped_run: Path, repo_root: Path):
    table = pd.read_csv(repo_root / "presets/cpu/results/accuracy.csv").set_index("method")
    for method in METHODS:
        m = json.loads((shipped_run / f"results/eval/lfw/{FNET}/{method}/{RES}/metrics.json").read_text())
        # the same weights, pairs and code: equal up to a pair decided by float rounding on another CPU
        assert abs(m["acc_mean"] - table.loc[method, RES]) <= 100 / 600 + 1e-9, method


def test_a_mismatched_model_is_refused(shipped_run: Path, tmp_path: Path):
    from srlrfr.config import ConfigError, load
    from srlrfr.steps.train import install_pretrained
    cfg = load([shipped_run / "params.yaml"])
    src = shipped_run / "presets/cpu/weights" / FNET / "edsr_lambda0.5"
    with pytest.raises(ConfigError, match="lambda 0.5 .params: 0.25."):
        install_pretrained(src, cfg, lam=0.25, out_dir=tmp_path / "a")
    cfg["train"]["srnet"]["n_feats"] = 32
    with pytest.raises(ConfigError, match="n_feats=64 .params: 32."):
        install_pretrained(src, cfg, lam=0.5, out_dir=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
