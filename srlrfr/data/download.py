"""Resumable, verified downloads with the standard library only.

A file is streamed to ``<dest>.part``; an interrupted transfer resumes from
the bytes already there with an HTTP Range request; the checksum(s) are
verified before the ``.part`` is renamed onto ``dest``.  So ``dest`` either
holds verified bytes or does not exist, and a killed run loses nothing but
time.  Being offline fails at once with a message that says how to point the
pipeline at a local copy instead. Runs sharing a download cache fetch a file
one at a time (srlrfr.cachelock): the second waits, then finds it verified.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..cachelock import exclusive

CHUNK = 1 << 20
USER_AGENT = "srlrfr-downloader/0.1 (+python-urllib)"
DEFAULT_HINT = ("No network access? Download the file on another machine and point the "
                "pipeline at the local copy (a path instead of 'download' in params.yaml).")
# HTTP statuses worth another try; anything else (404, 403, ...) will not change by retrying.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Socket errors that mean "no network / nothing listening": retrying only wastes the user's time.
OFFLINE_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class DownloadError(RuntimeError):
    """A file could not be fetched (offline, HTTP error, retries exhausted)."""


class ChecksumError(ValueError):
    """A file's bytes differ from the expected digest."""

    def __init__(self, path: Path, kind: str, expected: str | int, actual: str | int):
        self.path, self.kind, self.expected, self.actual = Path(path), kind, expected, actual
        super().__init__(f"{kind} mismatch for {path}: expected {expected}, got {actual}")


# ---------------------------------------------------------------- digests

def _digests(path: str | os.PathLike, md5: bool, sha256: bool, git_blob: bool) -> dict[str, str]:
    """Compute the requested digests in one streamed pass over the file."""
    path = Path(path)
    hashers: dict[str, "hashlib._Hash"] = {}
    if md5:
        hashers["md5"] = hashlib.md5()
    if sha256:
        hashers["sha256"] = hashlib.sha256()
    if git_blob:
        # git's object id: sha1 over a "blob <size>\0" header followed by the content.
        blob = hashlib.sha1()
        blob.update(b"blob %d\0" % path.stat().st_size)
        hashers["git_blob"] = blob
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {k: h.hexdigest() for k, h in hashers.items()}


def file_md5(path: str | os.PathLike) -> str:
    return _digests(path, True, False, False)["md5"]


def file_sha256(path: str | os.PathLike) -> str:
    return _digests(path, False, True, False)["sha256"]


def git_blob_id(path: str | os.PathLike) -> str:
    """The id ``git hash-object`` gives the file (sha1 of ``b"blob <size>\\0" + content``)."""
    return _digests(path, False, False, True)["git_blob"]


def verify(path: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
           git_blob: str | None = None, size: int | None = None) -> Path:
    """Raise ChecksumError unless ``path`` matches every digest given; return the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {path}: no such file")
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(path, "size", size, path.stat().st_size)
    expected = {"md5": md5, "sha256": sha256, "git_blob": git_blob}
    wanted = {k: v.lower() for k, v in expected.items() if v}
    actual = _digests(path, "md5" in wanted, "sha256" in wanted, "git_blob" in wanted)
    for kind, value in wanted.items():
        if actual[kind] != value:
            raise ChecksumError(path, kind, value, actual[kind])
    return path


def matches(path: str | os.PathLike, **expected) -> bool:
    """True when ``path`` exists and passes ``verify`` with the same keywords."""
    try:
        verify(path, **expected)
    except (ChecksumError, FileNotFoundError):
        return False
    return True


# ---------------------------------------------------------------- transfer

def _is_offline(exc: BaseException) -> bool:
    """Name resolution failed or nothing accepts the connection: the network is not there."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in OFFLINE_ERRNOS


def _content_range(resp) -> tuple[int | None, int | None]:
    """(first byte, total size) from a ``Content-Range: bytes a-b/total`` header."""
    m = re.match(r"bytes\s+(\d+|\*)-?(\d*)/(\d+|\*)", resp.headers.get("Content-Range", ""))
    if not m:
        return None, None
    first = int(m.group(1)) if m.group(1) != "*" else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return first, total


def _transfer(opener, url: str, part: Path, *, timeout: float, progress: bool, label: str) -> None:
    """One attempt: request the bytes after what ``part`` holds and append them.

    Returns normally when the server says the file is complete; raises on any
    failure, leaving the bytes received so far in ``part``.
    """
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            _, total = _content_range(exc)
            exc.close()
            if total == start:
                return  # the .part already holds the whole file
            part.unlink()  # .part is longer than / inconsistent with the remote file
            raise ConnectionError(f"range request rejected (416) at byte {start}; restarting") from None
        raise
    with resp:
        first, total = _content_range(resp)
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            if first != start:
                part.unlink(missing_ok=True)
                raise ConnectionError(f"asked for bytes from {start}, got a range from {first}; "
                                      f"restarting from 0")
            mode = "ab"
        else:  # 200: the whole file, whether or not a range was asked for
            start, mode, total = 0, "wb", None
        if total is None and length is not None:
            total = start + int(length)
        with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=label, disable=not progress,
                                          leave=False) as bar:
            while chunk := resp.read(CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise ConnectionError(f"connection closed after {got} of {total} bytes")



def _cached_or_fetched(dest: Path, checks: dict, fetch) -> Path:
    """``dest`` if it holds the checked bytes, else ``fetch()`` under the destination's lock: a
    peer downloading the same file is waited for and its result reused, a stale copy replaced."""
    if dest.is_file() and matches(dest, **checks):  # no lock needed (a read-only cache stays usable)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(dest, "downloading"):
        if dest.is_file():
            if matches(dest, **checks):  # ours from before, or a peer's that we waited for
                return dest
            dest.unlink()  # stale or corrupt copy: fetch it again
        return fetch()

@dataclass(frozen=True)
class Transfer:
    """How a file is fetched: with a progress bar or not; ``timeout`` seconds per connection;
    ``retries`` consecutive attempts that made no progress (an attempt that received bytes resets
    the count, so a flaky link still completes a large file); ``backoff`` seconds before the first
    retry, doubling; ``hint`` ends every error (default: how to use a local copy); ``opener``: the
    urllib opener (default: a plain one)."""
    progress: bool = True
    timeout: float = 30
    retries: int = 3
    hint: str | None = None
    backoff: float = 2.0
    opener: Any = None


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None,
             sha256: str | None = None, git_blob: str | None = None, size: int | None = None,
             transfer: Transfer = Transfer()) -> Path:
    """Fetch ``url`` to ``dest`` (resuming, retrying, verifying); return ``dest``.

    An existing ``dest`` that passes the given checks is kept without any
    network access. A wrong checksum raises ChecksumError
    and leaves neither ``dest`` nor ``dest.part`` behind.
    """
    dest = Path(dest)
    checks = {"md5": md5, "sha256": sha256, "git_blob": git_blob, "size": size}
    return _cached_or_fetched(dest, checks, lambda: _download(url, dest, checks, transfer))


def _download(url: str, dest: Path, checks: dict, transfer: Transfer) -> Path:
    """The transfer of :func:`download`, under ``dest``'s lock."""
    part = dest.with_name(dest.name + ".part")
    opener = transfer.opener or urllib.request.build_opener()
    hint = transfer.hint or DEFAULT_HINT
    timeout, progress, retries = transfer.timeout, transfer.progress, transfer.retries
    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(opener, url, part, timeout=timeout, progress=progress, label=dest.name)
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRYABLE_STATUS:
                raise DownloadError(f"cannot download {url} -> {dest}: HTTP {exc.code} "
                                    f"{exc.reason}. {hint}") from exc
            error: BaseException = exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if _is_offline(exc):
                raise DownloadError(f"cannot download {url} -> {dest}: network unreachable "
                                    f"({getattr(exc, 'reason', exc)}). {hint}") from exc
            error = exc
        after = part.stat().st_size if part.exists() else 0
        failures = 0 if after > before else failures + 1
        if failures > retries:
            raise DownloadError(f"cannot download {url} -> {dest}: gave up after {retries} "
                                f"retries without progress ({error}); {after} bytes kept in "
                                f"{part} for the next attempt. {hint}") from error
        time.sleep(transfer.backoff * 2 ** max(failures - 1, 0))
    try:
        verify(part, **checks)
    except ChecksumError as exc:
        part.unlink(missing_ok=True)  # resuming from corrupt bytes would only repeat the error
        raise ChecksumError(dest, exc.kind, exc.expected, exc.actual) from None
    os.replace(part, dest)
    return dest


def download_first(urls: tuple[str, ...] | list[str], dest: str | os.PathLike, **kwargs) -> Path:
    """Try mirrors in order; the first that delivers verified bytes wins."""
    errors = []
    for url in urls:
        try:
            return download(url, dest, **kwargs)
        except DownloadError as exc:
            errors.append(str(exc))
    raise DownloadError("all mirrors failed:\n  " + "\n  ".join(errors))


# ---------------------------------------------------------------- Google Drive

def download_google_drive(file_id: str, dest: str | os.PathLike, *, md5: str | None = None,
                          sha256: str | None = None, size: int | None = None, url: str | None = None,
                          transfer: Transfer = Transfer(), **_ignored) -> Path:
    """Fetch a shared Google Drive file with gdown (which follows Drive's ever-changing
    confirmation pages), resuming a partial transfer, then verify it.

    gdown writes ``<dest>.unverified``; only verified bytes are renamed onto
    ``dest``. ``url`` replaces the Drive address (a mirror, or a local test server). Of ``transfer``,
    gdown takes the progress bar, timeout, retries and hint.
    """
    dest = Path(dest)
    checks = {"md5": md5, "sha256": sha256, "size": size}
    return _cached_or_fetched(dest, checks, lambda: _download_drive(file_id, dest, checks, transfer, url))


def _download_drive(file_id: str, dest: Path, checks: dict, transfer: Transfer, url: str | None) -> Path:
    """The transfer of :func:`download_google_drive`, under ``dest``'s lock."""
    # deferred: loads requests, gdown
    import gdown
    import requests
    from gdown.exceptions import DownloadError as GdownError
    from gdown.exceptions import FileURLRetrievalError

    unverified = dest.with_name(dest.name + ".unverified")
    hint = transfer.hint or DEFAULT_HINT
    source = url or f"Google Drive file {file_id}"
    try:
        gdown.download(url=url, id=None if url else file_id, output=str(unverified), quiet=not transfer.progress,
                       resume=True, timeout=transfer.timeout, retries=transfer.retries, use_cookies=False)
    except FileURLRetrievalError as exc:  # quota exceeded, no longer shared, page changed
        raise DownloadError(f"Google Drive refused {dest.name} ({exc}). {hint}") from None
    except requests.exceptions.ConnectionError as exc:
        raise DownloadError(f"cannot download {source} -> {dest}: network unreachable ({exc}). {hint}") from None
    except (GdownError, requests.exceptions.RequestException, OSError) as exc:
        raise DownloadError(f"cannot download {source} -> {dest}: {exc}; the bytes received are kept "
                            f"for the next attempt. {hint}") from None
    try:
        verify(unverified, **checks)
    except ChecksumError as exc:
        unverified.unlink(missing_ok=True)
        raise ChecksumError(dest, exc.kind, exc.expected, exc.actual) from None
    os.replace(unverified, dest)
    return dest
