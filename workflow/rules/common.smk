# Validated config, the names every rule shares, and every input function.
# No constants live here: values come from params.yaml (defaults from
# srlrfr's JSON schema) and names from the package's registries.
import json
import os
import sys

from srlrfr import config as params
from snakemake.exceptions import WorkflowError

from srlrfr import methods, resources, restored, runs, steps
from srlrfr.catalog import load_all
from srlrfr.registry import DATASETS, FNETS, GEOMETRIES

load_all()
# Snakemake merged the params files across a changed `type:` (train.srnet: {type: imdn} kept
# EDSR's kwargs): merged again as srlrfr merges them (srlrfr.config.snakemake_params).
_cs = workflow.config_settings
_merged = params.snakemake_params(
    workflow.configfiles, list(_cs.configfiles), _cs.config, _cs.replace_workflow_config
)
_validated = params.check_inputs(params.validate(_merged))
config.clear()
config.update(_validated)

if workflow.is_main_process:  # clear a killed run's lock when provably safe; jobs watch this run
    _note = runs.start_run()
    if _note:
        print(_note, file=sys.stderr)
    # In a DVC stage, outputs DVC restored (a clone, a queued copy) get the records of the params
    # dvc.lock made them with, before Snakemake plans: it then plans by params and inputs, not by
    # the order DVC wrote the files in (srlrfr/restored.py).
    _note = restored.adopt_in_dvc_stage()
    if _note:
        print(_note, file=sys.stderr)

FNET = config["fnet"]
GEOMETRY = GEOMETRIES.get(FNETS.get(FNET).geometry)
GEOM = GEOMETRY.name
FACTORS = {GEOMETRY.resolution_name(f): f for f in config["degrade"]["factors"]}
FULL_RES = f"{GEOMETRY.height}x{GEOMETRY.width}"
EVAL_SET = "lfw"  # the paper's set: the report's figures and paper comparison
EVAL_SETS = config["evaluate"]["datasets"]  # every verification set with rows in the table
TRAIN_SET = config["train"]["dataset"]
PRETRAINED = config["train"]["pretrained"]  # shipped SRNets: evaluated, never trained
LAMBDAS = params.trained_lambdas(config)
SRNET_NAMES = params.srnet_names(config)
SR_METHODS = [
    methods.SRNetId(name, float(lam), FNET).method for name in SRNET_NAMES for lam in LAMBDAS
]
# A trained SRNet's files and its method name, as wildcard patterns (srlrfr.methods.SRNetId)
SRNET_FOLDER = methods.SRNetId.FOLDER
SRNET_METHOD = methods.SRNetId.METHOD
AUTHORS_METHODS = [methods.authors_method(n) for n in config["evaluate"]["authors_checkpoints"]]
CONFIGS = [
    (m, r) for m in config["evaluate"]["baselines"] + SR_METHODS + AUTHORS_METHODS for r in FACTORS
] + [(methods.FULL, FULL_RES)]
EVAL_DIR = "results/eval/{dataset}/{fnet}/{method}/{res}"
MATRIX_METHOD = config["evaluate"]["matrix"]["method"]
MATRIX_FILES = [f"results/matrix/{FNET}/{MATRIX_METHOD}.csv"] if MATRIX_METHOD else []


wildcard_constraints:
    dataset="|".join(DATASETS.keys()),
    geometry="[a-z0-9_]+x[0-9]+",
    fnet="[a-z0-9_]+",
    srnet="[a-z0-9_]+",
    lam=methods.LAMBDA_PATTERN,
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


def print_run_notes():
    """At the end of a successful run: damaged images, missing images, excluded pairs."""
    for note in runs.run_notes():
        print(f"srlrfr: NOTE {note}", file=sys.stderr)


# ---- paths


def aligned_dir(dataset):
    return f"data/aligned/{dataset}_{GEOM}"


def degraded_dir(dataset):
    return f"data/degraded/{dataset}_{GEOM}"


def srnet_path(method):
    sr = methods.SRNetId.parse(method, FNET)
    if sr.authors:
        return f"models/authors/{methods.authors_checkpoint(method)}/model.pt"
    return f"{sr.folder}/model.pt"


def eval_files(name, datasets=None):
    """Every configuration's file ``name``, for ``datasets`` (default: all of evaluate.datasets)."""
    return [
        f"results/eval/{d}/{FNET}/{m}/{r}/{name}" for d in datasets or EVAL_SETS for m, r in CONFIGS
    ]


# The datasets a run prepares (ingest to degrade): the evaluated ones, and the training set when
# an SRNet is trained here.
PREPARED_SETS = EVAL_SETS + ([TRAIN_SET] if SR_METHODS and not PRETRAINED else [])
BENCH = "logs/benchmarks"


# Each benchmarked step's .smk adds the benchmark: files of its jobs under its name.
STEP_BENCHMARKS = {}


def step_benchmarks():
    """The benchmark: file of every job the report depends on (all but the report's own).

    Each benchmarked step (srlrfr.pipeline.PIPELINE) lists its jobs' files in its own .smk, in
    STEP_BENCHMARKS. Listed whole, whatever exists on disk, so the report's input set is the
    same on every run (a changing set would rerun it); like any missing output, a deleted
    benchmark file makes Snakemake rerun its job. tests/test_dvc_sync.py checks this list
    against the benchmark lines of the dry run.
    """
    missing = [step for step in steps.BENCHMARKED if step not in STEP_BENCHMARKS]
    if missing:
        raise WorkflowError(
            f"workflow/rules/{missing[0]}.smk sets no STEP_BENCHMARKS[{missing[0]!r}]: a benchmarked "
            f"step (srlrfr.pipeline.PIPELINE) lists its jobs' benchmark files"
        )
    return [f for step in steps.BENCHMARKED for f in STEP_BENCHMARKS[step]]


# ---- input, param and resource functions of the rules


def job_resources(rule, images_from=None):
    """GPUs, mem_mb, runtime (and a partition) of a rule's jobs: srlrfr.resources, from params."""
    return resources.job_resources(config, rule, images_from)


def ingest_settings(wildcards):
    return settings(*DATASETS.get(wildcards.dataset).settings)


def landmark_settings(wildcards):
    return settings(
        f"align.landmarks.{wildcards.dataset}",
        "align.landmark_check",
        "data.cache",
        "align.min_face_size",
        "align.thresholds",
        "align.batch_size",
        "align.device",
        "align.corrupt",
    )


def train_settings(wildcards):
    """The train section with only this job's SRNet: adding an SRNet never reruns another."""
    doc = json.loads(settings("train", "degrade.kernel", "degrade.model", "degrade.seed", "fnet"))
    doc["train"]["srnet"] = params.srnet_entry(config, wildcards.srnet)
    return json.dumps(doc, sort_keys=True)


def train_inputs(wildcards):
    if PRETRAINED:  # the shipped model, checked and copied: no training data, no FNet
        return {
            "pretrained": f"{PRETRAINED}/{wildcards.fnet}/"
            + SRNET_METHOD.format(srnet=wildcards.srnet, lam=wildcards.lam)
        }
    inputs = {"aligned": aligned_dir(TRAIN_SET), "degraded": degraded_dir(TRAIN_SET)}
    if float(wildcards.lam) > 0:  # lambda = 0 needs no FNet at all
        inputs["weights"] = f"models/fnets/{wildcards.fnet}.pt"
    return inputs


def train_data_flags(wildcards, input):
    if "pretrained" in input.keys():
        return f"--pretrained {input.pretrained}"
    flags = f"--aligned {input.aligned} --degraded {input.degraded}"
    return flags + (f" --weights {input.weights}" if "weights" in input.keys() else "")


def features_inputs(wildcards):
    return {
        "aligned": aligned_dir(wildcards.dataset),
        "weights": f"models/fnets/{wildcards.fnet}.pt",
    }


def eval_inputs(wildcards):
    inputs = {
        "pairs": f"data/index/{wildcards.dataset}",
        "aligned": aligned_dir(wildcards.dataset),
        "features": f"results/features/{wildcards.dataset}/{wildcards.fnet}/hr.npz",
        "weights": f"models/fnets/{wildcards.fnet}.pt",
    }
    if wildcards.res != FULL_RES:
        inputs["degraded"] = degraded_dir(wildcards.dataset)
    if methods.is_sr(wildcards.method):
        inputs["srnet"] = srnet_path(wildcards.method)
    return inputs


def eval_settings(wildcards):
    """The evaluate section but its dataset list: adding a dataset never reruns another's evaluations."""
    doc = json.loads(settings("fnet", "evaluate", "align.no_face", "report.far_targets"))
    del doc["evaluate"]["datasets"]
    return json.dumps(doc, sort_keys=True)


def eval_flags(wildcards, input):
    flags = []
    if "degraded" in input.keys():
        flags += [f"--degraded {input.degraded}", f"--factor {FACTORS[wildcards.res]}"]
    if "srnet" in input.keys():
        flags.append(f"--srnet {input.srnet}")
    return " ".join(flags)


def matrix_features(wildcards):
    """The method's evaluations at every low resolution (full resolution comes from the features rule)."""
    return [
        f"results/eval/{EVAL_SET}/{wildcards.fnet}/{wildcards.method}/{r}/features.npz"
        for r in FACTORS
    ]
