"""Safe, all-or-nothing extraction of .tar(.gz)/.tgz, .zip and (multi-part) .7z archives.

Zip and 7z members are checked before anything is written: absolute paths,
``..`` components, links and device/special files are refused. Tar archives go
through tarfile's ``data`` filter, which refuses members that would land
outside the destination, absolute or escaping links and special files, and
strips leading slashes. Extraction goes to a
temporary sibling of the destination; only after the last byte is out is a
marker written and the directory renamed into place, so a killed run leaves a
temp directory that is never taken for a result and is removed next time.

Runs sharing a cache extract one at a time (srlrfr.cachelock): a second run
waits for the first, then reuses its result. The temp directory is named after
its writer (``.<dest>.<host>-<pid>.…``); it is removed only by the next holder
of the lock, so never while its writer lives.
It gets the user's umask permissions, like any folder the user makes.
"""
from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..atomic import current_umask
from ..cachelock import exclusive
from ..faults import pause_point

MARKER = ".srlrfr-complete"
TMP_SUFFIX = ".extracting"
_PART_RE = re.compile(r"^(?P<base>.+\.7z)\.(?P<num>\d{3,})$")


class UnsafeArchiveError(ValueError):
    """An archive member would escape the destination or is not a plain file/directory."""


class DamagedArchiveError(ValueError):
    """An archive that ends early or fails its own checks (a partial download or copy)."""


def _damage_types() -> tuple[type[BaseException], ...]:
    # deferred: loads py7zr
    import py7zr.exceptions
    return (EOFError, tarfile.ReadError, tarfile.CompressionError, zipfile.BadZipFile, zlib.error,
            gzip.BadGzipFile, lzma.LZMAError, py7zr.exceptions.ArchiveError)


def _check_name(archive: Path, name: str) -> None:
    """Refuse absolute paths and ``..`` components, in POSIX and Windows spelling."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise UnsafeArchiveError(f"{archive}: unsafe member path {name!r} "
                                     f"(absolute or containing '..'); nothing was extracted")


def _refuse(archive: Path, name: str, what: str) -> None:
    raise UnsafeArchiveError(f"{archive}: member {name!r} is a {what}; only regular files and "
                             f"directories are extracted; nothing was extracted")


# ---------------------------------------------------------------- parts and formats

def volume_parts(first: str | os.PathLike) -> list[Path]:
    """All volumes of a multi-part 7z, given its ``.7z.001``: contiguous, in order."""
    first = Path(first)
    m = _PART_RE.match(first.name)
    if not m:
        raise ValueError(f"{first} is not the first volume of a multi-part 7z (name.7z.001)")
    digits = len(m.group("num"))
    parts, num = [], int(m.group("num"))
    while (p := first.with_name(f"{m.group('base')}.{num:0{digits}d}")).is_file():
        parts.append(p)
        num += 1
    if not parts:
        raise FileNotFoundError(f"multi-part 7z volume {first} does not exist")
    return parts


def _kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".7z"):
        return "7z"
    if _PART_RE.match(name):
        return "7z-multi"
    raise ValueError(f"{archive}: unknown archive type (expected .tgz/.tar.gz/.tar/.zip/.7z/.7z.001)")


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        _check_name(archive, info.filename)
        # Unix file type bits, when the writer stored them (many store permissions only).
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            _refuse(archive, info.filename, "symbolic link")
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            _refuse(archive, info.filename, "device, FIFO or other special file")


def _check_7z(archive: Path, sz) -> None:
    for f in sz.files:
        _check_name(archive, f.filename)
        if f.is_symlink or f.is_junction:
            _refuse(archive, f.filename, "symbolic link / junction")
        if not (f.is_directory or f.is_file):
            _refuse(archive, f.filename, "device, socket or other special file")


def _open_7z(archive: Path, multi: bool):
    # deferred: loads py7zr
    import py7zr

    if not multi:
        return py7zr.SevenZipFile(archive, mode="r")
    # deferred: loads multivolumefile
    import multivolumefile

    parts = volume_parts(archive)
    base = parts[0].with_name(_PART_RE.match(parts[0].name).group("base"))
    # multivolumefile globs "<base>.*": a stray "<base>.002.part" would be spliced in.
    found = sorted(base.parent.glob(base.name + ".*"))
    if found != parts:
        extra = ", ".join(str(p) for p in found if p not in parts)
        raise ValueError(f"{archive}: files other than the volumes {[p.name for p in parts]} "
                         f"share the prefix {base.name}.* ({extra}); move them away and retry")
    return py7zr.SevenZipFile(multivolumefile.open(base, mode="rb"), mode="r")


def _extract_into(archive: Path, kind: str, out: Path) -> int:
    """Check every member, then extract all into ``out``; return the member count."""
    if kind == "tar":
        with tarfile.open(archive, "r:*") as tar:
            try:
                tar.extractall(out, filter="data")
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{archive}: unsafe member: {exc}; nothing was extracted") from None
            return len(tar.getmembers())
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf)
            for info in zf.infolist():
                zf.extract(info, out)
                pause_point(f"extract:{archive.name}")  # the fault tests kill an extraction midway here
            return len(zf.infolist())
    with _open_7z(archive, multi=kind == "7z-multi") as sz:
        _check_7z(archive, sz)
        count = len(sz.files)
        sz.extractall(path=out)
        return count


# ---------------------------------------------------------------- completeness

def _temp_dirs(dest_dir: Path) -> list[Path]:
    return sorted(dest_dir.parent.glob(f".{dest_dir.name}.*{TMP_SUFFIX}"))


def read_marker(dest_dir: str | os.PathLike) -> dict | None:
    """The marker's contents, or None when ``dest_dir`` is not a completed extraction."""
    marker = Path(dest_dir) / MARKER
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def is_complete(dest_dir: str | os.PathLike, archive: str | os.PathLike | None = None) -> bool:
    """True when ``dest_dir`` holds a finished extraction (of ``archive``, if given)."""
    info = read_marker(dest_dir)
    if info is None:
        return False
    if archive is None:
        return True
    return info == {**info, **_archive_identity(Path(archive))}


def _archive_identity(archive: Path) -> dict:
    parts = volume_parts(archive) if _PART_RE.match(archive.name) else [archive]
    return {"archive": archive.name, "size": sum(p.stat().st_size for p in parts)}


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract ``archive`` into ``dest_dir`` atomically; return ``dest_dir``.

    For a multi-part 7z pass the ``.7z.001`` volume.  A ``dest_dir`` already
    completed from the same archive (name and size) is returned untouched.  A
    ``dest_dir`` that exists without a marker is refused rather than replaced,
    since it may be the user's own folder.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    kind = _kind(archive)
    identity = _archive_identity(archive)
    if is_complete(dest_dir, archive):
        return dest_dir
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(dest_dir, "extracting into"):
        if not is_complete(dest_dir, archive):  # else a run sharing the cache made it while we waited
            _extract_locked(archive, kind, identity, dest_dir)
    return dest_dir


def _remove_dead_temps(dest_dir: Path) -> None:
    """Temp directories of killed extractions. Only called under the destination's lock: every extraction
    holds it, so no live one is writing any of them (a killed writer's pid may even still show in /proc)."""
    for stale in _temp_dirs(dest_dir):
        shutil.rmtree(stale, ignore_errors=True)


def _extract_locked(archive: Path, kind: str, identity: dict, dest_dir: Path) -> None:
    """Extract into a temp sibling and rename it onto ``dest_dir``; the caller holds the lock."""
    if dest_dir.exists() and read_marker(dest_dir) is None and any(dest_dir.iterdir()):
        raise FileExistsError(f"{dest_dir} exists, is not empty and was not made by extract(); "
                              f"remove it or choose another destination for {archive.name}")
    _remove_dead_temps(dest_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.{socket.gethostname()}-{os.getpid()}.",
                                suffix=TMP_SUFFIX, dir=dest_dir.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700: others of the group could not read it
        try:
            count = _extract_into(archive, kind, tmp)
        except _damage_types() as exc:
            raise DamagedArchiveError(
                f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}); nothing was extracted. "
                f"Fix: delete it and download or copy it again (compare its size or checksum with the "
                f"original)") from None
        (tmp / MARKER).write_text(json.dumps({**identity, "members": count}) + "\n")
        if dest_dir.exists():
            shutil.rmtree(dest_dir)  # an empty dir, or our own extraction of another archive
        os.replace(tmp, dest_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
