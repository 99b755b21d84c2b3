"""What the params ask for: data sets, weights, landmarks; present, local, or to download.

Local sources are checked with the same resolvers the ingest uses (a folder
is only looked at, never written). Downloads are listed with their mirrors
for the network check, and everything a source adds to the disk goes into
the ``Plan`` for the disk check.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data import fetch, sources
from ..data.archive import is_complete
from ..registry import FNETS, SRNETS
from .base import FAIL, FIX_LOCK, INFO, OK, Check, human, params_path

# Published file sizes (about; bytes) and counts, for the disk estimate.
LFW_TGZ_BYTES = 180_000_000                 # lfw.tgz
CELEBA_ALIGNED_ZIP_BYTES = 1_443_490_838    # img_align_celeba.zip
SMALL_FILE_BYTES = 4 * 2**20                # identity_CelebA.txt: a few MB at most
LFW_VIEW2_IMAGES = 7_700                    # distinct images in the 6,000 pairs of View 2
LFW_IMAGES, CELEBA_IMAGES, CELEBA_IDENTITIES = 13_233, 202_599, 10_177
FILE_SLACK = 2048                           # half a 4 KiB block lost per extracted file


@dataclass(frozen=True)
class Download:
    key: str                     # the params key that asks for it
    filename: str
    urls: tuple[str, ...]        # every mirror, in order
    dest: Path
    size: int                    # bytes still to fetch
    hint: str                    # how to use a local copy instead


@dataclass(frozen=True)
class DiskItem:
    what: str
    path: Path                   # where it is written (decides the filesystem)
    size: int                    # bytes the run still has to write there


@dataclass
class Plan:
    """What checking the sources found out: downloads due, disk use, images to process."""
    downloads: list[Download] = field(default_factory=list)
    disk: list[DiskItem] = field(default_factory=list)
    lfw_images: int = LFW_VIEW2_IMAGES
    celeba_images: int = CELEBA_IMAGES


def _without(message: str, hint: str) -> str:
    return message.replace(hint, "").strip()


def _want(plan: Plan, key: str, artefacts, dest_dir: Path, size: int, what: str, hint: str) -> Check:
    """A file to download: present in the cache, partly there, or due (then in plan.downloads)."""
    art = artefacts[0]
    dest = dest_dir / art.filename
    if dest.is_file():
        return Check("data", key, OK, f"{what}: {art.filename} already downloaded in {dest_dir} "
                                      f"(checksum verified when the step runs)")
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    urls = tuple(u for a in artefacts for u in a.urls)
    plan.downloads.append(Download(key, art.filename, urls, dest, max(size - have, 0), hint))
    plan.disk.append(DiskItem(f"download {art.filename}", dest, max(size - have, 0)))
    resumed = f", resuming after {human(have)}" if have else ""
    return Check("data", key, INFO, f"{what}: will download {art.filename} (~{human(size)}{resumed}) "
                                    f"into {dest_dir}")


def _extraction(plan: Plan, archive: Path, dest_dir: Path, size: int, files: int) -> None:
    if not (archive.is_file() and is_complete(dest_dir, archive)):
        plan.disk.append(DiskItem(f"extract {archive.name}", dest_dir, size + files * FILE_SLACK))


def _count_images(root: Path) -> int:
    n = 0
    for person in os.scandir(root):
        if person.is_dir():
            n += sum(1 for f in os.scandir(person.path) if f.name.lower().endswith((".jpg", ".jpeg", ".png")))
    return n


def check_lfw(cfg: dict, root: Path, plan: Plan) -> list[Check]:
    # deferred: loads pandas
    from ..data.lfw import parse_pairs
    data, cache = cfg["data"]["lfw"], params_path(root, cfg["data"]["cache"]) / "lfw"  # as the ingest step
    out, images = [], None
    src = data["images"]
    if src == fetch.DOWNLOAD:
        art = sources.LFW_IMAGE_ARCHIVES["original"]
        out.append(_want(plan, "data.lfw.images", art, cache, LFW_TGZ_BYTES, "LFW images", fetch.HINT_LFW))
        _extraction(plan, cache / art[0].filename, cache / "lfw", LFW_TGZ_BYTES, LFW_IMAGES)
    else:
        check, images = _local_images(plan, "data.lfw.images", "LFW", params_path(root, src), cache,
                                      fetch.resolve_lfw_images, fetch.HINT_LFW, LFW_IMAGES)
        out.append(check)
    src = data["pairs"]
    pairs_file = None
    if src == fetch.DOWNLOAD:
        out.append(_want(plan, "data.lfw.pairs", sources.LFW_PAIRS_CANDIDATES, cache, SMALL_FILE_BYTES // 20,
                         "LFW pairs", fetch.HINT_PAIRS))
        pairs_file = cache / sources.LFW_PAIRS.filename
    else:
        try:
            pairs_file = fetch.resolve_lfw_pairs(params_path(root, src), cache)
        except (FileNotFoundError, ValueError) as exc:
            out.append(Check("data", "data.lfw.pairs", FAIL, _without(str(exc), fetch.HINT_PAIRS),
                             fix=fetch.HINT_PAIRS))
    if pairs_file is not None and pairs_file.is_file():
        try:
            pairs, _, _ = parse_pairs(pairs_file)
        except ValueError as exc:
            out.append(Check("data", "data.lfw.pairs", FAIL, str(exc), fix=fetch.HINT_PAIRS))
            return out
        used = set(pairs["left"]) | set(pairs["right"])
        plan.lfw_images = len(used)
        missing = sorted(p for p in used if not (images / p).is_file()) if images else []
        if missing:  # the ingest would stop on these; e.g. a pairs file of another LFW release
            out.append(Check("data", "data.lfw.pairs", FAIL, f"{len(missing):,} of the {len(used):,} images "
                             f"{pairs_file.name} names are not in {images} (e.g. {missing[0]})",
                             fix="use the pairs.txt that belongs to these images"))
        elif src != fetch.DOWNLOAD:
            out.append(Check("data", "data.lfw.pairs", OK,
                             f"{len(pairs):,} pairs over {plan.lfw_images:,} images in {pairs_file}"))
    return out


def celeba_selection(identity_file: Path, max_identities: int | None, per_identity: int | None) -> int:
    """Images the ingest keeps: ids ascending, at most ``per_identity`` each, the first ``max_identities``."""
    counts: dict[int, int] = {}
    for line in identity_file.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            counts[int(fields[1])] = counts.get(int(fields[1]), 0) + 1
    kept = [min(counts[i], per_identity or counts[i]) for i in sorted(counts)]
    return sum(kept[:max_identities] if max_identities else kept)


def _celeba_published(c: dict) -> int:
    """The published totals, capped as the ingest caps them (no identity file to count)."""
    per_id = min(c["images_per_identity"] or CELEBA_IMAGES, CELEBA_IMAGES / CELEBA_IDENTITIES)
    return int(min(c["max_identities"] or CELEBA_IDENTITIES, CELEBA_IDENTITIES) * per_id)


def check_celeba(cfg: dict, root: Path, plan: Plan) -> list[Check]:
    c = cfg["data"]["celeba"]
    cache = params_path(root, cfg["data"]["cache"]) / "celeba"  # as the ingest step
    src, key = c["source"], "data.celeba.source"
    if src == fetch.DOWNLOAD:
        out = [_want(plan, key, (sources.CELEBA_IDENTITY,), cache, SMALL_FILE_BYTES, "CelebA identities",
                     fetch.HINT_CELEBA),
               _want(plan, key, (sources.CELEBA_IMG_ALIGN_ZIP,), cache, CELEBA_ALIGNED_ZIP_BYTES,
                     "CelebA aligned images", fetch.HINT_CELEBA)]
        _extraction(plan, cache / sources.CELEBA_IMG_ALIGN_ZIP.filename, cache / "img_align_celeba",
                    CELEBA_ALIGNED_ZIP_BYTES, CELEBA_IMAGES)
        identity = cache / sources.CELEBA_IDENTITY.filename
        if identity.is_file():
            plan.celeba_images = celeba_selection(identity, c["max_identities"], c["images_per_identity"])
        else:
            plan.celeba_images = _celeba_published(c)
        return out
    try:
        images, identity = fetch.resolve_celeba(params_path(root, src), cache)  # a local folder is only looked at
    except FileNotFoundError as exc:
        plan.celeba_images = _celeba_published(c)
        return [Check("data", key, FAIL, _without(str(exc), fetch.HINT_CELEBA), fix=fetch.HINT_CELEBA)]
    plan.celeba_images = celeba_selection(identity, c["max_identities"], c["images_per_identity"])
    return [Check("data", key, OK, f"CelebA: {identity.name} and {images}; {plan.celeba_images:,} images selected")]


def state_bytes(build: Callable, **kwargs) -> int:
    """Bytes of a network's state dict, built on the meta device (no memory, no time)."""
    # deferred: loads torch
    import torch
    with torch.device("meta"):
        net = build(**kwargs)
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


def check_weights(cfg: dict, root: Path, plan: Plan, *, fnet: bool = True, authors: bool = True) -> list[Check]:
    """The FNet's weights (``fnet``) and the authors' SRNet checkpoints (``authors``)."""
    from ..models import catalog  # noqa: F401  (fills the registries)
    cache = params_path(root, cfg["data"]["cache"]) / "authors"  # as the fnet_weights step
    fnet_name, out = cfg["fnet"], []
    if fnet:
        out.append(_fnet_weights(FNETS.get(fnet_name), cfg["fnets"][fnet_name]["weights"], root, cache, plan))
    edsr = SRNETS.get("edsr")
    for name in cfg["evaluate"]["authors_checkpoints"] if authors else ():
        artefacts, checkpoint = sources.AUTHORS_WEIGHTS[name]
        size = state_bytes(edsr.build, **edsr.defaults)
        src = cfg["evaluate"]["authors_weights"]
        if src == fetch.DOWNLOAD:
            for art in artefacts:
                out.append(_want(plan, "evaluate.authors_weights", (art,), cache, size // len(artefacts),
                                 f"authors' {name}", fetch.HINT_WEIGHTS))
        else:
            folder = params_path(root, src)
            missing = [a.filename for a in artefacts if not (folder / a.filename).is_file()]
            if missing and not (folder / checkpoint).is_file():
                out.append(Check("data", "evaluate.authors_weights", FAIL,
                                 f"{name}: no {', '.join(missing)} (nor {checkpoint}) in {folder}",
                                 fix=fetch.HINT_WEIGHTS))
            else:
                out.append(Check("data", "evaluate.authors_weights", OK, f"{name}: in {folder}"))
        if not (cache / name).is_dir():
            plan.disk.append(DiskItem(f"extract {name}", cache / name, size))
    return out


def _fnet_weights(spec, src: str, root: Path, cache: Path, plan: Plan) -> Check:
    """The FNet's weights as its registry entry says what they need (FNetSpec.check_weights)."""
    key = f"fnets.{spec.name}.weights"
    if spec.check_weights is None:  # nothing declared: the default is prepare_weights' own; any other value a path
        if src == spec.weights_default:
            return Check("data", key, INFO, f"{src}: made by {spec.name}'s prepare_weights when fnet_weights runs "
                                            f"(its registry entry declares no check_weights)")
        path = params_path(root, src)
        return Check("data", key, OK, str(path)) if path.is_file() else Check(
            "data", key, FAIL, f"{path} does not exist", fix=f"set {key}: {spec.weights_default}, or the path of "
                                                             f"the weights")
    try:
        need = spec.check_weights(src, lambda value: params_path(root, value))
    except FileNotFoundError as exc:
        return Check("data", key, FAIL, str(exc), fix=FIX_LOCK)
    if need.download:
        return _want(plan, key, need.download, cache, state_bytes(spec.build), need.label, need.fix)
    if need.path.is_file():
        return Check("data", key, OK, str(need.path))
    return Check("data", key, FAIL, f"{need.path} does not exist", fix=need.fix)


def mtcnn_weights_dir() -> Path:
    """The folder srlrfr.face.mtcnn.weights_dir() reads, found without importing torchvision
    (seconds of the preflight); tests/test_doctor.py checks that the two agree."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'mtcnn' pip package (source of the MTCNN weights) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


# data/LFW.csv's size is known (METHOD.md); the CelebA list's is estimated (~60 bytes a line)
AUTHORS_LANDMARK_BYTES = {"lfw": 2_966_174, "celeba": 12 * 2**20}


def check_landmarks(cfg: dict, root: Path, datasets=("lfw", "celeba"), plan: Plan | None = None) -> list[Check]:
    out, detect = [], False
    cache = params_path(root, cfg["data"]["cache"]) / "authors"  # as the landmarks step
    for ds in datasets:
        src, key = cfg["align"]["landmarks"][ds], f"align.landmarks.{ds}"
        if src == "detect":
            detect = True
        elif src == fetch.AUTHORS:
            art = sources.AUTHORS_LANDMARKS[ds][0]
            out.append(_want(plan or Plan(), key, (art,), cache, AUTHORS_LANDMARK_BYTES[ds], f"authors' {ds} landmarks",
                             fetch.HINT_LANDMARKS))
        elif not params_path(root, src).is_file():
            out.append(Check("data", key, FAIL, f"landmark CSV {params_path(root, src)} does not exist",
                             fix=f"set {key}: detect, or the path of a landmark CSV"))
        else:
            out.append(Check("data", key, OK, str(params_path(root, src))))
    if detect:
        try:
            folder = mtcnn_weights_dir()
            missing = [f"{n}.lz4" for n in ("pnet", "rnet", "onet") if not (folder / f"{n}.lz4").is_file()]
            out.append(Check("data", "MTCNN weights", FAIL, f"missing {', '.join(missing)} in {folder}",
                             fix=f"pip install --force-reinstall mtcnn; or {FIX_LOCK}") if missing else
                       Check("data", "MTCNN weights", OK, str(folder)))
        except (FileNotFoundError, ImportError) as exc:
            out.append(Check("data", "MTCNN weights", FAIL, str(exc), fix=FIX_LOCK))
    return out


# XQLFW release files as its download page states their sizes (bytes, about)
XQLFW_BYTES = {"original": 195_200_000, "aligned_112": 57_900_000, "pairs": 161_000, "scores": 328_000}
XQLFW_IMAGES = 7_263


def _local_images(plan: Plan, key: str, label: str, path: Path, cache: Path, resolve, hint: str,
                  n_images: int) -> tuple[Check, Path | None]:
    """A local image source: an archive (its extraction into ``cache`` planned; the ingest step
    extracts it) or a folder, only scanned, by the ingest step's own ``resolve``. Returns the
    check and the resolved image folder (None for an archive or a problem)."""
    if path.is_file() and path.name.lower().endswith(fetch.ARCHIVE_SUFFIXES):
        size = path.stat().st_size
        _extraction(plan, path, cache / fetch._archive_stem(path), size, n_images)
        return Check("data", key, OK, f"{label} archive {path} ({human(size)}), extracted into {cache} by the "
                                      f"ingest step"), None
    if not path.exists():
        return Check("data", key, FAIL, f"{path} does not exist", fix=hint), None
    try:
        found = resolve(path, cache)
    except FileNotFoundError as exc:
        return Check("data", key, FAIL, _without(str(exc), hint), fix=hint), None
    return Check("data", key, OK, f"{_count_images(found):,} {label} images in {found}"), found


def check_xqlfw(cfg: dict, root: Path, plan: Plan) -> list[Check]:
    """data.xqlfw: each file present locally (resolved as the ingest does) or due for download."""
    data, cache = cfg["data"]["xqlfw"], params_path(root, cfg["data"]["cache"]) / "xqlfw"  # as the ingest step
    out = []
    if data["images"] == fetch.DOWNLOAD:
        art, _ = sources.XQLFW_VARIANTS[data["variant"]]
        size = XQLFW_BYTES[data["variant"]]
        out.append(_want(plan, "data.xqlfw.images", (art,), cache, size, "XQLFW images", fetch.HINT_XQLFW))
        _extraction(plan, cache / art.filename, cache / fetch._archive_stem(cache / art.filename), size, XQLFW_IMAGES)
    else:
        out.append(_local_images(plan, "data.xqlfw.images", "XQLFW", params_path(root, data["images"]), cache,
                                 fetch.resolve_xqlfw_images, fetch.HINT_XQLFW, XQLFW_IMAGES)[0])
    for key, art in (("pairs", sources.XQLFW_PAIRS), ("scores", sources.XQLFW_SCORES)):
        src = data[key]
        if src == fetch.DOWNLOAD:
            out.append(_want(plan, f"data.xqlfw.{key}", (art,), cache, XQLFW_BYTES[key], f"XQLFW {key}",
                             fetch.HINT_XQLFW))
        elif src is not None:
            try:
                found = fetch.resolve_xqlfw_file(params_path(root, src), cache, art, f"data.xqlfw.{key}")
                out.append(Check("data", f"data.xqlfw.{key}", OK, f"XQLFW {key}: {found}"))
            except FileNotFoundError as exc:
                out.append(Check("data", f"data.xqlfw.{key}", FAIL, _without(str(exc), fetch.HINT_XQLFW),
                                 fix=fetch.HINT_XQLFW))
    return out
