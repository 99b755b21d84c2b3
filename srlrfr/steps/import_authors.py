"""Rule import_authors: one of the authors' released EDSR checkpoints, verified and converted."""
from __future__ import annotations

from pathlib import Path

from ..data.fetch import fetch_authors_weights

NAME = "import-authors"
HELP = "import an authors' EDSR checkpoint (verified by git blob id)"


def import_authors(name: str, source: str, out, *, cache: str = "data/downloads") -> Path:
    # deferred: loads torch
    from ..models.srnet import import_authors_edsr
    pth = fetch_authors_weights(name, Path(cache) / "authors", source=source)
    import_authors_edsr(pth, out)
    return Path(out)


def add_arguments(p) -> None:
    # deferred: loads cv2
    from ..methods import AUTHORS_CHECKPOINTS
    p.add_argument("name", choices=sorted(AUTHORS_CHECKPOINTS))
    p.add_argument("--out", required=True)


def main(args, cfg) -> None:
    import_authors(args.name, cfg["evaluate"]["authors_weights"], args.out, cache=cfg["data"]["cache"])
