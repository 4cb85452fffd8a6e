"""One self-contained HTML report (images inlined) that opens without a server."""

from __future__ import annotations

import base64
import html
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.fileio import atomic_write_text

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .7em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.5em;vertical-align:top}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.note{color:#555}
"""


@dataclass
class ReportSection:
    """A titled block of the report: free HTML, tables and figures, in that order."""

    title: str
    html_parts: list[str] = field(default_factory=list)

    def paragraph(self, text: str) -> None:
        self.html_parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        self.html_parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, path: str | Path, caption: str = "", width: int | None = None) -> None:
        style = f' style="width:{width}px"' if width else ""
        self.html_parts.append(
            f'<figure{style}><img src="{data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def video(self, path: str | Path, caption: str = "", width: int = 480) -> None:
        self.html_parts.append(
            f'<figure style="width:{width}px"><video controls muted loop playsinline style="width:100%" '
            f'src="{data_uri(path)}"></video><figcaption>{html.escape(caption)}</figcaption></figure>'
        )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def data_uri(path: str | Path) -> str:
    """Inline a file as a data: URI so the report needs no other file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png"; _ = p.write_bytes(b"abc")
    >>> data_uri(p)
    'data:image/png;base64,YWJj'
    """
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def write_report(path: str | Path, title: str, sections: list[ReportSection]) -> Path:
    """Write the report atomically and return its path."""
    body = "".join(
        f"<h2>{html.escape(s.title)}</h2>{''.join(s.html_parts)}" for s in sections
    )
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    atomic_write_text(path, document)
    return Path(path)
