"""Private mode: the web page runs the server's pipeline in headless Chromium (onnxruntime-web) with
the bundled model, gives the server's answers, and sends the photo nowhere."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import CHROMIUM, CHROMIUM_ARGS

from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer
from maskdetect.serve.web_model import ORT_DIR_ENV, WEB_MODEL_PATH, missing_ort_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_private_mode import SAMPLE, agreement, check_in_page, open_private_page, write_y4m  # noqa: E402

MODEL_FILES = (WEB_MODEL_PATH, "/static/ort/", "/static/private/")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    from maskdetect.predict import Predictor

    if missing_ort_files():
        pytest.fail(f"onnxruntime-web is missing ({', '.join(missing_ort_files())}): run scripts/install.sh")
    with BackgroundServer(create_app(Predictor())) as server:  # the bundled model, as `serve` runs it
        yield server


def server_answer(server, photo: Path) -> dict:
    files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
    return httpx.post(server.url + "/v1/detect", files=files, timeout=120).json()


def test_the_browser_gives_the_servers_faces_and_labels_on_the_50_samples(browser, server):
    photos = sorted(SAMPLE.glob("*.jpg"))
    assert len(photos) == 50
    requests: list = []
    page = open_private_page(browser, server.url, requests)
    loaded = len(requests)
    same = total = 0
    misses = []
    for photo in photos:
        ours, theirs = check_in_page(page, photo), server_answer(server, photo)
        agree, count = agreement(ours, theirs)
        same, total = same + agree, total + count
        if agree < count:
            misses.append((photo.name, agree, count))
    assert total > 400
    assert same / total >= 0.98, (same, total, misses)
    # after the models loaded, the page asked for nothing: 50 photos, no request at all
    assert [r.url for r in requests[loaded:]] == []
    page.context.close()


def test_no_request_carries_the_photo(browser, server, tmp_path):
    requests: list = []
    page = open_private_page(browser, server.url, requests)
    photo = SAMPLE / "maksssksksss104.jpg"
    body = photo.read_bytes()
    result = check_in_page(page, photo)
    assert result["faces"] and "Checked in this browser" in page.text_content("#status")
    # a click on a face asks for "Why?", which runs on the server: in private mode it says so instead
    page.click(".why-button >> nth=0")
    assert "private mode off" in page.text_content("#why-status")
    for request in requests:
        path = httpx.URL(request.url).path
        assert request.method == "GET" and path == "/" or path.startswith(MODEL_FILES) or (
            path in ("/static/app.js", "/static/style.css", "/v1/model")), (request.method, request.url)
        assert not request.post_data_buffer or body[:4096] not in request.post_data_buffer
    assert not any(httpx.URL(r.url).path.startswith("/v1/detect") for r in requests)
    page.context.close()


@pytest.mark.parametrize(("url", "said"), [
    ("**/v1/web-model/files/**", "answered 404"),  # a model file
    ("**/static/ort/*.wasm", "backend"),  # WebAssembly: onnxruntime-web finds no backend it can run
    ("**/static/ort/*.mjs", "onnxruntime-web did not load"),
])
def test_when_the_models_cannot_load_the_page_says_so_and_offers_the_server(browser, server, url, said):
    context = browser.new_context()
    page = context.new_page()
    page.route(url, lambda route: route.fulfill(status=404, body="gone"))
    page.goto(server.url + "/")
    page.check("#private-mode")
    page.wait_for_selector("#private-box[data-state='unavailable']", state="attached", timeout=60_000)
    note = page.text_content("#private-status")
    assert note.startswith("Private mode is unavailable") and said in note, note
    assert "checked on the server" in note
    assert not page.is_checked("#private-mode")
    # the server path still works
    page.set_input_files("#file-input", str(SAMPLE / "maksssksksss104.jpg"))
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=60_000)
    context.close()


def test_a_bad_file_in_private_mode_is_named_and_the_page_goes_on(browser, server, tmp_path):
    page = open_private_page(browser, server.url)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    page.set_input_files("#file-input", str(broken))
    page.wait_for_selector("#status.error", timeout=30_000)
    assert page.text_content("#status") == ("Could not check broken.jpg: this browser cannot decode it (the "
                                            "server reads HEIC too: turn private mode off)")
    huge = tmp_path / "huge.png"  # 60 megapixels of one colour: a small file, past the server's 50 MP
    Image.new("L", (10_000, 6_000)).save(huge)
    page.set_input_files("#file-input", str(huge))
    page.wait_for_selector("#status.error:has-text('huge.png')", timeout=60_000)
    assert page.text_content("#status").endswith("10000×6000 is more than 50 megapixels")
    result = check_in_page(page, SAMPLE / "maksssksksss104.jpg")  # and the next photo is checked
    assert result["faces"]
    page.context.close()


def linear_rgb_profile() -> bytes:
    """An ICC v2 display profile: sRGB's primaries with a linear tone curve (gamma 1.0), which a
    browser honours (darks brighten) and the server, like Pillow, does not."""
    def fixed(*values: float) -> bytes:
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    def xyz(*values: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + fixed(*values)

    text = b"linear sRGB"
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    tags = [(b"desc", b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0" * 80),
            (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
            (b"cprt", b"text" + b"\0" * 4 + b"none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"\0" * 4 + struct.pack(">I", 0x02100000)
              + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28 + fixed(0.9642, 1.0, 0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_photo_with_a_colour_profile_gives_the_servers_answer(browser, server, tmp_path):
    # Phones embed Display P3 profiles; the server reads the pixels as they are, so the page must too.
    photo = tmp_path / "profiled.jpg"
    Image.open(SAMPLE / "maksssksksss104.jpg").save(photo, quality=95, icc_profile=linear_rgb_profile())
    page = open_private_page(browser, server.url)
    ours, theirs = check_in_page(page, photo), server_answer(server, photo)
    assert agreement(ours, theirs) == (len(theirs["faces"]), len(theirs["faces"]))
    assert [f["detection_score"] for f in ours["faces"]] == pytest.approx(
        [f["detection_score"] for f in theirs["faces"]], abs=1e-3)
    page.context.close()


PIPELINE_JS = Path(__file__).resolve().parents[1] / "src/maskdetect/serve/static/private/pipeline.js"


def run_js_resize(call: str, pixels: np.ndarray) -> bytes:
    """pipeline.js's `call` (a function of `src`, the bytes given) run by node on `pixels`."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run scripts/install.sh (it installs npm, and node with it)")
    script = (f"import {{ pilResizeBilinear, resizeForDetector }} from {json.dumps(PIPELINE_JS.as_uri())};\n"
              "const chunks = []; for await (const c of process.stdin) chunks.push(c);\n"
              "const src = new Uint8Array(Buffer.concat(chunks));\n"
              f"process.stdout.write(Buffer.from({call}));")
    done = subprocess.run([node, "--input-type=module", "-e", script], input=pixels.tobytes(),
                          capture_output=True, check=True, timeout=60)
    return done.stdout


@pytest.mark.parametrize("side", [97, 224, 300, 500])
def test_the_crop_is_resized_as_pillow_does_to_the_bit(side):
    # faces/crop.py: Image.resize(BILINEAR), antialiased when it shrinks; the labels hang on it
    square = np.random.default_rng(side).integers(0, 256, (side, side, 3), np.uint8)
    ours = np.frombuffer(run_js_resize(f"pilResizeBilinear(src, {side}, 224)", square), np.uint8)
    expected = np.asarray(Image.fromarray(square).resize((224, 224), Image.BILINEAR))
    assert np.array_equal(ours.reshape(224, 224, 3), expected)


@pytest.mark.parametrize(("size", "to"), [((400, 267), (960, 641)), ((1280, 960), (960, 720)),
                                          ((640, 480), (320, 240)), ((1000, 700), (960, 672))])
def test_the_detector_input_is_resized_as_opencv_does_to_the_bit(size, to):
    # faces/resize.py resize_pixels: INTER_LINEAR to enlarge (the samples), INTER_AREA to shrink
    from maskdetect.faces.resize import resize_pixels

    (w, h), (dw, dh) = size, to
    rgb = np.random.default_rng(w).integers(0, 256, (h, w, 3), np.uint8)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
    ours = np.frombuffer(run_js_resize(f"resizeForDetector(src, {w}, {h}, {dw}, {dh})", rgba), np.uint8)
    assert np.array_equal(ours.reshape(dh, dw, 4)[..., :3], resize_pixels(rgb, dw, dh, area=True))


def test_web_model_refuses_a_detector_the_browser_does_not_run():
    from fastapi.testclient import TestClient

    predictor = SimpleNamespace(detector=SimpleNamespace(name="blazeface"), classes=("covered",))
    answer = TestClient(create_app(predictor)).get(WEB_MODEL_PATH)  # no lifespan: the stub as it is
    assert answer.status_code == 503
    assert answer.json()["detail"] == ("private mode is unavailable: private mode runs RetinaFace in the "
                                       "browser; this server's photo detector is blazeface")


def test_without_onnxruntime_web_the_server_says_why(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv(ORT_DIR_ENV, str(tmp_path))  # an install without npm: no dist files
    app = create_app(lambda image: [])
    with TestClient(app) as client:
        answer = client.get(WEB_MODEL_PATH)
        assert answer.status_code == 503
        assert "onnxruntime-web is not installed" in answer.json()["detail"]
        assert "ort.wasm.min.mjs" in answer.json()["detail"]
        assert client.get("/static/ort/ort.wasm.min.mjs").status_code == 404
        assert client.get("/static/ort/../../web_model.py").status_code == 404


def test_the_camera_runs_live_in_the_browser(playwright, server, tmp_path):
    clip = write_y4m(tmp_path / "clip.y4m", SAMPLE / "maksssksksss104.jpg")
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    try:
        requests: list = []
        page = open_private_page(browser, server.url, requests)
        page.context.grant_permissions(["camera"], origin=server.url)
        loaded = len(requests)
        page.click("#camera-start")
        # live frames: boxes drawn on several frames in a row, without a click on Capture
        deadline = time.monotonic() + 60
        while int(page.get_attribute("#canvas", "data-frames") or 0) < 5:
            assert time.monotonic() < deadline, page.text_content("#status")
            time.sleep(0.1)
        assert int(page.get_attribute("#canvas", "data-boxes")) >= 1
        assert float(page.get_attribute("#canvas", "data-fps")) > 0  # a smoke check: the bench measures
        assert "Live in this browser" in page.text_content("#status")
        assert page.is_hidden("#camera-capture")  # every frame is checked already
        page.click("#camera-stop")
        assert [r.url for r in requests[loaded:]] == []
    finally:
        browser.close()
