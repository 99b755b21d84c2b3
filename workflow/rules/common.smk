# Validated config and the names every rule shares. No constants live here:
# they come from params.yaml (defaults from srlrfr's JSON schema) and the
# package's registries.
import json
import os

from srlrfr import config as params
from srlrfr.models import catalog  # noqa: F401  (fills the registries)
from srlrfr.registry import FNETS, GEOMETRIES

_validated = params.validate(config)
config.clear()
config.update(_validated)

FNET = config["fnet"]
GEOMETRY = GEOMETRIES.get(FNETS.get(FNET).geometry)
GEOM = GEOMETRY.name
FACTORS = {GEOMETRY.resolution_name(f): f for f in config["degrade"]["factors"]}
FULL_RES = f"{GEOMETRY.height}x{GEOMETRY.width}"
LAMBDAS = params.trained_lambdas(config)
EXP_METHOD = f"edsr_lambda{params.lambda_tag(config['lambda'])}"
AUTHORS = {"edsr_baseline": "authors_edsr_lambda0", "edsr_lambda0.5": "authors_edsr_lambda0.5"}
SR_METHODS = [f"edsr_lambda{l}" for l in LAMBDAS] + [AUTHORS[n] for n in config["evaluate"]["authors_checkpoints"]]
CONFIGS = [(m, r) for m in config["evaluate"]["baselines"] + SR_METHODS for r in FACTORS] + [("hr", FULL_RES)]

wildcard_constraints:
    dataset="lfw|celeba",
    geometry="[a-z0-9_]+x[0-9]+",
    fnet="[a-z0-9_]+",
    lam="[0-9]+(\\.[0-9]+)?",
    method="[A-Za-z0-9_.]+",
    res="[0-9]+x[0-9]+",


def settings(*keys):
    """The config entries a rule depends on, as JSON for `srlrfr --settings`.

    Passing them as rule params lets Snakemake rerun a rule when exactly
    those entries change, and nothing else.
    """
    doc = {}
    for key in keys:
        *parents, leaf = key.split(".")
        src, dst = config, doc
        for p in parents:
            src, dst = src[p], dst.setdefault(p, {})
        dst[leaf] = src[leaf]
    return json.dumps(doc, sort_keys=True)


def srnet_path(method):
    if method.startswith("authors_"):
        name = {v: k for k, v in AUTHORS.items()}[method]
        return f"models/authors/{name}/model.pt"
    return f"models/srnets/{FNET}/{method}/model.pt"


FNET_WEIGHTS = f"models/fnets/{FNET}.pt"
EVAL_DIR = "results/eval/{fnet}/{method}/{res}"
