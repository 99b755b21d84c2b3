"""Params files as YAML 1.2 reads them: the one loader, reading a file, merging overlays.

Below the config (srlrfr.layers): the Snakefile reads params files with
``read_yaml`` before any validation, and ``fill_typed`` reads numbers with
``yaml_number``.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from .errors import ConfigError

# YAML 1.2 floats: PyYAML follows YAML 1.1, which wants a dot and a signed exponent, so it reads
# 1e-5 and 1e-05 (what `dvc exp run -S lambda=0.00001` writes) as strings.
YAML12_FLOAT = re.compile(r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+
    |[-+]?[0-9][0-9_]*\.[0-9_]*
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class Yaml12Loader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML 1.2 floats: the one loader of params files (read_yaml)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML12_FLOAT, list("-+0123456789."))


def yaml_number(text: str) -> int | float | None:
    """``text`` as a YAML 1.2 integer or float (1e-05, .inf, 3), else None."""
    text = text.strip()
    if not (re.fullmatch(r"[-+]?[0-9]+", text) or YAML12_FLOAT.match(text)):
        return None
    return yaml.load(text, Loader=Yaml12Loader)


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, mapping by mapping. A BasicSR-style entry whose ``type`` changes
    (``train.srnet: {type: imdn}`` over EDSR) is replaced whole: the old type's kwargs do not apply."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and "type" in value and value["type"] != old.get("type"):
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(old, dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict:
    """One params file as a mapping; errors name the file (and the line of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:  # a file object: yaml's marks name the file
            data = yaml.load(fh, Loader=Yaml12Loader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}. Fix the line named "
                          f"(`srlrfr config --params {path}` checks it)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
    return data
