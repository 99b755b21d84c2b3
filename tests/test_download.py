"""Downloads against a local HTTP server on 127.0.0.1 (never the network).

The server implements byte ranges itself and can misbehave on purpose: cut
the connection mid-transfer, ignore Range, fail with an HTTP status.
"""
from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from srlrfr.cachelock import LOCKS, exclusive
from srlrfr.data.download import (
    ChecksumError,
    DownloadError,
    Transfer,
    download,
    download_first,
    download_google_drive,
    file_md5,
    file_sha256,
    git_blob_id,
    verify,
)

PAYLOAD = random.Random(0).randbytes(300_000)
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Site:
    """Files to serve plus per-path misbehaviour, and a log of the requests received."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.content_type: dict[str, str] = {}
        self.cut_first: set[str] = set()      # first GET sends half the body, then hangs up
        self.ignore_range: set[str] = set()   # always answer 200 with the whole body
        self.fail_status: dict[str, list[int]] = {}  # statuses to answer before serving
        self.log: list[tuple[str, str | None]] = []  # (path, Range header)


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = self.path
            site.log.append((path.split("?")[0], self.headers.get("Range")))
            key = path if path in site.files else path.split("?")[0]
            if site.fail_status.get(key):
                self.send_error(site.fail_status[key].pop(0))
                return
            if key not in site.files:
                self.send_error(404)
                return
            body = site.files[key]
            start = 0
            rng = self.headers.get("Range")
            if rng and key not in site.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Type", site.content_type.get(key, "application/octet-stream"))
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if key in site.cut_first:
                site.cut_first.discard(key)
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(chunk)

    return Handler


@contextmanager
def serve(site: Site):
    """Run ``site`` on a free port of 127.0.0.1; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site():
    s = Site()
    s.files["/data.bin"] = PAYLOAD
    return s


def test_full_download_with_md5(site, tmp_path):
    with serve(site) as base:
        out = download(f"{base}/data.bin", tmp_path / "data.bin", md5=MD5, transfer=Transfer(progress=False))
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()


def test_cut_connection_resumes_with_range(site, tmp_path):
    site.cut_first.add("/data.bin")
    with serve(site) as base:
        out = download(f"{base}/data.bin", tmp_path / "data.bin", md5=MD5,
                       transfer=Transfer(progress=False, backoff=0.01))
    assert out.read_bytes() == PAYLOAD
    assert len(site.log) == 2
    assert site.log[0][1] is None
    # the retry asked only for the bytes after the ones already received
    assert site.log[1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts_from_zero(site, tmp_path):
    site.cut_first.add("/data.bin")
    site.ignore_range.add("/data.bin")
    with serve(site) as base:
        out = download(f"{base}/data.bin", tmp_path / "data.bin", sha256=hashlib.sha256(
            PAYLOAD).hexdigest(), transfer=Transfer(progress=False, backoff=0.01))
    assert out.read_bytes() == PAYLOAD  # no duplicated prefix
    assert site.log[1][1] is not None  # it did ask for a range, and got the whole file


def test_existing_part_resumes_and_complete_part_gets_416(site, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    with serve(site) as base:
        download(f"{base}/data.bin", dest, md5=MD5, transfer=Transfer(progress=False))
        assert dest.read_bytes() == PAYLOAD
        assert site.log[-1][1] == "bytes=1000-"
        dest.unlink()
        (tmp_path / "data.bin.part").write_bytes(PAYLOAD)  # killed just before the rename
        download(f"{base}/data.bin", dest, md5=MD5, transfer=Transfer(progress=False))
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing(site, tmp_path):
    dest = tmp_path / "data.bin"
    with serve(site) as base:
        with pytest.raises(ChecksumError) as err:
            download(f"{base}/data.bin", dest, md5="0" * 32, transfer=Transfer(progress=False))
    msg = str(err.value)
    assert str(dest) in msg and "0" * 32 in msg and MD5 in msg
    assert not dest.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_valid_existing_file_is_not_refetched_and_corrupt_one_is(site, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    with serve(site) as base:
        download(f"{base}/data.bin", dest, md5=MD5, transfer=Transfer(progress=False))
        assert site.log == []
        dest.write_bytes(PAYLOAD[:-1] + b"x")
        download(f"{base}/data.bin", dest, md5=MD5, transfer=Transfer(progress=False))
    assert len(site.log) == 1 and dest.read_bytes() == PAYLOAD


def test_a_run_sharing_the_cache_waits_and_reuses_the_file(site, tmp_path):
    """A second download of a file another run is fetching waits for it, then uses its verified bytes."""
    dest = tmp_path / "cache" / "data.bin"
    dest.parent.mkdir()
    got = []
    with serve(site) as base:
        with exclusive(dest):  # the other run, mid-transfer
            waiter = threading.Thread(target=lambda: got.append(download(f"{base}/data.bin", dest, md5=MD5,
                                                                         transfer=Transfer(progress=False))))
            waiter.start()
            time.sleep(0.5)
            assert waiter.is_alive() and not got
            dest.write_bytes(PAYLOAD)  # the other run's verified file, renamed into place
        waiter.join(30)
    assert got == [dest] and site.log == []  # nothing fetched twice


def test_connection_refused_fails_fast_with_hint(tmp_path):
    hint = "set data.lfw.source in params.yaml to the path of an extracted folder or .tgz"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(f"http://127.0.0.1:{closed_port()}/lfw.tgz", tmp_path / "lfw.tgz",
                 transfer=Transfer(hint=hint, retries=5, backoff=5.0, progress=False))
    assert time.monotonic() - t0 < 3.0  # no retry loop with backoff
    assert hint in str(err.value) and "127.0.0.1" in str(err.value)
    assert not (tmp_path / "lfw.tgz").exists()


def test_unresolvable_host_fails_fast(tmp_path, monkeypatch):
    # Simulate a DNS failure locally instead of asking a real resolver.
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="network unreachable"):
        download("http://example.org/x", tmp_path / "x", transfer=Transfer(backoff=5.0, progress=False))
    assert time.monotonic() - t0 < 3.0


def test_http_404_is_not_retried_but_503_is(site, tmp_path):
    with serve(site) as base:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(f"{base}/missing", tmp_path / "m", transfer=Transfer(progress=False, backoff=0.01))
        assert len(site.log) == 1
        site.fail_status["/data.bin"] = [503, 503]
        download(f"{base}/data.bin", tmp_path / "d", md5=MD5, transfer=Transfer(progress=False, backoff=0.01))
        assert len(site.log) == 4
        site.fail_status["/data.bin"] = [503] * 5
        with pytest.raises(DownloadError, match="gave up after 2 retries"):
            download(f"{base}/data.bin", tmp_path / "e", transfer=Transfer(retries=2, progress=False, backoff=0.01))


def test_download_first_falls_back_to_mirror(site, tmp_path):
    with serve(site) as base:
        out = download_first([f"http://127.0.0.1:{closed_port()}/x", f"{base}/data.bin"],
                             tmp_path / "d", md5=MD5, transfer=Transfer(progress=False))
    assert out.read_bytes() == PAYLOAD


def test_google_drive_through_gdown_retries_and_verifies(site, tmp_path):
    # gdown follows Drive's confirmation pages; here it talks to the local server instead.
    site.cut_first.add("/uc")
    site.files["/uc"] = PAYLOAD
    with serve(site) as base:
        out = download_google_drive("FILEID", tmp_path / "img.zip", md5=MD5, url=f"{base}/uc?id=FILEID",
                                    transfer=Transfer(progress=False, timeout=5))
    assert out.read_bytes() == PAYLOAD
    assert [p for p, _ in site.log] == ["/uc", "/uc"]  # the cut transfer was tried again
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "img.zip"]  # LOCKS: the lock, kept for the next run


def test_google_drive_wrong_bytes_leave_nothing(site, tmp_path):
    site.files["/uc"] = b"<html>Google Drive - Quota exceeded</html>"
    with serve(site) as base:
        with pytest.raises(ChecksumError, match="md5 mismatch"):
            download_google_drive("X", tmp_path / "f", md5=MD5, url=f"{base}/uc?id=X",
                                  transfer=Transfer(progress=False))
    assert [p.name for p in tmp_path.iterdir()] == [LOCKS]


def test_google_drive_offline_names_the_local_copy_hint(tmp_path):
    with pytest.raises(DownloadError, match="network unreachable.*data.celeba.source"):
        download_google_drive("X", tmp_path / "f", md5=MD5, url=f"http://127.0.0.1:{closed_port()}/uc",
                              transfer=Transfer(progress=False, retries=0,
                                                hint="Set data.celeba.source in params.yaml."))


def test_digests_match_git_and_hashlib(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(PAYLOAD)
    git = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert git_blob_id(f) == git
    assert file_md5(f) == MD5
    assert file_sha256(f) == hashlib.sha256(PAYLOAD).hexdigest()
    verify(f, md5=MD5, git_blob=git, size=len(PAYLOAD))
    f.write_bytes(PAYLOAD[:100] + bytes([PAYLOAD[100] ^ 1]) + PAYLOAD[101:])
    with pytest.raises(ChecksumError, match="git_blob mismatch"):
        verify(f, git_blob=git)
    with pytest.raises(ChecksumError, match="size mismatch"):
        verify(f, size=len(PAYLOAD) + 1)
