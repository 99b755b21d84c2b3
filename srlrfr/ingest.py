"""Ingest step: resolve a data source (download or local copy) and index it."""
from __future__ import annotations

from pathlib import Path

from .data.celeba import ingest_celeba
from .data.lfw import ingest_lfw
from .registry import DATASETS


@DATASETS.register("lfw")
def ingest_lfw_source(*, images: str, pairs: str, folds: int, cache: str, out_index, out_pairs):
    from .data.fetch import resolve_lfw_images, resolve_lfw_pairs
    root = resolve_lfw_images(images, Path(cache) / "lfw")
    pairs_path = resolve_lfw_pairs(pairs, Path(cache) / "lfw")
    return ingest_lfw(root, pairs_path, folds, out_index, out_pairs)


@DATASETS.register("celeba")
def ingest_celeba_source(*, source: str, cache: str, out_index, max_identities=None, images_per_identity=None):
    from .data.fetch import resolve_celeba
    images_dir, identity_file = resolve_celeba(source, Path(cache) / "celeba")
    return ingest_celeba(images_dir, identity_file, out_index,
                         max_identities=max_identities, images_per_identity=images_per_identity)
