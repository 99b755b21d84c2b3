"""srlrfr.restored: which params the outputs DVC restored were made with, and when a stage adopts them."""
from pathlib import Path

import pytest
import yaml

from srlrfr import restored

LOCK = {"stages": {
    "train": {"cmd": "snakemake --until train",
              "params": {"params.yaml": {"lambda": 0.5, "train.iterations": 300, "fnets": {"dlib": {"w": "x"}}}}},
    "aggregate": {"cmd": "snakemake --until aggregate", "params": {"params.yaml": {"lambda": 0.5}}},
    "ingest": {"cmd": "snakemake --until ingest"},  # a stage without params
}}


def repo(tmp_path: Path, lock: dict | None = LOCK) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"lambda": 0.25, "lambdas": [0, 0.5], "train": {"iterations": 500, "lr": 1e-3}}))
    if lock is not None:
        (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    return tmp_path


def test_locked_values_replace_the_experiments(tmp_path: Path):
    cfg = restored.locked_params(repo(tmp_path))  # `dvc exp run -S lambda=0.25 -S train.iterations=500`
    assert cfg["lambda"] == 0.5 and cfg["train"] == {"iterations": 300, "lr": 1e-3}
    assert cfg["lambdas"] == [0, 0.5] and cfg["fnets"] == {"dlib": {"w": "x"}}


def test_a_stage_adopts_only_restored_outputs(tmp_path: Path, monkeypatch):
    root = repo(tmp_path, lock=None)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert restored.adopt_in_dvc_stage(root) is None  # plain snakemake: never
    monkeypatch.setenv("DVC_STAGE", "train")
    assert restored.adopt_in_dvc_stage(root) is None  # a first `dvc repro`: no lock, nothing restored
    (root / restored.METADATA).mkdir(parents=True)
    (root / restored.METADATA / "record").write_text("{}")
    (root / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    assert restored.adopt_in_dvc_stage(root) is None  # Snakemake made these outputs here: it has records


def test_adopt_without_a_lock_says_so(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="dvc.lock"):
        restored.adopt(repo(tmp_path, lock=None))
