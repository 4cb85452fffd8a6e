"""Resumable HTTP downloads with retries and checksums, standard library only.

A file is fetched into `NAME.part` beside its target; an interrupted transfer resumes from the
part file's length with a `Range` request, and a server that ignores `Range` (answers 200) makes the
transfer restart cleanly from byte 0. Only a complete file whose size and checksum agree is renamed
to its final name, so a file under its real name is always whole.
"""

from __future__ import annotations

import email.message
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from maskdetect.data.download.gdrive import confirm_url
from maskdetect.fileio import file_digest

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_PAGE = 1 << 20  # a warning page is a few kB; never read a whole mislabelled file as one
USER_AGENT = "maskdetect-downloader/1.0 (+https://github.com/cabani/MaskedFace-Net)"
# Statuses worth another try: the server is busy or briefly broken, not refusing us for good.
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# The control files a transfer keeps beside its target: NAME.part, then NAME.part.validator.
PART_SUFFIX = ".part"
VALIDATOR_SUFFIX = ".validator"


class _FollowPage(Exception):  # noqa: N818 (a signal, not an error)
    """The server sent a page that links to the real file; fetch that URL instead."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL or file and the reason."""


class NotEnoughSpaceError(OSError, ValueError):
    """Too little free disk for a download or an extraction; the message names need and free space."""


class ChecksumError(DownloadError):
    """A downloaded file's size or checksum is not the expected one."""


def check_free_space(dest: str | os.PathLike, need: int, what: str = "downloading") -> None:
    """Raise NotEnoughSpaceError naming both figures when `dest` has less than `need` bytes free.

    >>> check_free_space("/", 0)
    """
    free = shutil.disk_usage(dest).free
    if need > free:
        raise NotEnoughSpaceError(
            f"not enough disk space in {dest} for {what}: need {need:,} bytes ({need / 1e9:.2f} GB), "
            f"free {free:,} bytes ({free / 1e9:.2f} GB)"
        )


@dataclass(frozen=True)
class FileSpec:
    """One file to download.

    Attributes:
        url: where to get it (http or https).
        relpath: where to put it, relative to the destination folder (forward slashes).
        size: expected size in bytes, when known.
        md5: expected md5 (hex), when known.
        sha256: expected sha256 (hex), when known.
    """

    url: str
    relpath: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class RemoteInfo:
    """What a server says about a file before we fetch it."""

    size: int | None
    filename: str | None
    accepts_ranges: bool


def check_file(path: Path, spec: FileSpec) -> None:
    """Raise ChecksumError naming `path` when its size, md5 or sha256 differs from `spec`."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ChecksumError(f"{spec.relpath}: size {size:,} bytes, expected {spec.size:,} (from {spec.url})")
    for algorithm in ("md5", "sha256"):
        expected = getattr(spec, algorithm)
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                raise ChecksumError(
                    f"{spec.relpath}: {algorithm} mismatch: got {actual}, expected {expected} "
                    f"(from {spec.url})"
                )


def _request(
    url: str, start: int = 0, timeout: float = 30.0, validator: str | None = None
) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
        if validator:
            # The server sends the whole new file (200) instead of a range when its copy changed.
            headers["If-Range"] = validator
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _filename_from_headers(headers: email.message.Message) -> str | None:
    disposition = headers.get("Content-Disposition", "")
    match = re.search(r"filename\*=(?:UTF-8'')?([^;]+)|filename=\"?([^\";]+)\"?", disposition)
    if not match:
        return None
    name = urllib.request.url2pathname(match.group(1) or match.group(2)).strip()
    return os.path.basename(name) or None


def probe(url: str, timeout: float = 30.0, follow: bool = True) -> RemoteInfo:
    """Ask for the first byte of `url` to learn its size, file name and whether it serves ranges.

    A Google Drive warning page is followed to the file it stands for (once, when `follow`).

    >>> probe.__name__  # network access: see tests/test_download.py
    'probe'
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            name = _filename_from_headers(response.headers)
            if response.headers.get_content_type() == "text/html":
                page = response.read(MAX_PAGE)
                if response.status == 206:  # one byte of a page: fetch all of it
                    with _request(url, 0, timeout) as whole:
                        page = whole.read(MAX_PAGE)
                real_url = confirm_url(page, response.url)
                if real_url and follow:
                    return probe(real_url, timeout, follow=False)
                return RemoteInfo(None, name, False)  # a web page (sign-in, quota notice), not the file
            return RemoteInfo(_total_size(response), name, response.status == 206)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{url}: cannot reach it ({err})") from None


def _content_range_start(response: http.client.HTTPResponse) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _total_size(response: http.client.HTTPResponse) -> int | None:
    """The whole file's size as the response tells it (Content-Range for 206, else Content-Length)."""
    if response.status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
    else:
        total = response.headers.get("Content-Length", "")
    return int(total) if total.isdigit() else None


def part_path(target: Path) -> Path:
    """Where the bytes of `target` gather until the whole file is checked.

    >>> part_path(Path("d/CMFD.zip")).as_posix()
    'd/CMFD.zip.part'
    """
    return target.with_name(target.name + PART_SUFFIX)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + VALIDATOR_SUFFIX)


def _read_validator(part: Path) -> str | None:
    path = _validator_path(part)
    return path.read_text().strip() or None if path.is_file() else None


def _write_validator(part: Path, response: http.client.HTTPResponse) -> None:
    """Keep the server's strong ETag (or Last-Modified) beside a fresh part file, for If-Range later."""
    etag = response.headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified", "")
    path = _validator_path(part)
    if validator:
        path.write_text(validator + "\n")
    else:
        path.unlink(missing_ok=True)


def _fetch_once(
    spec: FileSpec, part: Path, timeout: float, on_bytes: Callable[[int], None]
) -> None:
    """One HTTP exchange that appends to (or restarts) `part`; raises on any failure."""
    start = _size(part)
    if spec.size is not None and start > spec.size:
        log.warning("%s: part file longer than the file (%d > %d); starting again", part, start, spec.size)
        part.unlink()
        start = 0
    if spec.size is not None and start == spec.size and start > 0:
        return
    try:
        response = _request(spec.url, start, timeout, _read_validator(part) if start else None)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            # Our part file is as long as the server's copy or longer: the retry starts from scratch.
            part.unlink()
        raise
    with response:
        is_page = response.headers.get_content_type() == "text/html"
        if is_page and not spec.relpath.endswith((".html", ".htm")):
            real_url = confirm_url(response.read(MAX_PAGE), response.url)
            if real_url:
                raise _FollowPage(real_url)
            raise DownloadError(
                f"{spec.url}: the server sent a web page, not the file (a sharing link meant for a browser, "
                "a sign-in page or a quota notice?); open it in a browser and copy the direct download link"
            )
        if response.status == 206 and _content_range_start(response) != start:
            part.unlink(missing_ok=True)
            raise http.client.HTTPException(f"{spec.relpath}: server sent a range we did not ask for")
        total = _total_size(response)
        if spec.size is not None and total is not None and total != spec.size:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{spec.relpath}: the server's file is {total:,} bytes, expected {spec.size:,} "
                f"(from {spec.url})"
            )
        if start and response.status != 206:
            log.info("%s: server ignored the Range request; restarting from byte 0", spec.relpath)
            on_bytes(-start)
        if response.status != 206:
            _write_validator(part, response)
        received = 0
        with open(part, "ab" if response.status == 206 else "wb") as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    received += len(block)
                    on_bytes(len(block))
            except http.client.IncompleteRead as err:
                # Keep what arrived before the cut: the next try resumes after it.
                out.write(err.partial)
                on_bytes(len(err.partial))
                raise
            finally:
                out.flush()
                os.fsync(out.fileno())
        length = response.headers.get("Content-Length", "")
    # http.client returns short reads silently when a connection closes early: count the bytes.
    if length.isdigit() and received < int(length):
        raise http.client.IncompleteRead(b"", int(length) - received)
    written = part.stat().st_size
    if spec.size is not None and written < spec.size:
        raise http.client.IncompleteRead(b"", spec.size - written)


def _fetch_following_pages(
    spec: FileSpec, part: Path, timeout: float, on_bytes: Callable[[int], None]
) -> FileSpec:
    """`_fetch_once`, following download-form pages (Google Drive); returns the spec that worked."""
    for _ in range(3):
        try:
            _fetch_once(spec, part, timeout, on_bytes)
            return spec
        except _FollowPage as page:
            log.info("%s: following the download form to %s", spec.relpath, page.url)
            spec = replace(spec, url=page.url)
    raise DownloadError(f"{spec.url}: web pages keep linking to other pages; giving up")


def download_file(
    spec: FileSpec,
    dest: str | os.PathLike,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30.0,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download one file into `dest / spec.relpath`, resuming and retrying; check size and checksum.

    A file already there that passes the checks is kept. Transient failures (connection cut, timeout,
    HTTP 408/429/5xx) are retried up to `retries` times in a row, waiting `backoff * 2**n` seconds; a
    try that received bytes before failing resets the count, so a flaky link still finishes.

    Args:
        spec: what to fetch and what to expect.
        dest: the destination folder.
        retries: how many retries after the first try.
        backoff: the first wait in seconds; it doubles each retry (capped at 60 s).
        timeout: socket timeout per request, in seconds.
        on_bytes: called with each count of bytes received (negative when a restart discards bytes).

    Returns:
        The path of the complete file.

    Raises:
        ChecksumError: the complete file has the wrong size or checksum (it is removed).
        DownloadError: the server refused the file, or every retry failed.

    >>> download_file.__name__  # network access: see tests/test_download.py
    'download_file'
    """
    target = Path(dest) / spec.relpath
    report = on_bytes or (lambda count: None)
    if target.exists():
        try:
            check_file(target, spec)
            return target
        except ChecksumError as err:
            log.warning("%s; downloading it again", err)
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    if part.exists():
        report(part.stat().st_size)
    failures = 0
    while True:
        before = _size(part)
        try:
            spec = _fetch_following_pages(spec, part, timeout, report)
            break
        except urllib.error.HTTPError as err:
            if err.code not in RETRY_STATUSES and err.code != 416:
                raise DownloadError(f"{spec.url}: HTTP {err.code} {err.reason}") from None
            problem = f"HTTP {err.code}"
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as err:
            problem = f"{type(err).__name__}: {err}"
        # A try that moved the file forward is a flaky link, not a dead one: it does not use up a retry.
        failures = 1 if _size(part) > before else failures + 1
        if failures > retries:
            raise DownloadError(f"{spec.url}: gave up after {failures} failed tries in a row ({problem})")
        wait = min(backoff * 2 ** (failures - 1), 60.0)
        log.info("%s: %s; retry %d/%d in %.1f s", spec.relpath, problem, failures, retries, wait)
        time.sleep(wait)
    try:
        check_file(part, spec)
    except ChecksumError:
        part.unlink()
        _validator_path(part).unlink(missing_ok=True)
        raise
    os.replace(part, target)
    _validator_path(part).unlink(missing_ok=True)
    return target
