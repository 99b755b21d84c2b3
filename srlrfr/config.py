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

import jsonschema
import yaml


class ConfigError(ValueError):
    """A params file that fails validation; the message names the key."""


def load_schema() -> dict:
    """The params schema, with every registry-backed enum filled from the registries.

    The YAML file holds structure, defaults and descriptions; the names (FNets,
    SRNets, kernels, baselines, datasets) come from srlrfr.registry, so adding
    one never means editing the schema.
    """
    from .catalog import load_all
    from .methods import AUTHORS_CHECKPOINTS
    from .registry import BASELINES, DATASETS, FNETS, RESIZE_KERNELS, SRNETS
    load_all()
    schema = yaml.safe_load(resources.files("srlrfr").joinpath("schema/params.schema.yaml").read_text())
    props = schema["properties"]
    props["fnet"]["enum"] = FNETS.keys()
    props["fnets"]["properties"] = {
        name: {"type": "object", "additionalProperties": False, "default": {},
               "properties": {"weights": {"type": "string", "minLength": 1, "default": FNETS.get(name).weights_default,
                                          "description": FNETS.get(name).weights}}}
        for name in FNETS.keys()}
    props["degrade"]["properties"]["kernel"]["enum"] = RESIZE_KERNELS.keys()
    props["train"]["properties"]["srnet"]["properties"]["type"]["enum"] = SRNETS.keys()
    evaluate = props["evaluate"]["properties"]
    evaluate["baselines"]["items"]["enum"] = BASELINES.keys()
    evaluate["authors_checkpoints"]["items"]["enum"] = sorted(AUTHORS_CHECKPOINTS)
    props["align"]["properties"]["landmarks"]["properties"] = {
        name: {"type": "string", "minLength": 1, "default": "detect"} for name in DATASETS.keys()}
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


def _key_path(error: jsonschema.ValidationError) -> str:
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
            "restore the file with `git checkout -- params.yaml` (or fix the value) before the next run")


def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate(config: dict | None) -> dict:
    """Return a validated copy of ``config`` with every default filled in."""
    schema = load_schema()
    cfg = _fill_defaults(schema, schema, copy.deepcopy(config or {}))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid params: " + "; ".join(_key_path(e) for e in errors) + _dvc_hint())
    _check_semantics(cfg)
    return cfg


def _fill_srnet(cfg: dict) -> None:
    """``train.srnet`` BasicSR-style: ``type`` names a registered SRNet, the other keys are
    its kwargs, checked against (and completed from) the spec's defaults."""
    from .registry import SRNETS
    srnet = cfg["train"]["srnet"]
    spec = SRNETS.get(srnet["type"])
    unknown = sorted(set(srnet) - set(spec.defaults) - {"type", "name"})
    if unknown:
        raise ConfigError(f"unknown key 'train.srnet.{unknown[0]}' for srnet type {srnet['type']!r} "
                          f"(allowed here: {', '.join(['name', 'type', *sorted(spec.defaults)])})")
    if not re.fullmatch(r"[a-z0-9_]+", str(srnet.get("name", srnet["type"]))):
        raise ConfigError(f"key 'train.srnet.name': {srnet['name']!r} must be lower-case letters, digits "
                          f"and '_' (it names the model folder and the table's rows)")
    for key, default in spec.defaults.items():
        srnet.setdefault(key, copy.deepcopy(default))
        if type(srnet[key]) is not type(default) and not (isinstance(default, float) and isinstance(srnet[key], int)):
            raise ConfigError(f"key 'train.srnet.{key}': {srnet[key]!r} is not a {type(default).__name__} "
                              f"(the default of {srnet['type']} is {default!r})")


def _check_lambdas(cfg: dict) -> None:
    """Finite, and short enough as a file-name tag (the ``lam`` wildcard matches every tag)."""
    from .methods import lambda_tag
    for key, values in (("lambda", [cfg["lambda"]]), ("lambdas", cfg["lambdas"])):
        for v in values:
            if not math.isfinite(v):
                raise ConfigError(f"key '{key}': {v!r} is not a finite number (expected a weight >= 0)")
            if len(lambda_tag(v)) > 24:
                raise ConfigError(f"key '{key}': {v!r} needs more than 24 digits as a decimal "
                                  f"({lambda_tag(v)[:30]}...); use a value with fewer decimals")


def _check_semantics(cfg: dict) -> None:
    """Checks JSON schema cannot express: SRNet kwargs, lambdas, crop divisibility."""
    from .registry import FNETS, GEOMETRIES, SRNETS
    from .training.pyramid import PYRAMID_FACTORS

    _fill_srnet(cfg)
    _check_lambdas(cfg)
    geometry = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    for factor in cfg["degrade"]["factors"]:
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'degrade.factors': factor {factor} does not divide the {geometry.height}x{geometry.width} "
                f"crop of fnet {cfg['fnet']!r} (geometry {geometry.name})")
    scale = SRNETS.get(cfg["train"]["srnet"]["type"]).scale
    for factor in PYRAMID_FACTORS:
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'fnet': the {geometry.height}x{geometry.width} crop of {cfg['fnet']!r} is not divisible by "
                f"{factor}, which the x{scale} multi-scale training pyramid {PYRAMID_FACTORS} needs")


def check_inputs(cfg: dict) -> dict:
    """Cheap checks of the config against local input files, before the DAG runs (Snakemake's
    common.smk, ``srlrfr config``): ``evaluate.folds`` against the LFW pairs file's header."""
    from .data.lfw import check_folds
    problem = check_folds(cfg)
    if problem:
        raise ConfigError(f"key 'evaluate.folds': {problem}. Fix: set evaluate.folds to a value that fits "
                          f"(10 for the official file, a multiple of the sets for a smaller one)")
    return cfg


def read_yaml(path: str | Path) -> dict:
    """One params file as a mapping; errors name the file (and the line of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:  # a file object: yaml's marks name the file
            data = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}. Fix the line named "
                          f"(`srlrfr config --params {path}` checks it)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def load(paths: list[str | Path] | str | Path = "params.yaml") -> dict:
    """Read params.yaml plus optional overlays (later files win), then validate."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, read_yaml(path))
    return validate(merged)


def trained_lambdas(cfg: dict) -> list[str]:
    """The grid plus the experiment's lambda, as tags, sorted numerically."""
    from .methods import lambda_tag
    values = {float(v) for v in cfg["lambdas"]} | {float(cfg["lambda"])}
    return [lambda_tag(v) for v in sorted(values)]


def srnet_name(cfg: dict) -> str:
    """The SRNet's name in method names (``train.srnet.name``, default its type)."""
    return cfg["train"]["srnet"].get("name", cfg["train"]["srnet"]["type"])
