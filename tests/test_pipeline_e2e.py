"""End-to-end: the real DAG on the sample data with the tiny preset.

Runs in a temporary git repository made from this checkout: `snakemake all`,
then `dvc repro` (which must find Snakemake's work up to date) and two
`dvc exp run -S lambda=...` experiments (one of them lambda=0.00001) compared with `dvc exp show` and
`dvc metrics diff`. Then, on a copy, the second preset (.test/protocols.yaml: a
realistic degradation and two SRNets), which reruns only from the degrade step on.
Nothing is written outside the temporary directory.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import BIN, preset_params
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


def test_authors_preset_dry_run(workdir: Path):
    """The authors' preset plans their whole path; its downloads cannot run here, so a dry run only."""
    out = run([str(BIN / "snakemake"), "-n", "--forceall", "-p", "all", "--configfile", "params.yaml",
               "presets/authors.yaml"], workdir)
    for rule in ("ingest", "landmarks", "align", "degrade", "fnet_weights", "import_authors", "train",
                 "features", "evaluate", "aggregate", "report"):
        assert f"rule {rule}:" in out, rule
    shell = [line for line in out.splitlines() if line.startswith("Shell command: srlrfr")]
    landmarks = [c for c in shell if c.startswith("Shell command: srlrfr landmarks")]
    assert len(landmarks) == 2 and all('"landmark_check": "fail"' in c for c in landmarks)
    assert any('"lfw": "authors"' in c for c in landmarks) and any('"celeba": "authors"' in c for c in landmarks)
    assert any('"images": "in_the_wild"' in c for c in shell if "srlrfr ingest celeba" in c)
    assert all('"fit": "cp2tform"' in c for c in shell if "srlrfr align" in c)
    evaluate = [c for c in shell if "srlrfr evaluate" in c]
    assert len(evaluate) == 19 and all('"flip": "authors"' in c for c in evaluate)  # (2 + 2 + 2) x 3 + hr
    for method in ("bilinear_authors", "authors_edsr_lambda0", "authors_edsr_lambda0.5", "edsr_lambda0.5"):
        assert any(f"--method {method} --resolution 7x6" in c for c in evaluate), method
    train = [c for c in shell if "srlrfr train" in c]
    assert len(train) == 2 and all('"n_blocks": 32' in c and '"iterations": 50000' in c for c in train)
    assert "models/fnets/sphereface20.pt" in out and "data/aligned/lfw_sphereface_112x96" in out


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


# ---- the second preset (.test/protocols.yaml): the axes beyond the paper, on a copy of the
# smoke run as it finished (conftest's smoke_reference, before DVC touched it), so ingest, landmarks,
# alignment, FNet weights and features are reused.

@pytest.fixture(scope="module")
def protocols_run(smoke_reference: Path, tmp_path_factory, repo_root: Path, shared_data: Path) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("protocols") / "repo"
    skip = {smoke_reference / ".dvc" / "cache"}
    shutil.copytree(smoke_reference, work, symlinks=True,  # copy2: mtimes kept, so Snakemake reuses the work
                    ignore=lambda folder, names: [n for n in names if Path(folder) / n in skip])
    cfg = preset_params(repo_root, shared_data, ".test/params.yaml", ".test/protocols.yaml")
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = run([str(BIN / "snakemake"), "-n", "all"], work)
    run([str(BIN / "snakemake"), "--cores", "2", "all"], work, timeout=2400)
    return work, plan


def test_protocols_preset_reruns_only_from_the_degradation_on(protocols_run):
    _, plan = protocols_run
    rules = set(re.findall(r"^(?:local)?rule (\w+):", plan, flags=re.M))
    assert {"degrade", "train", "evaluate", "aggregate", "report"} <= rules
    assert not rules & {"ingest", "landmarks", "align", "fnet_weights", "features"}, rules


def test_protocols_preset_realistic_degradation_and_two_srnets(protocols_run):
    work, _ = protocols_run
    cfg = params.load(work / "params.yaml")
    geom = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    lowres = [geom.resolution_name(f) for f in cfg["degrade"]["factors"]]
    model = cfg["degrade"]["model"]
    assert model["type"] == "blur_down_jpeg"
    for dataset in ("lfw", "celeba"):  # probes and SR inputs degraded by the same code; clean levels kept
        folder = work / "data" / "degraded" / f"{dataset}_{geom.name}"
        manifest = json.loads((folder / "levels.json").read_text())
        assert manifest["degradation"]["model"] == model
        for f, name in manifest["inputs"].items():
            assert name == f"x{f}_lq.npy"
            assert not np.array_equal(np.load(folder / name), np.load(folder / f"x{f}.npy"))
    for srnet in ("edsr", "imdn"):
        meta = torch.load(work / "models" / "srnets" / cfg["fnet"] / f"{srnet}_lambda0" / "model.pt",
                          weights_only=True)["meta"]
        assert meta["degradation"]["model"] == model
    table = pd.read_csv(work / "results" / "accuracy.csv")
    table = table[table["protocol"] == "hr_vs_lr"]  # the paper's rows (the preset adds other protocols' rows)
    assert {"bicubic", "bilinear_authors", "edsr_lambda0", "imdn_lambda0"} == set(table["method"])
    for r in lowres:
        assert table[r].notna().all() and table[r].between(40, 100).all(), r
    metrics = json.loads((work / "results" / "metrics.json").read_text())
    for r in lowres:  # stable names: the degradation and lambda are params, not part of the key
        assert set(metrics["acc"][r]) == {"bicubic", "bilinear_authors", "edsr", "imdn"}, r
    wide = pd.read_csv(work / "results" / "plots" / "accuracy.csv")
    assert {"edsr", "imdn"} <= set(wide.columns) and len(wide) == len(lowres)
    assert "blur_down_jpeg" in (work / "results" / "paper_comparison.md").read_text()  # not the paper's probes


def test_protocols_preset_lr_vs_lr_matrix_and_identification(protocols_run):
    work, plan = protocols_run
    assert "rule matrix:" in plan
    cfg = params.load(work / "params.yaml")
    geom = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    full = f"{geom.height}x{geom.width}"
    lowres = [geom.resolution_name(f) for f in cfg["degrade"]["factors"]]
    names = {"bicubic", "bilinear_authors", "edsr", "imdn"}
    metrics = json.loads((work / "results" / "metrics.json").read_text())
    for r in lowres:  # stable names per protocol, as the paper's
        assert set(metrics["lr_vs_lr"]["acc"][r]) == names, r
        assert set(metrics["identification"]["rank1"][r]) == names, r
        for name in names:
            assert 0 <= metrics["identification"]["rank1"][r][name] <= metrics["identification"]["rank5"][r][name]
    assert metrics["lr_vs_lr"]["acc"][full] == metrics["acc"][full]  # undegraded: both protocols are one
    # The sample fold: 163 identities with >= 2 images in the gallery, 372 probes; full resolution
    # identifies most, the smallest probes far fewer, yet above chance (1/163).
    hr = json.loads((work / "results" / "eval" / "lfw" / cfg["fnet"] / "hr" / full / "metrics.json").read_text())
    assert (hr["identification"]["n_gallery"], hr["identification"]["n_probes"]) == (163, 372)
    rank1 = metrics["identification"]["rank1"]
    assert rank1[full]["hr"] > 80 and 1 < rank1[lowres[0]]["bicubic"] < rank1[full]["hr"]
    table = pd.read_csv(work / "results" / "accuracy.csv")
    assert table["protocol"].unique().tolist() == ["hr_vs_lr", "lr_vs_lr", "identification_rank1",
                                                   "identification_rank5"]
    matrix = pd.read_csv(work / "results" / "matrix" / cfg["fnet"] / "bicubic.csv")
    assert len(matrix) == (len(lowres) + 1) ** 2
    cell = matrix.set_index(["gallery", "probe"])["acc_mean"]
    for r in lowres:  # the diagonal is lr_vs_lr, the full-resolution row the paper's protocol
        assert cell[r, r] == pytest.approx(metrics["lr_vs_lr"]["acc"][r]["bicubic"], abs=1e-3)
        assert cell[full, r] == pytest.approx(metrics["acc"][r]["bicubic"], abs=1e-3)
    assert cell[full, full] == pytest.approx(metrics["acc"][full]["hr"], abs=1e-3)
    figures = work / "results" / "figures"
    assert (figures / "cmc.png").is_file() and (figures / "matrix_bicubic.png").is_file()
    assert "Identification: CMC curves" in (work / "results" / "report.html").read_text()


def test_dvc_repro_and_experiments(snakemake_run: Path):
    work = snakemake_run
    dvc = str(BIN / "dvc")
    run([dvc, "repro"], work, timeout=1800)
    assert (work / "dvc.lock").is_file()
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "repro"], work)
    # A small λ as the issue tracker's users type it: DVC writes 1e-05 into params.yaml (YAML 1.2 reads
    # it as a number), and the model's folder carries the decimal tag the rules match.
    run([dvc, "exp", "run", "-n", "lam1e5", "-S", "lambda=0.00001"], work, timeout=1800)
    # The new λ's SRNet and evaluations belong to the train and evaluate stages, which DVC reran
    # (they depend on lambda): the lock records them, so nothing is left modified.
    lock = params.read_yaml(work / "dvc.lock")["stages"]  # YAML 1.2, as DVC wrote it (1.1 reads 1e-05 as a string)
    assert lock["train"]["params"]["params.yaml"]["lambda"] == 1e-05
    assert lock["evaluate"]["params"]["params.yaml"]["lambda"] == 1e-05
    assert "up to date" in run([dvc, "status"], work)
    cfg = params.load(work / "params.yaml")
    assert (work / "models" / "srnets" / cfg["fnet"] / "edsr_lambda0.00001" / "model.pt").is_file()
    small = json.loads((work / "results" / "metrics.json").read_text())
    geom = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    for r in (geom.resolution_name(f) for f in cfg["degrade"]["factors"]):
        assert 40 <= small["acc"][r]["edsr"] <= 100, r  # the stable key: λ is a param, not part of it
        assert (work / "results" / "eval" / "lfw" / cfg["fnet"] / "edsr_lambda0.00001" / r / "metrics.json").is_file()
    run([dvc, "exp", "run", "-n", "lam0", "-S", "lambda=0"], work, timeout=1800)
    shown = json.loads(run([dvc, "exp", "show", "--json"], work))
    text = json.dumps(shown)
    assert "lam1e5" in text and "lam0" in text
    diff = run([dvc, "metrics", "diff", "HEAD", "--all"], work)
    assert "acc." in diff or "acc/" in diff
