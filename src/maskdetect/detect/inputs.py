"""What a `detect` run reads: image and video files, and folders of them, each with the name its
annotated copy takes under the output folder."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from maskdetect.fileio import unused_name
from maskdetect.images import IMAGE_SUFFIXES, find_files

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


STREAM_SCHEMES: tuple[str, ...] = ("http", "https", "rtsp", "rtmp", "udp", "tcp")


def is_stream_url(text: str) -> bool:
    """Whether an input names a stream OpenCV reads by URL rather than a file.

    >>> is_stream_url("http://127.0.0.1:8080/video.mjpg"), is_stream_url("clips/a.mp4")
    (True, False)
    """
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


@dataclass(frozen=True)
class Job:
    """One input (a file, or a stream URL) and the path, under the output folder, that its annotated
    copy takes."""

    path: Path
    out_name: Path
    kind: str  # "image", "video" or "stream"
    url: str = ""

    @property
    def source(self) -> str:
        """What to open: the stream's URL, or the file's path."""
        return self.url or str(self.path)


def collect_inputs(inputs: Iterable[str | Path]) -> tuple[list[Job], list[str]]:
    """`find_jobs`, with each input left out as one line, "PATH: why".

    >>> collect_inputs(["/no/such/file.jpg"])[1]
    ['/no/such/file.jpg: no such file or folder']
    """
    jobs, skipped = find_jobs(inputs)
    return jobs, [f"{path}: {why}" for path, why in skipped]


def find_jobs(inputs: Iterable[str | Path]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Expand files and folders (recursively) into jobs; what cannot be read comes back with its reason.

    Folders are walked by `maskdetect.images.find_files`: hidden entries are left out, and an entry
    with an image or video suffix that is no readable file (a dangling link, a FIFO, a folder named
    `x.jpg`) is reported with its reason. A file reached twice (given twice, through a link, or as a
    folder and a file inside it) is one job, the first way it was reached: its record is written once.
    Every job gets an output name of its own, compared without case (as macOS and Windows do): two
    inputs that would write the same file, `x.jpg` in two folders given apart, or `a.tif` beside
    `a.webp` (both annotated as `a.jpg`), never overwrite each other.

    Args:
        inputs: image or video files, folders of them, and stream URLs (`STREAM_SCHEMES`), which
            are read as given (their annotated video is named after the URL).

    Returns:
        The jobs, in the order given (a folder's files sorted), and (path, why) per input left out:
        the path as given, or the entry of a folder.

    >>> find_jobs(["/no/such/file.jpg"])[1]
    [('/no/such/file.jpg', 'no such file or folder')]
    """
    jobs: list[Job] = []
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    reached: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if is_stream_url(str(raw)):
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(raw).partition("://")[2]).strip("._")[:80] or "stream"
            name = unused_name(lambda s: f"{s}.annotated.mp4", stem, seen)
            jobs.append(Job(path, Path(name), "stream", url=str(raw)))
            continue
        if path.is_dir():
            files = find_files(path, (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES),
                               on_skip=lambda entry, why: errors.append((str(entry), why)))
            pairs = [(p, Path(path.name) / p.relative_to(path)) for p in files]
        elif path.is_file():
            pairs = [(path, Path(path.name))]
        else:
            errors.append((str(raw), "no such file or folder"))
            continue
        for file, relative in pairs:
            if file.resolve() in reached:
                log.info("%s: given more than once; detected once", file)
                continue
            reached.add(file.resolve())
            kind = "video" if file.suffix.lower() in VIDEO_SUFFIXES else "image"
            name = unused_name(functools.partial(_output_name, relative, kind), relative.stem, seen)
            jobs.append(Job(file, Path(name), kind))
    return jobs, errors


def _output_name(relative: Path, kind: str, stem: str) -> str:
    # The annotated copy of `relative`, named `stem`: images stay JPEG or PNG, videos become mp4.
    named = relative.with_name(stem + relative.suffix)
    if kind == "video":
        return str(named.with_suffix(".annotated.mp4"))
    return str(named if named.suffix.lower() in (".jpg", ".png") else named.with_suffix(".jpg"))
