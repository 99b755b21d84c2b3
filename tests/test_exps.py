"""`srlrfr exps` on a real DVC repository with a real experiment: one row each, in 100 columns."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN

from srlrfr.report.exps import exp_rows, format_table

pytestmark = pytest.mark.slow  # a real `dvc exp run` (about 30 s on 2 cores)

STAGE = """import json, yaml
lam = yaml.safe_load(open("params.yaml"))["lambda"]
acc = {r: {"bicubic": 70.0, "edsr": 70 + 10 * lam} for r in ("10x10", "20x20", "40x40")}
p = {"10x10": {"edsr": 0.01 if lam > 0.4 else 0.3}}
json.dump({"acc": acc, "p_vs_bicubic": p}, open("results/metrics.json", "w"))
"""


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("exps")
    (repo / "params.yaml").write_text("lambda: 0.5\nfnet: dlib_resnet34\ntrain:\n  srnet: {type: edsr, n_blocks: 8}\n")
    (repo / "results").mkdir()
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(f"stages:\n  agg:\n    cmd: {sys.executable} stage.py\n    params: [lambda]\n"
                                   "    metrics:\n    - results/metrics.json: {cache: false}\n")
    dvc = str(BIN / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "repro", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
                [dvc, "exp", "run", "-q", "-S", "lambda=0.25", "-n", "lam025"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    return repo


def test_one_row_per_experiment_in_100_columns(dvc_repo: Path):
    out = subprocess.run([str(BIN / "srlrfr"), "exps"], cwd=dvc_repo, check=True, capture_output=True,
                         text=True).stdout
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    base = next(line for line in lines if "baseline" in line)
    exp = next(line for line in lines if line.startswith("lam025"))
    assert "75.00*" in base and "0.5" in base and "edsr" in base and "dlib_resnet34" in base
    assert "72.50  -2.5" in exp and "0.25" in exp and "72.50*" not in exp  # p 0.3: no star


def test_a_failed_experiment_shows_no_numbers(dvc_repo: Path):
    doc = json.loads(subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=dvc_repo, check=True,
                                    capture_output=True, text=True).stdout)
    group = next(c for c in doc if c.get("experiments"))["experiments"][0]
    group["executor"] = {"state": "failed"}
    rows = exp_rows(doc)
    failed = next(r for r in rows if r["name"] == "lam025")
    assert failed["state"] == "failed" and failed["acc"] == {}
    line = next(x for x in format_table(rows).splitlines() if x.startswith("lam025"))
    assert "75.00" not in line and "72.50" not in line
