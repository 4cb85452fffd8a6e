"""A local HTTP server with Range support and failure switches, and fixture archives in the real layouts.

Used by tests/test_download*.py; everything binds to 127.0.0.1 and lives only for one test.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; tests flip these between requests.

    Attributes:
        files: URL path -> body.
        ignore_range: answer 200 with the whole body even when a Range is asked for.
        cut_after: URL path -> cut the connection after this many body bytes (once, then cleared).
        cut_every: URL path -> cut every response after this many body bytes (a flaky link).
        fail_times: URL path -> answer 503 this many times before serving it.
        content_types: URL path -> Content-Type (default: image/png for .png, else application/zip).
        etags: URL path -> the file's ETag; a Range with another If-Range gets the whole file.
        slow: URL path -> seconds to wait before each 16 kB of the body.
        requests: (path, headers) of every request received, in order.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    cut_after: dict[str, int] = field(default_factory=dict)
    cut_every: dict[str, int] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler_for(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            with state.lock:
                state.requests.append((path, dict(self.headers.items())))
                failures = state.fail_times.get(path, 0)
                if failures:
                    state.fail_times[path] = failures - 1
                cut = state.cut_after.pop(path, state.cut_every.get(path))
            if failures:
                self.send_error(503, "busy, try later")
                return
            body = state.files.get(path)
            if body is None:
                self.send_error(404, "no such file")
                return
            start, end = 0, len(body) - 1
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            etag = state.etags.get(path)
            if_range = self.headers.get("If-Range")
            if match and if_range is not None and if_range != etag:
                match = None  # the client's copy is of another version: send the whole file
            if match and not state.ignore_range:
                start = int(match.group(1))
                end = min(int(match.group(2)), end) if match.group(2) else end
                if start >= len(body):
                    self.send_error(416, "range not satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            if etag:
                self.send_header("ETag", etag)
            default_type = "image/png" if path.endswith(".png") else "application/zip"
            self.send_header("Content-Type", state.content_types.get(path, default_type))
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            chunk = body[start : end + 1]
            chunk = chunk if cut is None else chunk[:cut]
            delay = state.slow.get(path, 0.0)
            try:
                for offset in range(0, len(chunk), 16384):
                    time.sleep(delay)
                    self.wfile.write(chunk[offset : offset + 16384])
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away (a test that interrupts it)
            if cut is not None:
                self.close_connection = True

    return Handler


class FixtureServer:
    """`with FixtureServer() as server:` serves `server.state.files` at `server.url(path)`."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self.state))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def noise_jpeg(seed: int, size: int = 96) -> bytes:
    """A JPEG of random pixels: it hardly compresses, so archives of it have a realistic ratio."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def maskedface_zip(size: int = 96) -> bytes:
    """A zip in MaskedFace-Net's layout: one CMFD and one IMFD image."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("CMFD/00000/00001_Mask.jpg", noise_jpeg(1, size))
        zipped.writestr("IMFD/00000/00001_Mask_Mouth_Chin.jpg", noise_jpeg(2, size))
    return buffer.getvalue()


def zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    """A deflated zip of the given (name or ZipInfo, data) entries, written as is (no name cleaning)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in entries:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, data)
    return buffer.getvalue()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def png_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def ffhq_index(server: FixtureServer, count: int, bad_md5: set[int] = frozenset()) -> dict:
    """An ffhq-dataset-v2.json-shaped dict whose thumbnails are served by `server`."""
    index = {}
    for number in range(count):
        relpath = f"thumbnails128x128/00000/{number:05d}.png"
        body = png_bytes(number)
        server.state.files["/" + relpath] = body
        md5 = hashlib.md5(body).hexdigest()
        if number in bad_md5:
            md5 = "0" * 32
        thumb = {"file_url": server.url("/" + relpath), "file_path": relpath, "file_size": len(body),
                 "file_md5": md5, "pixel_size": [128, 128]}
        image = {"file_url": server.url(f"/images1024x1024/00000/{number:05d}.png"),
                 "file_path": f"images1024x1024/00000/{number:05d}.png", "file_size": 10**6,
                 "file_md5": "f" * 32, "pixel_size": [1024, 1024]}
        index[str(number)] = {"category": "training", "image": image, "thumbnail": thumb}
    return index
