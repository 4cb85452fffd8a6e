"""Google Drive's "can't scan this file for viruses" page: find the link that really downloads the file.

Drive answers a download link of a large file (MaskedFace-Net's archives) with an HTML page holding a
form whose submit fetches the file; its action and hidden inputs make the real URL. Small files
(FFHQ thumbnails) come directly. Drive changes this page from time to time: when no form is found
the downloader reports that a web page came instead of the file, with what to do about it.
"""

from __future__ import annotations

import urllib.parse
from html.parser import HTMLParser


class _FormFinder(HTMLParser):
    """Collects the first form whose action downloads, and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None and "download" in values.get("action", ""):
            self.action, self._inside = values["action"], True
        elif tag == "input" and self._inside and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def confirm_url(page: bytes, page_url: str) -> str | None:
    """The URL that downloads the file behind a Drive warning page, or None when there is no such form.

    >>> page = (b'<form id="download-form" action="https://drive.usercontent.google.com/download">'
    ...         b'<input type="hidden" name="id" value="F1"><input type="hidden" name="confirm" value="t">'
    ...         b'</form>')
    >>> confirm_url(page, "https://drive.google.com/uc?id=F1")
    'https://drive.usercontent.google.com/download?id=F1&confirm=t'
    """
    finder = _FormFinder()
    finder.feed(page.decode("utf-8", errors="replace"))
    if finder.action is None:
        return None
    action = urllib.parse.urljoin(page_url, finder.action)
    if urllib.parse.urlsplit(action).scheme not in ("http", "https"):
        return None
    query = urllib.parse.urlencode(finder.fields)
    return f"{action}{'&' if '?' in action else '?'}{query}" if query else action
