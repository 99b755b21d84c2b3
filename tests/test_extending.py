"""A new FNet or SRNet is one file plus one registry line: nothing else changes.

In a copy of the repository, a toy FNet and a toy SRNet are added exactly as
docs/layout.md says (a module under srlrfr/models/fnets|srnets and its import in
srlrfr/models/catalog.py); then params select them by name and the real DAG
plans with them, and the FNet's own weight preparation runs through its rule.
A list of SRNets trains each of them, and dvc.yaml follows.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent

TOY_FNET = '''
import torch
from torch import nn

from ...atomic import save_torch
from ...registry import FNETS
from ..base import FNetSpec


class ToyFNet(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 4, 8, 8), nn.Flatten(), nn.Linear(4 * 14 * 12, 16))


def _prepare(source, out, cache):
    torch.manual_seed(0)
    save_torch(out, ToyFNet().state_dict())
    return {"source": "random init"}


FNETS.register("toy_fnet", FNetSpec(
    name="toy_fnet", build=ToyFNet, geometry="sphereface_112x96", input_size=(112, 96), feature_dim=16,
    channel_order="rgb", normalize=lambda x: x, weights="random", weights_default="random",
    prepare_weights=_prepare))
'''

TOY_SRNET = '''
from torch import nn

from ...registry import SRNETS
from ..base import SRNetSpec


class ToySR(nn.Module):
    scale = 4

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, 48, 3, padding=1),
                                  nn.PixelShuffle(4))

    def forward(self, x):
        return self.body(x).tanh()


SRNETS.register("toy_sr", SRNetSpec("toy_sr", ToySR, scale=4, defaults={"width": 8}))
'''


def _run(cmd, cwd, env):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory, repo_root):
    """A copy of the repository with a toy FNet and SRNet added as docs/layout.md says."""
    work = tmp_path_factory.mktemp("extending") / "repo"
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo_root,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (repo_root / rel).is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, work / rel)
    (work / "srlrfr/models/fnets/toy.py").write_text(TOY_FNET)
    (work / "srlrfr/models/srnets/toy.py").write_text(TOY_SRNET)
    catalog = work / "srlrfr/models/catalog.py"
    catalog.write_text(catalog.read_text() + "from .fnets import toy as toy_fnet  # noqa: F401,E402\n"
                       "from .srnets import toy as toy_srnet  # noqa: F401,E402\n")
    env = dict(os.environ, PYTHONPATH=str(work), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return work, env


def _params(work: Path, srnet) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["fnet"] = "toy_fnet"
    params["train"]["srnet"] = srnet
    params["fnets"]["toy_fnet"] = {"weights": "random"}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_toy_fnet_and_srnet_need_one_file_and_one_line_each(toy_repo):
    work, env = toy_repo
    _params(work, {"type": "toy_sr", "width": 4})

    printed = yaml.safe_load(_run([BIN / "srlrfr", "config", "--print"], work, env))
    assert printed["train"]["srnet"] == {"type": "toy_sr", "width": 4}

    plan = _run([BIN / "snakemake", "-n", "--forceall", "all"], work, env)
    assert "models/srnets/toy_fnet/toy_sr_lambda0.5/model.pt" in plan
    assert "results/eval/lfw/toy_fnet/toy_sr_lambda0/7x6/metrics.json" in plan
    assert "models/fnets/toy_fnet.pt" in plan

    _run([BIN / "snakemake", "--cores", "1", "models/fnets/toy_fnet.pt"], work, env)
    provenance = json.loads((work / "models/fnets/toy_fnet.source.json").read_text())
    assert provenance["fnet"] == "toy_fnet" and provenance["source"] == "random init"


def test_a_list_of_srnets_trains_each_for_every_lambda(toy_repo):
    """Both SRNets get a model per lambda and rows in the table; each train job is passed only
    its own SRNet (adding one never reruns another); dvc.yaml plots both."""
    work, env = toy_repo
    _params(work, [{"type": "toy_sr", "width": 4}, {"type": "edsr", "name": "edsr_small", "n_blocks": 1}])
    plan = _run([BIN / "snakemake", "-n", "--forceall", "--printshellcmds", "all"], work, env)
    for method in ("toy_sr_lambda0", "toy_sr_lambda0.5", "edsr_small_lambda0", "edsr_small_lambda0.5"):
        assert f"models/srnets/toy_fnet/{method}/model.pt" in plan, method
        assert f"results/eval/lfw/toy_fnet/{method}/7x6/metrics.json" in plan, method
    train_cmds = [line.removeprefix("Shell command: ") for line in plan.splitlines()
                  if line.startswith("Shell command: srlrfr train ")]
    assert len(train_cmds) == 4
    for cmd in train_cmds:
        tokens = shlex.split(cmd)
        srnet = json.loads(tokens[tokens.index("--settings") + 1])["train"]["srnet"]
        assert srnet["type"] == {"toy_sr": "toy_sr", "edsr_small": "edsr"}[tokens[tokens.index("--srnet") + 1]]
    _run([BIN / "srlrfr", "dvc-yaml"], work, env)
    dvc = yaml.safe_load((work / "dvc.yaml").read_text())
    assert "train.srnet" in dvc["stages"]["train"]["params"]
    assert dvc["plots"][0]["results/plots/accuracy.csv"]["y"][-2:] == ["toy_sr", "edsr_small"]


def test_an_overlay_changing_the_srnet_type_plans_the_new_type(toy_repo):
    """`snakemake --configfile params.yaml overlay.yaml` with ``train.srnet: {type: imdn}`` (a mapping,
    no list): Snakemake's own merge kept EDSR's kwargs under IMDN; the workflow merges as srlrfr does."""
    work, env = toy_repo
    _params(work, {"type": "edsr", "n_blocks": 1, "res_scale": 0.1})
    (work / "overlay.yaml").write_text("train:\n  srnet: {type: imdn, n_feats: 32}\n")
    plan = _run([BIN / "snakemake", "-n", "--forceall", "--printshellcmds", "all", "--configfile", "params.yaml",
                 "overlay.yaml"], work, env)
    assert "models/srnets/toy_fnet/imdn_lambda0.5/model.pt" in plan and "edsr_lambda" not in plan
    cmd = next(line for line in plan.splitlines() if line.startswith("Shell command: srlrfr train "))
    tokens = shlex.split(cmd.removeprefix("Shell command: "))
    srnet = json.loads(tokens[tokens.index("--settings") + 1])["train"]["srnet"]
    assert srnet["type"] == "imdn" and srnet["n_feats"] == 32 and srnet["n_blocks"] == 6  # IMDN's own default
