"""The annotated video plays in a browser (headless Debian chromium); the mp4v fallback does not."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest
from serve_helpers import CHROMIUM, CHROMIUM_ARGS

from maskdetect.detect import video_out

pytestmark = pytest.mark.browser

LOAD = """(src) => new Promise(done => {
    const video = document.createElement('video'); video.muted = true;
    video.onloadeddata = () => done({ok: true, width: video.videoWidth, height: video.videoHeight});
    video.onerror = () => done({ok: false, error: video.error && video.error.message});
    setTimeout(() => done({ok: false, error: 'timeout'}), 10000);
    video.src = src; document.body.appendChild(video);
})"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _write(path, codec):
    sink = video_out.VideoSink(path, 10.0, codec=codec)
    for i in range(10):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, 10 * i: 10 * i + 30] = (200, 40, 40)
        sink.write(frame)
    return sink.publish()


def test_the_h264_video_plays_in_chromium_and_mp4v_does_not(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-tools.sh (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    _write(tmp_path / "h264.mp4", "h264")
    _write(tmp_path / "mp4v.mp4", "mp4v")
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(base + "/")
            h264 = page.evaluate(LOAD, "/h264.mp4")
            mp4v = page.evaluate(LOAD, "/mp4v.mp4")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert h264 == {"ok": True, "width": 160, "height": 120}
    assert mp4v["ok"] is False  # why the fallback says browsers do not play it
