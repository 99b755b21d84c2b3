"""BasicSR-style typed entries, ``{type: <name>, **kwargs}``: checked against a registry's spec.

Below the registries (srlrfr.layers): a registry module (say
srlrfr.degradation.models) checks its own nested entries with ``fill_typed``,
and the config checks ``train.srnet`` and ``degrade.model`` with it.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from .errors import ConfigError
from .yamlio import yaml_number


def fill_typed(node: Any, registry, key: str, extra: tuple[str, ...] = ()):
    """A BasicSR-style entry ``{type: <name>, **kwargs}``: ``type`` names an entry of ``registry``
    (a spec with ``defaults`` and optionally ``check``); the other keys are its kwargs, checked
    against and completed from its defaults (in place). Returns the spec. Errors name ``key``."""
    if not isinstance(node, dict) or "type" not in node:
        raise ConfigError(f"key '{key}': expected a mapping with a 'type' ({', '.join(registry.keys())}), "
                          f"got {node!r}")
    try:
        spec = registry.get(node["type"])
    except KeyError as exc:
        raise ConfigError(f"key '{key}.type': {exc.args[0]}") from None
    unknown = sorted(set(node) - set(spec.defaults) - {"type", *extra})
    if unknown:
        raise ConfigError(f"unknown key '{key}.{unknown[0]}' for {registry.kind} type {node['type']!r} "
                          f"(allowed here: {', '.join(sorted(['type', *extra, *spec.defaults]))})")
    for name, default in spec.defaults.items():
        node.setdefault(name, copy.deepcopy(default))
        if isinstance(default, float) and isinstance(node[name], str) and yaml_number(node[name]) is not None:
            node[name] = yaml_number(node[name])  # Snakemake's YAML 1.1 leaves 1e-05 a string
        value = node[name]
        if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
            raise ConfigError(f"key '{key}.{name}': {value!r} is not a {type(default).__name__} "
                              f"(the default of {node['type']} is {default!r})")
    problems = getattr(spec, "check", lambda params: {})(node) or _kwarg_bounds(node, spec.defaults)
    if problems:
        name, problem = next(iter(problems.items()))
        raise ConfigError(f"key '{key}.{name}': {problem}")
    return spec


def _kwarg_bounds(node: dict, defaults: dict) -> dict[str, str]:
    """What every typed kwarg must be: a finite float; a size or count (positive int default) >= 1."""
    problems = {}
    for name, default in defaults.items():
        value = node[name]
        if isinstance(value, float) and not math.isfinite(value):
            problems[name] = f"{value!r} is not a finite number"
        elif type(default) is int and default > 0 and value < 1:
            problems[name] = f"{value!r} must be >= 1 (a size or a count; the default is {default})"
    return problems
