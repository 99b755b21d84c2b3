"""Self-contained HTML report: inline CSS, figures as base64 data URIs, no network.

The file opens offline and can be mailed or archived on its own.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path

import pandas as pd

from srlrfr.atomic import write_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em; }
figcaption { font-style: italic; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def _fmt_number(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def _frame_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="-", float_format=_fmt_number, escape=True)


def _figure_uri(key: str, path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"report figure {key!r}: {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise ValueError(f"report figure {key!r}: {path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _params_html(params: dict) -> str:
    rows = []
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td><code>{html.escape(text)}</code></td></tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def write_report(out_html: str | os.PathLike, *, title: str,
                 tables: dict[str, pd.DataFrame | str], figures: dict[str, str | os.PathLike],
                 params: dict) -> Path:
    """Write one HTML page: title, tables (pandas-rendered; a str is a paragraph), figures, run parameters."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for name, table in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if isinstance(table, pd.DataFrame):
            parts.append(_frame_html(table))
        elif isinstance(table, str):
            parts.append(f"<p>{html.escape(table)}</p>")
        else:
            raise TypeError(f"report table {name!r} must be a DataFrame or a str, got {type(table).__name__}")
    for name, path in figures.items():
        parts.append(f"<figure><img alt=\"{html.escape(name)}\" src=\"{_figure_uri(name, path)}\">"
                     f"<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("<h2>Parameters</h2>")
    parts.append(_params_html(params))
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
    out_html = Path(out_html)
    # ASCII with character references: the page reads the same whatever the locale encoding
    write_text(out_html, page.encode("ascii", "xmlcharrefreplace").decode("ascii"))
    return out_html
