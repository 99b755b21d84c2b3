"""Whether the hosts of the pending downloads answer: one short HEAD each, all at once."""
from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from .base import FAIL, OK, Check
from .inputs import Download


@dataclass(frozen=True)
class Reach:
    ok: bool
    detail: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect already proves the host answers
        return None


def probe_url(url: str, timeout: float) -> Reach:
    """One HEAD request (proxies from the environment apply); any HTTP answer means reachable."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "srlrfr-doctor"})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return Reach(True, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Reach(True, f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        reason = exc.reason
    except OSError as exc:
        reason = exc
    if isinstance(reason, socket.gaierror):
        return Reach(False, "DNS lookup failed")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return Reach(False, f"no answer within {timeout:g} s")
    if isinstance(reason, ConnectionRefusedError):
        return Reach(False, "connection refused")
    return Reach(False, str(reason))


def check_network(downloads: list[Download], probe: Callable[[str, float], Reach] = probe_url,
                  timeout: float = 3.0) -> list[Check]:
    """Whether each pending download has a mirror whose host answers, all hosts probed at once."""
    if not downloads:
        return [Check("network", "network", OK, "nothing to download: not needed")]
    first_url: dict[str, str] = {}
    for d in downloads:
        for url in d.urls:
            first_url.setdefault(urllib.parse.urlsplit(url).hostname or url, url)
    results: dict[str, Reach] = {}

    def run(host: str, url: str) -> None:
        results[host] = probe(url, timeout)

    # Daemon threads: a DNS lookup that hangs past the deadline cannot hold up the report or the exit.
    threads = [threading.Thread(target=run, args=item, daemon=True) for item in first_url.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1.0)
    reach = {h: results.get(h, Reach(False, f"no answer within {timeout:g} s")) for h in first_url}
    out = []
    if not any(r.ok for r in reach.values()):
        why = sorted({r.detail for r in reach.values()})
        out.append(Check("network", "network", FAIL,
                         f"no network: none of the download hosts answered ({', '.join(reach)}: {'; '.join(why)})",
                         fix="run where these hosts are reachable, or download the files elsewhere and set "
                             "the params keys below to the local copies"))
    else:
        out.append(Check("network", "network", OK, ", ".join(f"{h}: {r.detail}" for h, r in reach.items())))
    for d in downloads:
        hosts = [urllib.parse.urlsplit(u).hostname or u for u in d.urls]
        good = next((h for h in hosts if reach[h].ok), None)
        if good:
            out.append(Check("network", d.key, OK, f"{d.filename}: {good} answers ({reach[good].detail})"))
        else:
            out.append(Check("network", d.key, FAIL,
                             f"{d.filename}: cannot reach {', '.join(dict.fromkeys(hosts))}",
                             fix=d.hint))
    return out
