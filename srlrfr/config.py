"""params.yaml: load, overlay, fill defaults from the JSON schema, validate.

One config drives everything: Snakemake's configfile, DVC's params file and
the CLI all pass through ``validate``. Errors name the offending key.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A params file that fails validation; the message names the key."""


def load_schema() -> dict:
    text = resources.files("srlrfr").joinpath("schema/params.schema.yaml").read_text()
    return yaml.safe_load(text)


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
    expected = error.schema.get("description") or error.message
    return f"key '{path or '<root>'}': {error.message} (expected: {expected})"


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
        raise ConfigError("invalid params: " + "; ".join(_key_path(e) for e in errors))
    _check_semantics(cfg)
    return cfg


def _check_semantics(cfg: dict) -> None:
    """Checks JSON schema cannot express: registry names and crop divisibility."""
    from . import degrade  # noqa: F401  (registers resize kernels)
    from .models import catalog  # noqa: F401  (registers networks and geometries)
    from .registry import FNETS, RESIZE_KERNELS, SRNETS, GEOMETRIES

    for key, name, reg in (("fnet", cfg["fnet"], FNETS), ("degrade.kernel", cfg["degrade"]["kernel"], RESIZE_KERNELS),
                           ("train.srnet", cfg["train"]["srnet"], SRNETS)):
        if name not in reg:
            raise ConfigError(f"key '{key}': unknown {reg.kind} {name!r} (registered: {', '.join(reg.keys())})")
    geometry = GEOMETRIES.get(FNETS.get(cfg["fnet"]).geometry)
    for factor in cfg["degrade"]["factors"]:
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'degrade.factors': factor {factor} does not divide the {geometry.height}x{geometry.width} "
                f"crop of fnet {cfg['fnet']!r} (geometry {geometry.name})")
    scale = SRNETS.get(cfg["train"]["srnet"]).scale
    for factor in (2, 4, 8, 16):
        if geometry.height % factor or geometry.width % factor:
            raise ConfigError(
                f"key 'fnet': the {geometry.height}x{geometry.width} crop of {cfg['fnet']!r} is not divisible by "
                f"{factor}, which the x{scale} multi-scale training pyramid (1/2 .. 1/16) needs")


def load(paths: list[str | Path] | str | Path = "params.yaml") -> dict:
    """Read params.yaml plus optional overlays (later files win), then validate."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    merged: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"params file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
        merged = deep_merge(merged, data)
    return validate(merged)


def lambda_tag(value: float) -> str:
    """Stable text form of a lambda for file names and metric keys: 0, 0.5, 0.25."""
    return f"{float(value):g}"


def trained_lambdas(cfg: dict) -> list[str]:
    """The grid plus the experiment's lambda, as tags, sorted numerically."""
    values = {float(v) for v in cfg["lambdas"]} | {float(cfg["lambda"])}
    return [lambda_tag(v) for v in sorted(values)]
