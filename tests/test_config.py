"""params.yaml validation: defaults, errors naming the key, overlays, agreement with the schema."""
from pathlib import Path

import pytest
import yaml

from srlrfr import config


def test_defaults_fill_everything():
    cfg = config.validate({})
    assert cfg["train"]["iterations"] == 50000 and cfg["degrade"]["factors"] == [16, 8, 4]
    assert cfg["evaluate"]["threshold_steps"] == 10001 and cfg["lambda"] == 0.5


def test_unknown_key_is_named():
    with pytest.raises(config.ConfigError, match=r"unknown key 'train.iteratoins'"):
        config.validate({"train": {"iteratoins": 5}})


def test_wrong_type_is_named():
    with pytest.raises(config.ConfigError, match=r"key 'train.batch_size'"):
        config.validate({"train": {"batch_size": "big"}})


def test_negative_lambda_rejected():
    with pytest.raises(config.ConfigError, match=r"key 'lambda'"):
        config.validate({"lambda": -1})


def test_resolution_not_dividing_the_crop_is_rejected():
    # 112x96 / 5 is not an integer crop.
    with pytest.raises(config.ConfigError, match=r"degrade.factors.*factor 5"):
        config.validate({"degrade": {"factors": [5]}})


def test_unknown_registry_name_rejected():
    with pytest.raises(config.ConfigError, match=r"degrade.kernel.*lanczos9"):
        config.validate({"degrade": {"kernel": "lanczos9"}})


def test_params_yaml_is_complete_and_valid(repo_root: Path):
    """DVC reads params by key from params.yaml, so every schema key must be written there."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    full = config.validate(raw)

    def keys(d, prefix=""):
        for k, v in d.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from keys(v, prefix + k + ".")
    assert set(keys(full)) == set(keys(raw))


def test_overlay_merges(tmp_path: Path, repo_root: Path):
    cfg = config.load([repo_root / "params.yaml", repo_root / ".test" / "params.yaml"])
    assert cfg["train"]["n_blocks"] == 2 and cfg["train"]["lr_gamma"] == 0.5  # overlay + base
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load([bad])


def test_lambda_tags():
    assert config.lambda_tag(0) == "0" and config.lambda_tag(0.50) == "0.5"
    assert config.trained_lambdas({"lambdas": [0.5, 0.0], "lambda": 0.25}) == ["0", "0.25", "0.5"]
