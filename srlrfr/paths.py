"""Paths given in params: one resolver, relative to the repository root, never to the current folder.

``dvc exp run`` (and each entry of ``dvc queue start``) runs the pipeline in a
temporary copy, ``<repo>/.dvc/tmp/exps/<name>/``. A relative data path such as
``../shared/data/...`` or ``data/downloads`` written for the repository would
point nowhere there, and every queued experiment would fill a cache of its own.
So a relative path is joined to the real repository: the folder that holds that
``.dvc/tmp/exps`` when running inside such a copy, else the workflow's folder.
The settings Snakemake passes to rules keep the values as written (relative), so
a clone elsewhere plans the same jobs; steps resolve them here, once, at start.

Keys holding a path carry ``x-path: true`` in the params schema; the values in
KEYWORDS (``download`` and the like) name a behaviour, not a file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .config import load_schema

KEYWORDS = frozenset({"download", "package", "detect", "authors"})
EXPS_TMP = (".dvc", "tmp", "exps")
ROOT_ENV = "SRLRFR_ROOT"


def repo_root(cwd: str | os.PathLike | None = None) -> Path:
    """``$SRLRFR_ROOT`` if set; else the real repository of ``cwd`` (default: the current folder)."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = Path(cwd or os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - len(EXPS_TMP)):
        if parts[i:i + len(EXPS_TMP)] == EXPS_TMP:
            return Path(*parts[:i])
    # a subfolder of a checkout: its top (the folder with workflow/Snakefile), not the current folder
    return next((d for d in (here, *here.parents) if (d / "workflow" / "Snakefile").is_file()), here)


def resolve(value: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``~`` and ``$VARS`` expanded; a relative path joined to ``root`` (default: :func:`repo_root`)."""
    p = Path(os.path.expandvars(os.path.expanduser(str(value))))
    return p if p.is_absolute() else Path(root or repo_root()) / p


def resolve_params(cfg: dict, schema: dict | None = None) -> dict:
    """A copy of validated params with every ``x-path`` value resolved to an absolute path."""
    schema = schema or load_schema()
    root = repo_root()
    return _walk(schema, schema, cfg, lambda v: str(resolve(v, root)))


def relative_params(cfg: dict, schema: dict | None = None) -> dict:
    """A copy of resolved params with paths inside the repository shown relative to it again.

    For records that must read the same in every clone (the report), not for opening files.
    """
    schema = schema or load_schema()
    root = repo_root()

    def relative(value: str) -> str:
        p = Path(value)
        return os.path.relpath(p, root) if p.is_absolute() and p.is_relative_to(root) else value
    return _walk(schema, schema, cfg, relative)


def _node(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target: Any = schema
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _walk(schema: dict, node: dict, value: Any, fn: Callable[[str], str]) -> Any:
    node = _node(schema, node)
    if node.get("x-path"):
        if isinstance(value, str) and value not in KEYWORDS:
            return fn(value)
        return value
    if isinstance(value, dict):
        props = node.get("properties", {})
        return {k: _walk(schema, props[k], v, fn) if isinstance(props.get(k), dict) else v
                for k, v in value.items()}
    return value
