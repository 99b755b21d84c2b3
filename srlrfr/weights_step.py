"""Weight preparation steps: FNet weights as plain .pt files, authors' SRNets imported."""
from __future__ import annotations

import shutil
from pathlib import Path

from .atomic import atomic_path, write_json


def prepare_fnet_weights(fnet: str, source: str, out, *, cache: str = "data/downloads",
                         provenance=None) -> Path:
    """Produce ``out``: a state dict that loads into the registered FNet ``fnet``.

    ``provenance`` (a .json path) records where the weights came from and the
    source file's hash.
    """
    out = Path(out)
    if fnet == "dlib_resnet34":
        from .models.fnets.dlib_resnet import convert_dlib_weights, default_dat_path
        dat = default_dat_path() if source == "package" else Path(source)
        info = convert_dlib_weights(dat, out)
        print(f"converted {info['source']} (sha256 {info['sha256']}) -> {out}")
    elif fnet == "sphereface20":
        from .data.download import git_blob_id
        from .data.fetch import fetch_authors_weights
        # Downloads, folders and single files alike are checked against the blob id.
        src = fetch_authors_weights("sface", Path(cache) / "authors", source=source)
        with atomic_path(out) as tmp:
            shutil.copyfile(src, tmp)
        info = {"source": str(src), "git_blob": git_blob_id(src), "out": str(out)}
    else:
        raise ValueError(f"no weight preparation known for fnet {fnet!r}")
    if provenance:
        write_json(provenance, {"fnet": fnet, "requested": source, **info})
    # Fail here, not in training, if the file does not fit the architecture.
    from .models.fnet import load_fnet
    load_fnet(fnet, out, "cpu")
    return out


def import_authors_checkpoint(name: str, source: str, out, *, cache: str = "data/downloads") -> Path:
    from .data.fetch import fetch_authors_weights
    from .models.srnet import import_authors_edsr
    pth = fetch_authors_weights(name, Path(cache) / "authors", source=source)
    import_authors_edsr(pth, out)
    return Path(out)
