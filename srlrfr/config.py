"""params.yaml: load, overlay, fill defaults from the JSON schema, validate.

One config drives everything: Snakemake's configfile, DVC's params file and
the CLI all pass through ``validate``. Errors name the offending key.
"""
from __future__ import annotations

import copy
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .catalog import load_all
from .errors import ConfigError  # it, fill_typed and the YAML helpers live below; callers may read them here
from .registry import BASELINES, DATASETS, DEGRADATIONS, FNETS, GEOMETRIES, LOSSES, RESIZE_KERNELS, SRNETS
from .resources import RULES
from .typed import fill_typed
from .yamlio import Yaml12Loader, deep_merge, read_yaml, yaml_number


def load_schema() -> dict:
    """The params schema, with every registry-backed enum filled from the registries.

    The YAML file holds structure, defaults and descriptions; the names (FNets,
    SRNets, kernels, baselines, datasets) come from srlrfr.registry, so adding
    one never means editing the schema.
    """
    # deferred: loads cv2
    from .methods import AUTHORS_CHECKPOINTS
    load_all()
    schema = yaml.load(resources.files("srlrfr").joinpath("schema/params.schema.yaml").read_text(),
                       Loader=Yaml12Loader)
    props = schema["properties"]
    props["fnet"]["enum"] = FNETS.keys()
    props["fnets"]["properties"] = {
        name: {"type": "object", "additionalProperties": False, "default": {},
               "properties": {"weights": {"type": "string", "minLength": 1, "x-path": True,
                                          "default": FNETS.get(name).weights_default,
                                          "description": FNETS.get(name).weights}}}
        for name in FNETS.keys()}
    props["degrade"]["properties"]["kernel"]["enum"] = RESIZE_KERNELS.keys()
    props["degrade"]["properties"]["model"]["properties"]["type"]["enum"] = DEGRADATIONS.keys()
    props["train"]["properties"]["dataset"]["enum"] = [n for n in DATASETS.keys() if DATASETS.get(n).role == "training"]
    srnet = props["train"]["properties"]["srnet"]
    srnet["properties"]["type"]["enum"] = srnet["items"]["properties"]["type"]["enum"] = SRNETS.keys()
    for role, node in props["train"]["properties"]["losses"]["properties"].items():
        node["enum"] = [n for n in LOSSES.keys() if LOSSES.get(n).role == role]
    evaluate = props["evaluate"]["properties"]
    evaluate["baselines"]["items"]["enum"] = BASELINES.keys()
    evaluate["datasets"]["items"]["enum"] = [n for n in DATASETS.keys() if DATASETS.get(n).role == "verification"]
    evaluate["authors_checkpoints"]["items"]["enum"] = sorted(AUTHORS_CHECKPOINTS)
    props["align"]["properties"]["landmarks"]["properties"] = {
        name: {"type": "string", "minLength": 1, "default": "detect", "x-path": True} for name in DATASETS.keys()}
    props["resources"]["properties"] = {name: {"$ref": "#/definitions/job_resources"} for name in RULES}
    return schema


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = dict(target)
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _fill_defaults(schema: dict, node: dict, value: Any) -> Any:
    node = _resolve(schema, node)
    if isinstance(value, dict) and "properties" in node:
        for key, sub in node["properties"].items():
            sub = _resolve(schema, sub)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill_defaults(schema, sub, value[key])
    return value


def _key_path(error: "jsonschema.ValidationError") -> str:  # noqa: F821
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        key = ".".join(filter(None, [path, extra[0] if extra else ""]))
        return f"unknown key '{key}' (allowed here: {allowed})"
    expected = error.schema.get("description") or (
        f"a {error.validator_value}" if error.validator == "type" else error.message)
    return f"key '{path or '<root>'}': {error.message} (expected: {expected})"


def _dvc_hint() -> str:
    """Under ``dvc exp run -S key=value``, DVC has already written the bad value into params.yaml."""
    if "DVC_EXP_BASELINE_REV" not in os.environ:
        return ""
    return (". `dvc exp run -S` wrote this value into params.yaml and leaves it there after the failure: "
            "restore the file with `git show HEAD:params.yaml > params.yaml` (or fix the value) before the next run")


def _types(node: dict) -> list:
    types = node.get("type", [])
    return [types] if isinstance(types, str) else types


def _coerce_numbers(schema: dict, node: dict, value: Any) -> Any:
    """Numbers as YAML 1.2 reads them: a string where the schema wants a number (Snakemake loads
    --configfile with YAML 1.1, which leaves 1e-05 a string), and a float with no fraction where it
    wants an integer (5e4 is 50000, and range() needs an int)."""
    node = _resolve(schema, node)
    types = _types(node)
    if isinstance(value, str) and {"number", "integer"} & set(types):
        number = yaml_number(value)
        value = value if number is None else number
    if isinstance(value, float) and "integer" in types and "number" not in types and value.is_integer():
        return int(value)
    if isinstance(value, dict) and isinstance(node.get("properties"), dict):
        for key, sub in node["properties"].items():
            if key in value:
                value[key] = _coerce_numbers(schema, sub, value[key])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [_coerce_numbers(schema, node["items"], v) for v in value]
    return value


def _check_finite(value: Any, key: str = "") -> None:
    """NaN and infinity pass JSON schema's number checks (every comparison with NaN is false), so
    one walk over the whole config refuses them, SRNet and degradation kwargs included."""
    if isinstance(value, dict):
        for name, sub in value.items():
            _check_finite(sub, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            if isinstance(sub, float) and not math.isfinite(sub):
                raise ConfigError(f"key '{key}': item {i}, {sub!r}, is not a finite number "
                                  f"(NaN and infinity are never valid params){_dvc_hint()}")
            _check_finite(sub, f"{key}.{i}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"key '{key}': {value!r} is not a finite number "
                          f"(NaN and infinity are never valid params){_dvc_hint()}")


def validate(config: dict | None) -> dict:
    """Return a validated copy of ``config`` with every default filled in."""
    schema = load_schema()
    cfg = _fill_defaults(schema, schema, copy.deepcopy(config or {}))
    cfg = _coerce_numbers(schema, schema, cfg)
    _check_finite(cfg)
    import jsonschema  # here, not at the top: typed entries (fill_typed) work without it (benchmarks/gpu_check.sh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid params: " + "; ".join(_key_path(e) for e in errors) + _dvc_hint())
    _check_semantics(cfg)
    return cfg


def srnet_entries(cfg: dict) -> list[dict]:
    """``train.srnet`` as a list: one SRNet spec, or several trained side by side."""
    srnet = cfg["train"]["srnet"]
    return srnet if isinstance(srnet, list) else [srnet]


def _fill_srnet(cfg: dict) -> None:
    """Each ``train.srnet`` entry BasicSR-style (see fill_typed), plus an optional ``name`` that
    renames its rows; names are unique, since they name the model folders and the table's rows."""
    entries, several = srnet_entries(cfg), isinstance(cfg["train"]["srnet"], list)
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        key = f"train.srnet.{i}" if several else "train.srnet"
        fill_typed(entry, SRNETS, key, extra=("name",))
        name = entry.get("name", entry["type"])
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(f"key '{key}.name': {name!r} must be lower-case letters, digits "
                              f"and '_' (it names the model folder and the table's rows)")
        if name in seen:
            raise ConfigError(f"key '{key}': SRNet name {name!r} is also entry {seen[name]}; give each "
                              f"entry of train.srnet a distinct 'name'")
        seen[name] = i


def _check_lambdas(cfg: dict) -> None:
    """Short enough as a file-name tag (the ``lam`` wildcard matches every tag); finite: _check_finite."""
    # deferred: loads cv2
    from .methods import lambda_tag
    for key, values in (("lambda", [cfg["lambda"]]), ("lambdas", cfg["lambdas"])):
        for v in values:
            if len(lambda_tag(v)) > 24:
                raise ConfigError(f"key '{key}': {v!r} needs more than 24 digits as a decimal "
                                  f"({lambda_tag(v)[:30]}...); use a value with fewer decimals")


def _check_semantics(cfg: dict) -> None:
    """Checks JSON schema cannot express: SRNet and degradation kwargs, lambdas, landmarks vs images,
    crop divisibility."""
    # deferred: loads torch, cv2
    from .degradation.models import resolve
    from .training.pyramid import PYRAMID_FACTORS

    _fill_srnet(cfg)
    resolve(cfg["degrade"]["model"], "degrade.model")
    _check_lambdas(cfg)
    if cfg["align"]["landmarks"].get("celeba") == "authors" and cfg["data"]["celeba"]["images"] != "in_the_wild":
        raise ConfigError("key 'align.landmarks.celeba': the authors' CelebA landmarks are pixels of the "
                          "in-the-wild images; set data.celeba.images: in_the_wild (or landmarks 'detect')")
    if "lfw" not in cfg["evaluate"]["datasets"]:
        raise ConfigError(f"key 'evaluate.datasets': {cfg['evaluate']['datasets']} lacks 'lfw'; LFW is always "
                          f"evaluated (the paper's table and the report), so list it, e.g. [lfw, xqlfw]")
    geometry = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    for factor in cfg["degrade"]["factors"]:
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'degrade.factors': factor {factor} does not divide the {geometry.height}x{geometry.width} "
                f"crop of fnet {cfg['fnet']!r} (geometry {geometry.name})")
    _check_matrix(cfg)
    scale = SRNETS.get(srnet_entries(cfg)[0]["type"]).scale
    for factor in PYRAMID_FACTORS:
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'fnet': the {geometry.height}x{geometry.width} crop of {cfg['fnet']!r} is not divisible by "
                f"{factor}, which the x{scale} multi-scale training pyramid {PYRAMID_FACTORS} needs")


def evaluated_methods(cfg: dict) -> list[str]:
    """Every method evaluated at the low resolutions: baselines, SRNets trained here, authors' checkpoints."""
    # deferred: loads cv2
    from .methods import authors_method, sr_method
    trained = [sr_method(n, lam) for n in srnet_names(cfg) for lam in trained_lambdas(cfg)]
    authors = [authors_method(n) for n in cfg["evaluate"]["authors_checkpoints"]]
    return list(cfg["evaluate"]["baselines"]) + trained + authors


def _check_matrix(cfg: dict) -> None:
    method = cfg["evaluate"]["matrix"]["method"]
    if method is not None and method not in evaluated_methods(cfg):
        raise ConfigError(f"key 'evaluate.matrix.method': {method!r} is not evaluated in this config; use one of "
                          f"{', '.join(evaluated_methods(cfg))} (or null for no matrix)")


def check_inputs(cfg: dict) -> dict:
    """Cheap checks of the config against local input files, before the DAG runs (Snakemake's
    common.smk, ``srlrfr config``): ``evaluate.folds`` against the LFW pairs file's header."""
    # deferred: loads pandas
    from .data.lfw import check_folds
    problem = check_folds(cfg)
    if problem:
        raise ConfigError(f"key 'evaluate.folds': {problem}. Fix: set evaluate.folds to a value that fits "
                          f"(10 for the official file, a multiple of the sets for a smaller one)")
    return cfg


def load(paths: list[str | Path] | str | Path = "params.yaml") -> dict:
    """Read params.yaml plus optional overlays (later files win), then validate."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, read_yaml(path))
    return validate(merged)


def snakemake_params(workflow_files: list, cli_files: list, cli_config: dict, replace: bool = False) -> dict:
    """The params Snakemake read (``configfile:``, then ``--configfile`` in order, then ``--config``),
    merged again with :func:`deep_merge`, unvalidated.

    Snakemake's own merge is mapping by mapping at every level, so an overlay's
    ``train.srnet: {type: imdn}`` kept EDSR's ``n_blocks`` and failed validation. With
    ``--replace-workflow-config`` the workflow's own file is dropped, as Snakemake drops it.
    """
    given = {Path(f).absolute() for f in cli_files}
    own = [] if replace else [f for f in workflow_files if Path(f).absolute() not in given]
    merged: dict = {}
    for path in [*own, *cli_files]:
        merged = deep_merge(merged, read_yaml(path))
    return deep_merge(merged, dict(cli_config or {}))


def trained_lambdas(cfg: dict) -> list[str]:
    """The grid plus the experiment's lambda, as tags, sorted numerically."""
    # deferred: loads cv2
    from .methods import lambda_tag
    values = {float(v) for v in cfg["lambdas"]} | {float(cfg["lambda"])}
    return [lambda_tag(v) for v in sorted(values)]


def srnet_names(cfg: dict) -> list[str]:
    """The SRNets' names in method names (each entry's ``name``, default its type), in config order."""
    return [e.get("name", e["type"]) for e in srnet_entries(cfg)]


def srnet_entry(cfg: dict, name: str) -> dict:
    """The ``train.srnet`` entry called ``name``."""
    for entry in srnet_entries(cfg):
        if entry.get("name", entry["type"]) == name:
            return entry
    raise ConfigError(f"key 'train.srnet': no SRNet named {name!r} (configured: {', '.join(srnet_names(cfg))})")
