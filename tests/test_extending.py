"""A new step, FNet or SRNet is one file plus one registry line: nothing else changes.

In a copy of the repository, a toy FNet and a toy SRNet are added exactly as
docs/layout.md says (a module under srlrfr/models/fnets|srnets and its import in
srlrfr/models/catalog.py); then params select them by name and the real DAG
plans with them, the FNet's own weight preparation runs through its rule, and
the doctor and the time estimate ask their registry entries. A list of SRNets
trains each of them, and dvc.yaml follows. A toy step (its module, its rule
file, a line in srlrfr.pipeline.PIPELINE) joins the DAG, the CLI, the resources
and dvc.yaml.
"""
from __future__ import annotations

import difflib
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


def _copy_repo(work: Path, repo_root: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo_root,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (repo_root / rel).is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, work / rel)


def _code_changes(work: Path, repo_root: Path) -> dict[str, int]:
    """Files of srlrfr/ and workflow/ added or changed in the copy, with the lines each added."""
    changes = {}
    for path in sorted([*(work / "srlrfr").rglob("*.py"), *(work / "workflow").rglob("*.smk")]):
        rel = path.relative_to(work)
        old = (repo_root / rel).read_text().splitlines() if (repo_root / rel).is_file() else []
        diff = [d for d in difflib.ndiff(old, path.read_text().splitlines()) if d[:2] in ("+ ", "- ")]
        if diff:
            assert all(d.startswith("+ ") for d in diff), f"{rel}: lines changed, not only added"
            changes[str(rel)] = len(diff)
    return changes


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory, repo_root):
    """A copy of the repository with a toy FNet and SRNet added as docs/layout.md says."""
    work = tmp_path_factory.mktemp("extending") / "repo"
    _copy_repo(work, repo_root)
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


@pytest.mark.slow  # real Snakemake runs in a copy of the repository (10-15 s)
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


@pytest.mark.slow  # real Snakemake runs in a copy of the repository (10-15 s)
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


def test_a_toy_loss_is_one_class_and_one_registry_line(tmp_path):
    """A pixel loss registered here (one class, one registry line) is named in params and trains:
    every logged pixel loss is one the toy computed, and the model records it."""
    import csv

    import numpy as np
    import torch

    from srlrfr import config
    from srlrfr.models.srnet import load_srnet
    from srlrfr.registry import LOSSES
    from srlrfr.training import RunControl, TrainOptions, train_srnet
    from srlrfr.training.losses import PixelLoss

    class ToySquared(PixelLoss):
        computed: list[float] = []

        def __call__(self, sr, target):
            loss = (sr.float() - target).square().mean()
            ToySquared.computed.append(float(loss.detach()))
            return loss

    if "toy_squared" not in LOSSES:
        LOSSES.register("toy_squared", ToySquared)
    toy = LOSSES.get("toy_squared")
    toy.computed.clear()

    cfg = config.validate({"train": {"losses": {"pixel": "toy_squared"}, "batch_size": 2, "iterations": 3,
                                     "log_every": 1, "checkpoint_every": 3}})
    options = TrainOptions.from_params(cfg["train"])
    small = np.random.default_rng(0).integers(0, 256, (4, 7, 6, 3), dtype=np.uint8)
    hr = np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)
    model = train_srnet(hr, fnet=None, lam=0.0, out_dir=tmp_path, srnet={"type": "edsr", "n_blocks": 1, "n_feats": 4},
                        options=options, control=RunControl(device="cpu", progress=False))
    with open(tmp_path / "train_log.csv", newline="") as fh:
        logged = [float(row["loss_pixel"]) for row in csv.DictReader(fh)]
    assert len(toy.computed) == 3 and logged == toy.computed
    assert load_srnet(model)[1]["meta"]["losses"] == {"pixel": "toy_squared", "identity": None}
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"]
    assert saved["losses"] == {"pixel": "toy_squared", "identity": None}  # an L1 run will not resume it


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


def test_toy_fnet_and_srnet_need_nothing_in_the_doctor_or_the_estimates(toy_repo, repo_root):
    """Two files and one catalog line each; the doctor checks the toy FNet's weights from its entry
    (a path that is not there fails, naming it), and the training's time is estimated from the toy
    SRNet's own counted cost, not the paper EDSR's (which priced any SRNet at 1,751 minutes)."""
    work, env = toy_repo
    changes = _code_changes(work, repo_root)
    assert set(changes) == {"srlrfr/models/catalog.py", "srlrfr/models/fnets/toy.py", "srlrfr/models/srnets/toy.py"}
    assert changes["srlrfr/models/catalog.py"] == 2  # one import line per network
    _params(work, {"type": "toy_sr", "width": 4})
    probe = """
import json, sys
from pathlib import Path
from srlrfr import config, resources
from srlrfr.doctor.inputs import Plan, check_weights
cfg = config.load("params.yaml")
found = {}
for src in ("random", "missing.pt"):
    cfg["fnets"]["toy_fnet"]["weights"] = src
    (check,) = check_weights(cfg, Path.cwd(), Plan(), authors=False)
    found[src] = [check.status, check.detail]
edsr = config.validate({**cfg, "train": {**cfg["train"], "srnet": {"type": "edsr"}}})
print(json.dumps({"doctor": found, "toy": resources.runtime(cfg, "train"), "edsr": resources.runtime(edsr, "train")}))
"""
    got = json.loads(_run([sys.executable, "-c", probe], work, env).splitlines()[-1])
    random, missing = got["doctor"]["random"], got["doctor"]["missing.pt"]
    assert "prepare_weights" in random[1] and random[0] != missing[0]
    assert str(work / "missing.pt") in missing[1] and "does not exist" in missing[1]
    assert got["toy"] < 60 < 1000 < got["edsr"]


TOY_STEP = '''"""Rule toy_count: the images in a data set's index, as JSON (a step added as docs/layout.md says)."""
from __future__ import annotations

NAME = "toy-count"
HELP = "count the images of a data set's index"


def toy_count(index, out) -> None:
    from ..atomic import write_json
    from ..resources import count_images
    write_json(out, {"images": count_images(index)})


def add_arguments(p) -> None:
    p.add_argument("--index", required=True)
    p.add_argument("--out", required=True)


def main(args, cfg) -> None:
    toy_count(args.index, args.out)
'''

TOY_RULE = '''STEP_BENCHMARKS["toy_count"] = [f"{BENCH}/toy_count/{d}.tsv" for d in EVAL_SETS]


rule toy_count:
    input:
        "data/index/{dataset}",
    output:
        "results/toy_count/{dataset}.json",
    log:
        "logs/toy_count_{dataset}.log",
    benchmark:
        "logs/benchmarks/toy_count/{dataset}.tsv"
    localrule: True
    resources:
        **job_resources("toy_count"),
    params:
        settings=settings("evaluate.datasets"),
    shell:
        "srlrfr toy-count --settings {params.settings:q} --index {input} --out {output} > {log} 2>&1"
'''


@pytest.mark.slow  # real Snakemake runs in a copy of the repository (10-15 s)
def test_a_toy_step_needs_its_module_its_rule_and_one_line(tmp_path, repo_root):
    """srlrfr/steps/toy_count.py, workflow/rules/toy_count.smk (the rule itself) and one line in
    srlrfr.pipeline.PIPELINE: Snakemake includes the rule, the report times its jobs (so `all` plans
    them), the CLI runs it, params accept resources.toy_count, and dvc.yaml gets its stage."""
    work = tmp_path / "repo"
    _copy_repo(work, repo_root)
    (work / "srlrfr/steps/toy_count.py").write_text(TOY_STEP)
    (work / "workflow/rules/toy_count.smk").write_text(TOY_RULE)
    registry = work / "srlrfr/pipeline.py"
    last = '    Step("report", benchmarked=False),'
    assert last in registry.read_text()
    registry.write_text(registry.read_text().replace(last, '    Step("toy_count"),\n' + last))
    changes = _code_changes(work, repo_root)
    assert set(changes) == {"srlrfr/pipeline.py", "srlrfr/steps/toy_count.py", "workflow/rules/toy_count.smk"}
    assert changes["srlrfr/pipeline.py"] == 1
    env = dict(os.environ, PYTHONPATH=str(work), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["resources"] = {"toy_count": {"runtime": 3}}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    plan = _run([BIN / "snakemake", "-n", "--forceall", "--printshellcmds", "all"], work, env)
    assert "results/toy_count/lfw.json" in plan and "runtime=3" in plan
    report = plan[plan.index("rule report:"):]
    assert "logs/benchmarks/toy_count/lfw.tsv" in report[:report.index("output:")]

    index = tmp_path / "index"
    index.mkdir()
    (index / "images.csv").write_text("image_id,path,identity\n1,a.jpg,0\n2,b.jpg,0\n3,c.jpg,1\n")
    _run([BIN / "srlrfr", "toy-count", "--settings", "{}", "--index", index, "--out", tmp_path / "n.json"], work, env)
    assert json.loads((tmp_path / "n.json").read_text()) == {"images": 3}

    _run([BIN / "srlrfr", "dvc-yaml"], work, env)
    stage = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]["toy_count"]
    # its output and its jobs' benchmark folder: DVC versions both, so a clone reruns nothing
    assert stage["outs"] == [{"logs/benchmarks/toy_count": {"persist": True}},
                             {"results/toy_count": {"persist": True}}]
    assert "workflow/rules/toy_count.smk" in stage["deps"] and "data/index" in stage["deps"]
