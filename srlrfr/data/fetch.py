"""Resolve each input of the pipeline to a local path: a user's own copy, or a verified download.

Every resolver takes ``source``: the string ``"download"`` (fetch the
official artefact into ``cache_dir``, checksum-verified) or a local path (a
folder or archive the user already has; used read-only, archives are
extracted into ``cache_dir``).
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from . import sources
from .archive import extract
from .download import (
    ChecksumError,
    DownloadError,
    Transfer,
    download_first,
    download_google_drive,
    file_sha256,
    matches,
    verify,
)
from .sources import Artefact

DOWNLOAD = "download"
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip", ".7z")
HINT_LFW = ("Set data.lfw.images in params.yaml to the path of an extracted LFW folder "
            "(<root>/<Person_Name>/<Person_Name>_0001.jpg) or of lfw.tgz.")
HINT_PAIRS = "Set data.lfw.pairs in params.yaml to the path of a local pairs.txt."
HINT_CELEBA = ("Set data.celeba.source in params.yaml to a local CelebA folder holding "
               "identity_CelebA.txt and an images folder (images/, img_celeba/ or img_align_celeba/).")
HINT_LANDMARKS = ("Download the file from github.com/johnnysclai/SR_LRFR (folder data/) elsewhere and set "
                  "align.landmarks.<dataset> in params.yaml to its path.")
HINT_WEIGHTS = ("Download the files from github.com/johnnysclai/SR_LRFR (folder pretrained/) "
                "elsewhere and set fnets.sphereface20.weights / evaluate.authors_weights in "
                "params.yaml to the folder holding them.")
LFW_IMAGE_FOLDERS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled", "images")
CELEBA_IDENTITY = "identity_CelebA.txt"
# data.celeba.images -> CelebA's own folder name for that image set
CELEBA_IMAGE_SETS = {"aligned": "img_align_celeba", "in_the_wild": "img_celeba"}
AUTHORS = "authors"


def _is_download(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source == DOWNLOAD


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name



def local_folder_or_archive(source: str | os.PathLike, cache_dir: str | os.PathLike) -> Path | None:
    """A local folder as it is, an archive extracted into ``cache_dir``; None when ``source`` is neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and _is_archive(path):
        return extract(path, Path(cache_dir) / _archive_stem(path))
    return None

def fetch_artefact(candidates: tuple[Artefact, ...], dest_dir: str | os.PathLike, *,
                   hint: str, progress: bool = True) -> Path:
    """Download the first candidate that works into ``dest_dir``; each is checked by its own digests.

    Candidates are mirrors sharing a file name.  A copy already in ``dest_dir``
    that matches any candidate's digests is used without network access.
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / candidates[0].filename
    for art in candidates:
        if matches(dest, md5=art.md5, sha256=art.sha256, git_blob=art.git_blob):
            return dest
    errors: list[str] = []
    for i, art in enumerate(candidates):
        target = dest_dir / art.filename
        checks = dict(md5=art.md5, sha256=art.sha256, transfer=Transfer(progress=progress, hint=hint))
        try:
            if art.google_drive_id:
                return download_google_drive(art.google_drive_id, target, **checks)
            return download_first(art.urls, target, git_blob=art.git_blob, **checks)
        except (DownloadError, ChecksumError) as exc:
            if i == len(candidates) - 1 and not errors:
                raise
            errors.append(f"{art.name}: {exc}")
    raise DownloadError(f"could not fetch {candidates[0].filename} from any source:\n  "
                        + "\n  ".join(errors) + f"\n{hint}")


# ---------------------------------------------------------------- LFW

def _holds_people(folder: Path) -> bool:
    """True when some subfolder ``X`` holds an image named like ``X_0001.jpg`` (LFW layout)."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return False
    with entries:
        for entry in entries:
            if not entry.is_dir():
                continue
            pattern = re.compile(re.escape(entry.name) + r"_\d{4}\.(jpg|jpeg|png)$", re.I)
            with os.scandir(entry.path) as files:
                if any(pattern.match(f.name) for f in files):
                    return True
    return False


def _find_lfw_root(folder: Path, origin: Path) -> Path:
    if _holds_people(folder):
        return folder
    for name in LFW_IMAGE_FOLDERS:
        if _holds_people(folder / name):
            return folder / name
    raise FileNotFoundError(
        f"no LFW images in {origin}: expected <Person_Name>/<Person_Name>_0001.jpg folders there "
        f"or in one of its subfolders {', '.join(LFW_IMAGE_FOLDERS)}. {HINT_LFW}")


def resolve_lfw_images(source: str | os.PathLike, cache_dir: str | os.PathLike, *,
                       variant: str = "original", progress: bool = True) -> Path:
    """Folder whose subfolders are person names, from a folder, an archive or a download.

    ``variant`` picks the archive to download: "original" (lfw.tgz, what the
    authors used), "funneled" or "deepfunneled".
    """
    cache_dir = Path(cache_dir)
    if _is_download(source):
        if variant not in sources.LFW_IMAGE_ARCHIVES:
            raise ValueError(f"unknown LFW variant {variant!r}; expected one of "
                             f"{sorted(sources.LFW_IMAGE_ARCHIVES)}")
        archive = fetch_artefact(sources.LFW_IMAGE_ARCHIVES[variant], cache_dir,
                                 hint=HINT_LFW, progress=progress)
        return _find_lfw_root(extract(archive, cache_dir / _archive_stem(archive)), archive)
    path = Path(source).expanduser()
    if path.is_dir():
        return _find_lfw_root(path, path)
    if path.is_file() and _is_archive(path):
        return _find_lfw_root(extract(path, cache_dir / _archive_stem(path)), path)
    raise FileNotFoundError(f"LFW source {path} is neither a folder nor an archive "
                            f"({', '.join(ARCHIVE_SUFFIXES)}), nor {DOWNLOAD!r}. {HINT_LFW}")


def _check_pairs_header(path: Path) -> Path:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().split()
    if len(first) != 2 or not all(x.isdigit() for x in first):
        raise ValueError(f"{path} does not look like an LFW pairs file: expected a first line "
                         f"'<folds><TAB><pairs per class>' (e.g. '10\\t300'), got {' '.join(first)!r}")
    return path


def resolve_lfw_pairs(source: str | os.PathLike, cache_dir: str | os.PathLike, *,
                      progress: bool = True) -> Path:
    """A pairs.txt: a local file (or a folder holding one), or the official one downloaded."""
    if _is_download(source):
        return _check_pairs_header(fetch_artefact(sources.LFW_PAIRS_CANDIDATES, Path(cache_dir),
                                                  hint=HINT_PAIRS, progress=progress))
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "pairs.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no LFW pairs file at {path}. {HINT_PAIRS}")
    return _check_pairs_header(path)


# ---------------------------------------------------------------- CelebA

def _first_existing(candidates: list[Path], is_dir: bool) -> Path | None:
    for p in candidates:
        if (p.is_dir() if is_dir else p.is_file()):
            return p
    return None


def _celeba_wild_missing(cache_dir: Path) -> FileNotFoundError:
    parts = "\n".join(f"  {name}  (https://drive.google.com/uc?id={drive_id})"
                      for name, drive_id in sources.CELEBA_WILD_PARTS)
    return FileNotFoundError(
        "data.celeba.images is 'in_the_wild', which CelebA publishes only as a 14-part 7-Zip archive "
        "without checksums, so srlrfr does not download it. Fetch by hand, from CelebA's Google Drive "
        f"folder Img/img_celeba.7z/:\n{parts}\nthen run `7z x img_celeba.7z.001 -o{cache_dir}` so that "
        f"{cache_dir / sources.CELEBA_WILD_FOLDER}/000001.jpg exists, or set data.celeba.source in "
        f"params.yaml to a folder holding {CELEBA_IDENTITY} and img_celeba/.")


def _celeba_images(roots: list[Path], images: str, origin: Path) -> Path:
    """The folder of image set ``images`` under one of ``roots``; ``images/`` counts as either set."""
    wanted = CELEBA_IMAGE_SETS[images]
    found = _first_existing([r / n for r in roots for n in (wanted, "images")], True)
    if found is not None:
        return found
    for other_set, other in CELEBA_IMAGE_SETS.items():
        if other_set != images and _first_existing([r / other for r in roots], True) is not None:
            raise FileNotFoundError(
                f"{origin} holds {other}/ but not {wanted}/, and data.celeba.images is {images!r}. "
                f"Set data.celeba.images: {other_set} to use {other}/, or add {wanted}/. {HINT_CELEBA}")
    raise FileNotFoundError(f"no CelebA images folder in {origin}: expected {wanted}/ or images/ "
                            f"(or under Img/). {HINT_CELEBA}")


def resolve_celeba(source: str | os.PathLike, cache_dir: str | os.PathLike, *, images: str = "aligned",
                   progress: bool = True) -> tuple[Path, Path]:
    """(images folder, identity_CelebA.txt) from a local folder or a Google Drive download.

    ``images`` picks the image set: "aligned" (img_align_celeba) or
    "in_the_wild" (img_celeba, what the authors trained on). A local folder
    may be flat (identity_CelebA.txt beside images/, img_celeba/ or
    img_align_celeba/) or CelebA's own layout (Anno/ and Img/); a folder
    called images/ is taken for either set. The download fetches the aligned
    images (img_align_celeba.zip, the one image set CelebA publishes as a
    single checksummed file); in_the_wild downloads the identity file and
    expects img_celeba/ extracted by hand into ``cache_dir``.
    """
    if images not in CELEBA_IMAGE_SETS:
        raise ValueError(f"unknown CelebA image set {images!r}; expected one of {sorted(CELEBA_IMAGE_SETS)}")
    cache_dir = Path(cache_dir)
    if _is_download(source):
        identity = fetch_artefact((sources.CELEBA_IDENTITY,), cache_dir, hint=HINT_CELEBA,
                                  progress=progress)
        if images == "in_the_wild":
            folder = cache_dir / sources.CELEBA_WILD_FOLDER
            if not folder.is_dir():
                raise _celeba_wild_missing(cache_dir)
            return folder, identity
        archive = fetch_artefact((sources.CELEBA_IMG_ALIGN_ZIP,), cache_dir, hint=HINT_CELEBA,
                                 progress=progress)
        root = extract(archive, cache_dir / _archive_stem(archive))
        folder = root / sources.CELEBA_ALIGNED_FOLDER
        if not folder.is_dir():
            raise FileNotFoundError(f"{archive} did not contain {sources.CELEBA_ALIGNED_FOLDER}/ "
                                    f"(extracted to {root})")
        return folder, identity
    root = Path(source).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"CelebA source {root} is not a folder (nor {DOWNLOAD!r}). "
                                f"{HINT_CELEBA}")
    identity = _first_existing([root / CELEBA_IDENTITY, root / "Anno" / CELEBA_IDENTITY], False)
    if identity is None:
        raise FileNotFoundError(f"no {CELEBA_IDENTITY} in {root} (nor in {root / 'Anno'}). "
                                f"{HINT_CELEBA}")
    return _celeba_images([root, root / "Img"], images, root), identity


# ---------------------------------------------------------------- landmark files

def resolve_landmarks(source: str | os.PathLike, dataset: str, cache_dir: str | os.PathLike, *,
                      progress: bool = True) -> tuple[Path, str]:
    """(landmark file, its layout for read_landmark_file) for ``align.landmarks.<dataset>``.

    ``"authors"`` fetches the authors' file for ``dataset`` into
    ``cache_dir``, checked by its git blob id; a path is used as it is and its
    layout is decided by its content.
    """
    if isinstance(source, str) and source == AUTHORS:
        if dataset not in sources.AUTHORS_LANDMARKS:
            raise ValueError(f"the authors published landmarks for {sorted(sources.AUTHORS_LANDMARKS)} only, "
                             f"not for {dataset!r}; set align.landmarks.{dataset} to 'detect' or a file path")
        art, layout = sources.AUTHORS_LANDMARKS[dataset]
        return fetch_artefact((art,), Path(cache_dir), hint=HINT_LANDMARKS, progress=progress), layout
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"landmark file {path} (align.landmarks.{dataset}) does not exist; "
                                f"expected 'detect', {AUTHORS!r} or the path of a landmark CSV")
    return path, "auto"


# ---------------------------------------------------------------- authors' weights

def fetch_authors_weights(name: str, dest_dir: str | os.PathLike,
                          source: str | os.PathLike = DOWNLOAD, *, progress: bool = True) -> Path:
    """The authors' checkpoint ``name`` ("sface", "edsr_baseline", "edsr_lambda0.5") as a .pth path.

    Every file is checked against its git blob id, downloaded or local.  The
    EDSR checkpoints come as two-volume 7z archives, extracted safely into
    ``dest_dir/<name>/``.  A local ``source`` (a folder holding the files, or
    one of the files itself) is only read.
    """
    if name not in sources.AUTHORS_WEIGHTS:
        raise ValueError(f"unknown authors' checkpoint {name!r}; expected one of "
                         f"{sorted(sources.AUTHORS_WEIGHTS)}")
    artefacts, checkpoint = sources.AUTHORS_WEIGHTS[name]
    dest_dir = Path(dest_dir)
    files: list[Path] = []
    local_dir = None if _is_download(source) else Path(source).expanduser()
    if local_dir is not None and local_dir.is_file():
        if len(artefacts) == 1:  # a single checkpoint file, whatever its name: check its bytes
            return verify(local_dir, git_blob=artefacts[0].git_blob)
        local_dir = local_dir.parent  # e.g. the path of edsr_baseline.7z.001
    for art in artefacts:
        if local_dir is None:
            files.append(fetch_artefact((art,), dest_dir, hint=HINT_WEIGHTS, progress=progress))
        else:
            local = local_dir / art.filename
            if not local.is_file() and (local_dir / checkpoint).is_file() and len(artefacts) > 1:
                # Unpacked by hand as the authors' README says; no published digest to check.
                warnings.warn(f"using {local_dir / checkpoint} unverified: the archive volumes "
                              f"that carry its git blob ids are not in {local_dir}", stacklevel=2)
                return local_dir / checkpoint
            if not local.is_file():
                raise FileNotFoundError(f"no {art.filename} in {local_dir} "
                                        f"(needed for {name}). {HINT_WEIGHTS}")
            files.append(verify(local, git_blob=art.git_blob))
    if len(files) == 1 and files[0].suffix == ".pth":
        return files[0]
    out = extract(files[0], dest_dir / name)
    found = sorted(out.rglob(checkpoint)) or sorted(out.rglob("*.pth"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one checkpoint {checkpoint} in {out} (extracted from "
                                f"{files[0].name}), found {[str(p) for p in found]}")
    return found[0]


# ---------------------------------------------------------------- XQLFW

HINT_XQLFW = ("Download XQLFW elsewhere (https://martlgap.github.io/xqlfw/pages/download.html) and set "
              "data.xqlfw.images in params.yaml to the extracted folder (<root>/<Name>/<Name>_0001.jpg), "
              "xqlfw.zip or xqlfw_aligned_112.zip, and data.xqlfw.pairs to xqlfw_pairs.txt.")
XQLFW_VARIANT_NAMES = ("original", "aligned_112")


def _find_people_root(folder: Path, names: tuple[str, ...], origin: Path, hint: str) -> Path:
    """``folder``, one of its subfolders ``names``, or any single subfolder, whichever holds
    ``<Name>/<Name>_0001.jpg`` folders (archives differ in their top folder)."""
    candidates = [folder, *(folder / n for n in names)]
    if folder.is_dir():
        candidates += sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in names)
    for candidate in candidates:
        if _holds_people(candidate):
            return candidate
    raise FileNotFoundError(f"no face images in {origin}: expected <Name>/<Name>_0001.jpg folders there or in "
                            f"one of its subfolders ({', '.join(names)}). {hint}")


def _unverified(path: Path) -> Path:
    """A download without a published checksum: say so, with the digest for the user to compare."""
    warnings.warn(f"{path.name}: its publisher gives no checksum, so only its length was checked; "
                  f"sha256 {file_sha256(path)}", stacklevel=3)
    return path


def resolve_xqlfw_images(source: str | os.PathLike, cache_dir: str | os.PathLike, *, variant: str = "original",
                         progress: bool = True) -> Path:
    """The folder of XQLFW identity folders: a local folder or archive, or the release's archive
    (``variant``: 'original', xqlfw.zip; 'aligned_112', xqlfw_aligned_112.zip) downloaded."""
    if variant not in sources.XQLFW_VARIANTS:
        raise ValueError(f"key 'data.xqlfw.variant': unknown variant {variant!r}; expected one of "
                         f"{list(sources.XQLFW_VARIANTS)}")
    cache_dir = Path(cache_dir)
    tops = tuple(top for _, top in sources.XQLFW_VARIANTS.values())
    if _is_download(source):
        art, top = sources.XQLFW_VARIANTS[variant]
        archive = _unverified(fetch_artefact((art,), cache_dir, hint=HINT_XQLFW, progress=progress))
        return _find_people_root(extract(archive, cache_dir / _archive_stem(archive)), (top,), archive, HINT_XQLFW)
    path = Path(source).expanduser()
    if path.is_dir():
        return _find_people_root(path, tops, path, HINT_XQLFW)
    if path.is_file() and _is_archive(path):
        return _find_people_root(extract(path, cache_dir / _archive_stem(path)), tops, path, HINT_XQLFW)
    raise FileNotFoundError(f"XQLFW source {path} (data.xqlfw.images) is neither a folder nor an archive "
                            f"({', '.join(ARCHIVE_SUFFIXES)}), nor {DOWNLOAD!r}. {HINT_XQLFW}")


def resolve_xqlfw_file(source: str | os.PathLike | None, cache_dir: str | os.PathLike, art: Artefact, key: str, *,
                       progress: bool = True) -> Path | None:
    """xqlfw_pairs.txt or xqlfw_scores.txt: downloaded, a local file, or a folder holding it; None stays None."""
    if source is None:
        return None
    if _is_download(source):
        return _unverified(fetch_artefact((art,), Path(cache_dir), hint=HINT_XQLFW, progress=progress))
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / art.filename
    if not path.is_file():
        raise FileNotFoundError(f"no {art.filename} at {path} ({key}). {HINT_XQLFW}")
    return path
