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
    srnet = cfg["train"]["srnet"]
    assert srnet["n_blocks"] == 2 and srnet["type"] == "edsr" and srnet["res_scale"] == 0.1  # overlay + base
    assert cfg["train"]["lr_gamma"] == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load([bad])


def test_lambda_tags_match_the_wildcard_for_every_valid_value():
    import re

    from srlrfr.methods import LAMBDA_PATTERN, lambda_tag, parse_sr, sr_method
    assert lambda_tag(0) == "0" and lambda_tag(0.50) == "0.5" and lambda_tag(1e-05) == "0.00001"
    assert lambda_tag(1e6) == "1000000" and lambda_tag(0.25) == "0.25"
    for value in (0, 0.5, 1e-05, 1e6, 0.1 + 0.2, 3, 2.5e-7):
        cfg = config.validate({"lambda": value})
        tag = lambda_tag(cfg["lambda"])
        assert re.fullmatch(LAMBDA_PATTERN, tag), tag
        assert float(tag) == value and parse_sr(sr_method("edsr", value)) == ("edsr", value, False)
    assert config.trained_lambdas({"lambdas": [0.5, 0.0], "lambda": 0.25}) == ["0", "0.25", "0.5"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e-300])
def test_lambdas_that_cannot_name_a_model_are_rejected(value):
    with pytest.raises(config.ConfigError, match=r"key 'lambda'"):
        config.validate({"lambda": value})
    with pytest.raises(config.ConfigError, match=r"key 'lambdas'"):
        config.validate({"lambdas": [0.5, value]})


def test_srnet_is_configured_basicsr_style():
    cfg = config.validate({"train": {"srnet": {"type": "edsr", "n_feats": 64}}})
    assert cfg["train"]["srnet"] == {"type": "edsr", "n_feats": 64, "n_blocks": 32, "res_scale": 0.1}
    with pytest.raises(config.ConfigError, match=r"unknown key 'train.srnet.n_featz' for srnet type 'edsr'"):
        config.validate({"train": {"srnet": {"type": "edsr", "n_featz": 64}}})
    with pytest.raises(config.ConfigError, match=r"key 'train.srnet.n_blocks'"):
        config.validate({"train": {"srnet": {"type": "edsr", "n_blocks": "many"}}})
    with pytest.raises(config.ConfigError, match=r"train.srnet.type"):
        config.validate({"train": {"srnet": {"type": "srcnn9"}}})
    with pytest.raises(config.ConfigError, match=r"train.srnet.name"):
        config.validate({"train": {"srnet": {"type": "edsr", "name": "My Net"}}})


def test_authors_celeba_landmarks_need_the_in_the_wild_images():
    with pytest.raises(config.ConfigError, match=r"align.landmarks.celeba.*data.celeba.images: in_the_wild"):
        config.validate({"align": {"landmarks": {"celeba": "authors"}}})
    cfg = config.validate({"align": {"landmarks": {"celeba": "authors"}},
                           "data": {"celeba": {"images": "in_the_wild"}}})
    assert cfg["align"]["fit"] == "cp2tform" and cfg["align"]["landmark_check"] == "fail"


def test_authors_preset_selects_every_authors_choice(repo_root: Path):
    cfg = config.load([repo_root / "params.yaml", repo_root / "presets" / "authors.yaml"])
    assert cfg["fnet"] == "sphereface20" and cfg["align"]["fit"] == "cp2tform"
    assert {k: cfg["align"]["landmarks"][k] for k in ("lfw", "celeba")} == {"lfw": "authors", "celeba": "authors"}
    assert cfg["data"]["celeba"]["images"] == "in_the_wild" and cfg["evaluate"]["flip"] == "authors"
    assert "bilinear_authors" in cfg["evaluate"]["baselines"]
    assert cfg["evaluate"]["authors_checkpoints"] == ["edsr_baseline", "edsr_lambda0.5"]
    t = cfg["train"]
    assert (t["srnet"]["n_blocks"], t["srnet"]["n_feats"], t["batch_size"], t["iterations"], t["lr"],
            t["lr_step"], t["lr_gamma"]) == (32, 256, 64, 50000, 1e-4, 25000, 0.5)


def test_srnet_list_entries_are_checked_and_named_uniquely():
    cfg = config.validate({"train": {"srnet": [{"type": "edsr", "n_feats": 8}, {"type": "edsr", "name": "wide"}]}})
    assert config.srnet_names(cfg) == ["edsr", "wide"] and config.srnet_entry(cfg, "wide")["n_feats"] == 256
    assert config.srnet_names(config.validate({})) == ["edsr"]  # the single-mapping form
    with pytest.raises(config.ConfigError, match=r"key 'train.srnet.1': SRNet name 'edsr' is also entry 0"):
        config.validate({"train": {"srnet": [{"type": "edsr"}, {"type": "edsr", "n_blocks": 2}]}})
    with pytest.raises(config.ConfigError, match=r"unknown key 'train.srnet.0.width' for srnet type 'edsr'"):
        config.validate({"train": {"srnet": [{"type": "edsr", "width": 2}]}})
    with pytest.raises(config.ConfigError, match=r"key 'train.srnet'"):
        config.validate({"train": {"srnet": []}})
    with pytest.raises(config.ConfigError, match=r"no SRNet named 'imdn' \(configured: edsr, wide\)"):
        config.srnet_entry(cfg, "imdn")


@pytest.mark.parametrize("doc, key", [
    ({"train": {"lr": float("nan")}}, "train.lr"),
    ({"train": {"lr": float("inf")}}, "train.lr"),
    ({"train": {"srnet": {"type": "edsr", "res_scale": float("nan")}}}, "train.srnet.res_scale"),
    ({"degrade": {"model": {"type": "down_noise", "noise_sigma": float("-inf")}}}, "degrade.model.noise_sigma"),
    ({"report": {"far_targets": [0.01, float("nan")]}}, "report.far_targets"),
    ({"align": {"thresholds": [0.6, float("inf"), 0.7]}}, "align.thresholds"),
])
def test_nan_and_infinity_are_refused_everywhere(doc, key):
    with pytest.raises(config.ConfigError, match=rf"key '{key}': .*not a finite number"):
        config.validate(doc)


@pytest.mark.parametrize("doc, key, words", [
    ({"train": {"seed": -1}}, "train.seed", "minimum"),
    ({"evaluate": {"seed": -1}}, "evaluate.seed", "minimum"),
    ({"degrade": {"seed": -1}}, "degrade.seed", "minimum"),
    ({"train": {"srnet": {"type": "edsr", "n_feats": 0}}}, "train.srnet.n_feats", ">= 1"),
    ({"train": {"srnet": [{"type": "edsr"}, {"type": "imdn", "n_blocks": -2}]}}, "train.srnet.1.n_blocks", ">= 1"),
    ({"evaluate": {"threshold_steps": 10**9}}, "evaluate.threshold_steps", "maximum"),
    ({"evaluate": {"threshold_steps": 2}}, "evaluate.threshold_steps", "minimum"),
    ({"evaluate": {"baselines": ["bicubic", "bicubic"]}}, "evaluate.baselines", "non-unique"),
    ({"evaluate": {"authors_checkpoints": ["edsr_baseline", "edsr_baseline"]}}, "evaluate.authors_checkpoints",
     "non-unique"),
    ({"evaluate": {"protocols": ["hr_vs_lr", "hr_vs_lr"]}}, "evaluate.protocols", "non-unique"),
    ({"report": {"far_targets": [1e-2, 1e-2]}}, "report.far_targets", "non-unique"),
    ({"report": {"far_targets": [1.5]}}, "report.far_targets.0", "maximum"),
])
def test_numbers_and_names_are_bounded(doc, key, words):
    with pytest.raises(config.ConfigError, match=rf"key '{key}'") as err:
        config.validate(doc)
    assert words in str(err.value)


def test_yaml_1_2_numbers_are_numbers(tmp_path: Path):
    """1e-05 (what `dvc exp run -S lambda=0.00001` writes) is a string to YAML 1.1 (PyYAML, Snakemake)."""
    over = tmp_path / "over.yaml"
    over.write_text("lambda: 1e-05\nlambdas: [0, 1E-3]\ntrain: {lr: 2e-4, iterations: 5e1, srnet: {type: edsr, "
                    "res_scale: 1e-1}}\nreport: {far_targets: [1e-2]}\n")
    assert yaml.safe_load(over.read_text())["lambda"] == "1e-05"  # the YAML 1.1 reading
    assert config.read_yaml(over)["lambda"] == 1e-05
    for raw in (config.read_yaml(over), yaml.safe_load(over.read_text())):  # ours, and Snakemake's loader
        cfg = config.validate(raw)
        assert cfg["lambda"] == 1e-05 and cfg["lambdas"] == [0, 1e-3] and cfg["train"]["lr"] == 2e-4
        assert cfg["train"]["iterations"] == 50 and type(cfg["train"]["iterations"]) is int
        assert cfg["train"]["srnet"]["res_scale"] == 0.1 and cfg["report"]["far_targets"] == [0.01]
    assert config.trained_lambdas(cfg) == ["0", "0.00001", "0.001"]
    import re

    from srlrfr.methods import LAMBDA_PATTERN, sr_method
    assert sr_method("edsr", cfg["lambda"]) == "edsr_lambda0.00001"
    assert all(re.fullmatch(LAMBDA_PATTERN, tag) for tag in config.trained_lambdas(cfg))
    with pytest.raises(config.ConfigError, match=r"key 'lambda': 'abc' is not of type 'number'"):
        config.validate({"lambda": "abc"})
    with pytest.raises(config.ConfigError, match=r"key 'train.iterations'"):
        config.validate({"train": {"iterations": 5.5}})
    with pytest.raises(config.ConfigError, match=r"key 'train.srnet.res_scale'"):
        config.validate({"train": {"srnet": {"type": "edsr", "res_scale": "small"}}})


def test_yaml_1_2_numbers_through_the_cli(tmp_path: Path, monkeypatch, capsys, repo_root: Path):
    from srlrfr import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "over.yaml").write_text("lambda: 1e-05\ntrain: {lr: .inf}\n")
    assert cli.main(["config", "--params", str(repo_root / "params.yaml"), "over.yaml"]) == 2
    assert "key 'train.lr': inf is not a finite number" in capsys.readouterr().err
    (tmp_path / "over.yaml").write_text("lambda: 1e-05\n")
    assert cli.main(["config", "--params", str(repo_root / "params.yaml"), "over.yaml", "--print"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["lambda"] == 1e-05


def test_yaml_loader_reads_yaml_1_2_floats_only_as_floats():
    doc = "a: 1e-5\nb: 1E+3\nc: .inf\nd: -.inf\ne: .nan\nf: 10\ng: 1.5\nh: e5\ni: 1e\nj: '1e-5'\nk: true\n"
    got = yaml.load(doc, Loader=config.Yaml12Loader)
    assert got["a"] == 1e-5 and got["b"] == 1000.0 and got["c"] == float("inf") and got["d"] == float("-inf")
    assert got["e"] != got["e"] and got["f"] == 10 and type(got["f"]) is int and got["g"] == 1.5
    assert (got["h"], got["i"], got["j"], got["k"]) == ("e5", "1e", "1e-5", True)
    assert yaml.safe_load("a: 1e-5")["a"] == "1e-5"  # PyYAML's own loader is left as it was


def test_an_overlay_changing_the_srnet_type_replaces_the_entry():
    """EDSR's n_blocks/res_scale must not follow into an IMDN given as a mapping in an overlay."""
    from srlrfr.config import deep_merge, validate
    base = {"train": {"srnet": {"type": "edsr", "n_blocks": 32, "n_feats": 256, "res_scale": 0.1}, "lr": 1e-4}}
    merged = deep_merge(base, {"train": {"srnet": {"type": "imdn", "n_feats": 32}}})
    assert merged["train"]["srnet"] == {"type": "imdn", "n_feats": 32} and merged["train"]["lr"] == 1e-4
    assert validate(merged)["train"]["srnet"]["type"] == "imdn"
    same = deep_merge(base, {"train": {"srnet": {"type": "edsr", "n_blocks": 2}}})  # same type: merged
    assert same["train"]["srnet"] == {"type": "edsr", "n_blocks": 2, "n_feats": 256, "res_scale": 0.1}


def test_snakemake_params_merge_as_srlrfr_does(tmp_path: Path):
    """What workflow/rules/common.smk rebuilds from Snakemake's settings: the workflow's file, then the
    --configfile overlays in order, then --config; a changed type replaces the entry."""
    (tmp_path / "params.yaml").write_text("train: {srnet: {type: edsr, n_blocks: 32}, lr: 0.1}\nfnet: a\n")
    (tmp_path / "o1.yaml").write_text("train: {srnet: {type: imdn, n_feats: 32}}\nfnet: b\n")
    (tmp_path / "o2.yaml").write_text("train: {lr: 0.2}\n")
    own, given = str(tmp_path / "params.yaml"), [tmp_path / "o1.yaml", tmp_path / "o2.yaml"]
    got = config.snakemake_params([*given, own], given, {"fnet": "c"})
    assert got == {"train": {"srnet": {"type": "imdn", "n_feats": 32}, "lr": 0.2}, "fnet": "c"}
    # params.yaml given again on the command line (as dvcsync does) is read once, in its place
    again = config.snakemake_params([tmp_path / "params.yaml", given[0]], [tmp_path / "params.yaml", given[0]], {})
    assert again["train"] == {"srnet": {"type": "imdn", "n_feats": 32}, "lr": 0.1}
    # --replace-workflow-config drops the workflow's own file, as Snakemake does
    assert "fnet" not in config.snakemake_params([own, given[1]], [given[1]], {}, replace=True)


def test_a_trained_srnets_identity_has_one_formatter_and_one_parser():
    """SRNetId names the files on disk exactly as before (λ as plain decimals: 0, 0.5, 0.00001), and
    parsing a method gives back the identity it was formatted from."""
    from srlrfr.methods import SRNetId, authors_method
    names = {0: "edsr_lambda0", 0.5: "edsr_lambda0.5", 1e-05: "edsr_lambda0.00001", 1000000: "edsr_lambda1000000"}
    for lam, method in names.items():
        sr = SRNetId("edsr", float(lam), "sphereface20")
        assert sr.method == method and sr.folder == f"models/srnets/sphereface20/{method}"
        assert SRNetId.parse(method, "sphereface20") == sr
    assert SRNetId.FOLDER.format(fnet="f", srnet="imdn_small", lam="0.25") == "models/srnets/f/imdn_small_lambda0.25"
    assert authors_method("edsr_baseline") == "authors_edsr_lambda0"
    assert SRNetId.parse("authors_edsr_lambda0.5") == SRNetId("edsr", 0.5, authors=True)
    assert SRNetId.parse("hr") is None and SRNetId.parse("bicubic") is None
    with pytest.raises(ValueError, match="model folder"):
        _ = SRNetId("edsr", 0.5).folder  # no FNet: no folder
