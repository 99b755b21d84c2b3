"""Rule ingest: a dataset's source (download or a local copy) -> its index folder.

``data/index/<dataset>/images.csv`` (+ ``pairs.csv`` for verification sets);
what each dataset reads and writes is its registry entry (srlrfr.data).
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path
from ..catalog import load_all
from ..registry import DATASETS

NAME = "ingest"
HELP = "resolve a dataset source (download or local copy) and index it"


def ingest(dataset: str, cfg: dict, out_dir: str | Path) -> Path:
    load_all()
    with atomic_path(out_dir, is_dir=True) as tmp:
        DATASETS.get(dataset).ingest(cfg, tmp)
    return Path(out_dir)


def add_arguments(p) -> None:
    load_all()
    p.add_argument("dataset", choices=DATASETS.keys())
    p.add_argument("--out", required=True, help="index folder (data/index/<dataset>)")


def main(args, cfg) -> None:
    ingest(args.dataset, cfg, args.out)
