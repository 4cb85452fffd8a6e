"""End to end: the real server and a real Predictor, driven through the web page in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from serve_helpers import CHROMIUM, CHROMIUM_ARGS, make_checkpoint_file, photo_dir

from maskdetect.labels import CLASS_COLOURS
from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer

PHOTO = "maksssksksss100.jpg"  # three people, all faces large enough for the detector

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from maskdetect.predict import Predictor

    predictor = Predictor(make_checkpoint_file(tmp_path_factory.mktemp("model")))
    with BackgroundServer(create_app(predictor)) as server:
        yield server


@pytest.fixture(scope="module")
def browser_with_camera(playwright):
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requests = []
    page.console_errors = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.goto(server.url + "/")
    yield page
    context.close()


def test_upload_draws_boxes_and_counts(page, server, shared_data, tmp_path):
    photo = photo_dir(shared_data) / PHOTO
    files = {"image": (PHOTO, photo.read_bytes(), "image/jpeg")}
    expected = httpx.post(server.url + "/v1/detect", files=files).json()
    assert expected["faces"], "the detector should find the faces of this photo"

    page.set_input_files("#file-input", str(photo))
    # Selectors, not wait_for_function: the page's CSP (rightly) forbids evaluating strings.
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)

    faces = len(expected["faces"])
    assert page.get_attribute("#canvas", "data-boxes") == str(faces)
    assert page.get_attribute("#face-list", "data-count") == str(faces)
    assert page.locator("#face-list li").count() == faces
    for cls, n in expected["counts"].items():
        assert page.text_content(f'[data-count-for="{cls}"]') == str(n)
    status = page.text_content("#status")
    assert status.startswith(f"Found {faces} face"), status
    assert page.get_attribute("#status", "aria-live") == "polite"
    # The canvas holds the photo (scaled up to its shown size), with boxes drawn in class colours.
    scale = float(page.get_attribute("#canvas", "data-scale"))
    size = page.evaluate("[canvas.width, canvas.height]")
    assert size == pytest.approx([expected["width"] * scale, expected["height"] * scale], abs=1)
    # a face whose box no other box crosses: its left edge shows its own class colour
    boxes = [face["box"] for face in expected["faces"]]

    def alone(box):
        return not any(b is not box and b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3]
                       for b in boxes)

    first = next(face for face in expected["faces"] if alone(face["box"]))
    # the 3 x 3 pixels around the edge's middle: a box at a fractional position is antialiased
    pixels = page.evaluate(
        "([x, y]) => Array.from(canvas.getContext('2d').getImageData(x - 1, y - 1, 3, 3).data)",
        [round(first["box"][0] * scale), round((first["box"][1] + first["box"][3]) / 2 * scale)],
    )
    expected_rgb = list(CLASS_COLOURS[first["label"]])
    distances = [max(abs(a - b) for a, b in zip(pixels[i:i + 3], expected_rgb, strict=True))
                 for i in range(0, len(pixels), 4)]
    assert min(distances) <= 30, (pixels, expected_rgb)

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("MASKDETECT_SCREENSHOT_DIR"):  # for a person to look at
        shutil.copy(shot, Path(os.environ["MASKDETECT_SCREENSHOT_DIR"]) / "serve-page.png")

    assert all(url.startswith(server.url) or url.startswith(("blob:", "data:")) for url in page.requests), (
        page.requests)
    assert page.console_errors == []


def test_on_a_crowd_photo_no_label_hides_another(page, tmp_path):
    # The sample's most crowded photo (61 faces in 400x245): the page places its labels as the
    # annotated pictures do (maskdetect.draw), none over another, each with its face number.
    crowd = Path(__file__).resolve().parents[1] / "src/maskdetect/assets/sample/andrewmvd/images"
    page.set_input_files("#file-input", str(crowd / "maksssksksss240.jpg"))
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
    labels = json.loads(page.get_attribute("#canvas", "data-labels"))
    assert len(labels) == int(page.get_attribute("#canvas", "data-boxes")) >= 10
    for number, (x, y, w, h, text) in enumerate(labels, 1):
        assert text.split()[0] == str(number)
        for x2, y2, w2, h2, text2 in labels[number:]:
            assert not (x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h), (text, text2)
    assert page.console_errors == []


def test_a_photo_over_the_servers_limits_is_shrunk_by_the_page_and_checked(browser, tmp_path, shared_data):
    from PIL import Image

    from maskdetect.predict import Predictor

    big = tmp_path / "phone.jpg"  # a photo past both limits of this server, like a phone's 48 MP shot
    Image.open(photo_dir(shared_data) / PHOTO).convert("RGB").resize((2400, 1800)).save(big, quality=95)
    app = create_app(Predictor(make_checkpoint_file(tmp_path)), max_bytes=big.stat().st_size // 3,
                     max_pixels=2_000_000)
    with BackgroundServer(app) as small_server:
        files = {"image": ("phone.jpg", big.read_bytes(), "image/jpeg")}
        assert httpx.post(small_server.url + "/v1/detect", files=files).status_code == 413
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(small_server.url + "/")
        page.wait_for_selector("#model-name:has-text('Model: small_cnn')", timeout=15_000)  # limits known
        page.set_input_files("#file-input", str(big))
        page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
        status = page.text_content("#status")
        assert status.startswith("Found") and "2400×1800 sent as" in status, status
        # Drawn on the original photo, at its own size (or larger), with boxes scaled to it.
        assert page.evaluate("canvas.width") >= 2400 * float(page.get_attribute("#canvas", "data-scale")) - 1
        context.close()


def test_bad_file_shows_the_servers_message(page, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a photo at all\n")
    page.set_input_files("#file-input", str(fake))
    page.wait_for_selector("#status.error", timeout=15_000)
    status = page.text_content("#status")
    assert "notes.jpg" in status and "not an image" in status, status
    assert page.get_attribute("#canvas", "data-boxes") == "0"


def test_keyboard_reaches_the_controls(page):
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "choose-button"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "camera-start"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_page_loads_nothing_from_elsewhere(page, server):
    html = httpx.get(server.url + "/")
    assert "default-src 'self'" in html.headers["content-security-policy"]
    for name in ("/", "/static/app.js", "/static/style.css"):
        text = httpx.get(server.url + name).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    assert page.text_content("#model-name").startswith("Model: small_cnn")


def test_drop_a_photo(page, server, shared_data):
    photo = photo_dir(shared_data) / PHOTO
    data = base64.b64encode(photo.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        data,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
    assert page.text_content("#status").startswith("Found")


def test_camera_capture(browser_with_camera, server):
    context = browser_with_camera.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera"], origin=server.url)
    page = context.new_page()
    page.goto(server.url + "/")
    page.click("#camera-start")
    page.wait_for_selector("#camera:not([hidden])", timeout=15_000)
    page.wait_for_selector("#camera-capture:not([disabled])", timeout=15_000)  # enabled once frames arrive
    assert page.evaluate("document.activeElement.id") == "camera-capture"
    page.click("#camera-capture")
    # Chromium's fake camera shows a test pattern, not a face: the round trip is what is checked.
    page.wait_for_selector("#canvas:not([hidden])", timeout=30_000)
    status = page.text_content("#status")
    assert status == "No faces found in the camera frame." or status.startswith("Found"), status
    assert page.get_attribute("#canvas", "data-boxes") == page.get_attribute("#face-list", "data-count")
    page.click("#camera-stop")
    assert page.is_hidden("#camera")
    context.close()



def click_face(page, box, width, height):
    """Click the middle of a face box (in the server's pixels) on the shown canvas."""
    shown = page.locator("#canvas").bounding_box()
    size = page.evaluate("[canvas.width, canvas.height]")
    fit = min(shown["width"] / size[0], shown["height"] / size[1])  # object-fit: contain
    left = shown["x"] + (shown["width"] - size[0] * fit) / 2
    top = shown["y"] + (shown["height"] - size[1] * fit) / 2
    x = (box[0] + box[2]) / 2 * size[0] / width * fit
    y = (box[1] + box[3]) / 2 * size[1] / height * fit
    page.mouse.click(left + x, top + y)


def test_clicking_a_face_shows_why(page, server, shared_data, tmp_path):
    # Issue 32: a click on a face shows the library's occlusion map blended on it and its share of
    # heat on the nose and mouth, as /v1/explain answers for that face's box.
    photo = photo_dir(shared_data) / PHOTO
    files = {"image": (PHOTO, photo.read_bytes(), "image/jpeg")}
    detected = httpx.post(server.url + "/v1/detect", files=files).json()
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
    assert page.is_hidden("#why") and page.is_visible("#why-hint")

    index = len(detected["faces"]) - 1  # the last: with several faces, the click must pick the one under it
    face = detected["faces"][index]
    click_face(page, face["box"], detected["width"], detected["height"])
    page.wait_for_selector("#why-image:not([hidden])", timeout=60_000)
    assert page.get_attribute("#why", "data-face") == str(index)
    assert page.get_attribute("#why-image", "src").startswith("data:image/png;base64,")
    assert page.evaluate("document.getElementById('why-image').naturalWidth") >= 200  # decoded
    box = ",".join(str(v) for v in face["box"])
    expected = httpx.post(f"{server.url}/v1/explain?box={box}", files=files, timeout=60).json()
    share = expected["nose_mouth"]["heat_share"]
    assert share is not None, expected["nose_mouth"]
    text = page.text_content("#why-share")
    assert text.startswith(f"Nose and mouth: {round(share * 100)}% of the heat"), text
    assert page.text_content("#why-heading") == f"Why is face {index + 1} {face['label']}?"

    # The keyboard reaches the same: each face in the list has a "Why?" button.
    asked = [url for url in page.requests if "/v1/explain?" in url]
    assert len(asked) == 1
    page.focus("#face-list li:first-child .why-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#why[data-face='0']:not([aria-busy])", timeout=60_000)
    assert len([url for url in page.requests if "/v1/explain?" in url]) == 2
    assert page.is_visible("#why-image") and page.text_content("#why-share").startswith("Nose and mouth:")

    shot = tmp_path / "why.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("MASKDETECT_SCREENSHOT_DIR"):  # for a person to look at
        shutil.copy(shot, Path(os.environ["MASKDETECT_SCREENSHOT_DIR"]) / "serve-why.png")
    assert page.console_errors == []
    assert all(url.startswith(server.url) or url.startswith(("blob:", "data:")) for url in page.requests)


def test_why_shows_the_servers_error_and_a_new_photo_clears_it(page, shared_data):
    # An explanation that fails (here a 501 from a server whose model has no weights to explain) is
    # said in the panel, not lost; choosing another photo clears the panel.
    detail = "explanations are not available for model.onnx: no torch weights"
    page.route("**/v1/explain?*", lambda route: route.fulfill(
        status=501, content_type="application/json", body=json.dumps({"detail": detail})))
    photo = photo_dir(shared_data) / PHOTO
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
    page.click("#face-list li:first-child .why-button")
    page.wait_for_selector("#why-status.error", timeout=15_000)
    assert page.text_content("#why-status") == f"Could not explain face 1: {detail}"
    assert page.is_hidden("#why-image")
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#why", state="hidden", timeout=30_000)
    page.wait_for_selector("#canvas:not([data-boxes='0'])", state="attached", timeout=30_000)
    assert page.is_hidden("#why")
