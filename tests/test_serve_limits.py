"""Bad input: every case is a 4xx with a clear JSON message, and the server keeps answering."""

from __future__ import annotations

import io
import tempfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import PHOTO_NAMES, FakePredictor, GatedPredictor, photo_dir, photo_jpeg, png_claiming_size

from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])


@pytest.fixture
def client():
    with TestClient(create_app(FakePredictor())) as client:
        yield client


def assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["detail"]
    for word in words:
        assert word in message, message


def assert_still_answering(client, photo: bytes) -> None:
    response = client.post("/v1/detect", files={"image": ("ok.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text


def test_truncated_jpeg(client, photo):
    response = client.post("/v1/detect", files={"image": ("cut.jpg", photo[: len(photo) // 2], "image/jpeg")})
    assert_refused(response, 422, "cut.jpg", "truncated")
    assert_still_answering(client, photo)


def test_a_corrupt_upload_named_like_a_size_error_is_still_422(client, photo):
    # The status comes from the kind of error, not from words in a message that holds the file name.
    name = "too many pixels over the limit.jpg"
    response = client.post("/v1/detect", files={"image": (name, photo[: len(photo) // 2], "image/jpeg")})
    assert_refused(response, 422, "corrupt or truncated")


def test_text_file_in_form(client, photo):
    text = b"just some text\n" * 20
    response = client.post("/v1/detect", files={"image": ("notes.txt", text, "text/plain")})
    assert_refused(response, 422, "notes.txt", "not an image")
    assert_still_answering(client, photo)


def test_text_body_is_wrong_content_type(client, photo):
    response = client.post("/v1/detect", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_refused(response, 415, "text/plain", "image")
    assert_still_answering(client, photo)


def test_png_header_claiming_20000_squared(client, photo):
    response = client.post("/v1/detect", content=png_claiming_size(20_000, 20_000),
                           headers={"Content-Type": "image/png"})
    assert_refused(response, 413, "pixels")
    assert_still_answering(client, photo)


def test_pixel_limit_is_configurable(photo):
    with TestClient(create_app(FakePredictor(), max_pixels=100_000)) as client:
        response = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
        assert_refused(response, 413, "640x480", "100,000")


def test_empty_body(client, photo):
    response = client.post("/v1/detect", content=b"", headers={"Content-Type": "image/jpeg"})
    assert_refused(response, 400, "empty")
    assert_still_answering(client, photo)


def test_empty_form_field(client, photo):
    response = client.post("/v1/detect", files={"image": ("none.jpg", b"", "image/jpeg")})
    assert_refused(response, 400, "empty")
    assert_still_answering(client, photo)


def test_wrong_form_field(client, photo):
    response = client.post("/v1/detect", files={"file": ("p.jpg", photo, "image/jpeg")})
    assert_refused(response, 400, "'image'", "'file'")
    assert_still_answering(client, photo)


def test_no_content_type(client, photo):
    response = client.post("/v1/detect", content=photo)
    assert "content-type" not in response.request.headers
    assert_refused(response, 415, "content type")


def test_malformed_multipart(client, photo):
    response = client.post("/v1/detect", content=b"--zz\r\ngarbage",
                           headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400, response.text
    assert_still_answering(client, photo)


def test_50mb_upload_refused(client, photo):
    response = client.post("/v1/detect", content=b"\xff" * (50 * 1024 * 1024),
                           headers={"Content-Type": "image/jpeg"})
    assert_refused(response, 413, "52,428,800", "10,485,760")
    assert_still_answering(client, photo)


def test_chunked_upload_over_limit_refused_while_reading(photo):
    def chunks():
        for _ in range(64):
            yield b"\0" * 4096

    with TestClient(create_app(FakePredictor(), max_bytes=100_000)) as client:
        response = client.post("/v1/detect", content=chunks(), headers={"Content-Type": "image/jpeg"})
        assert "content-length" not in response.request.headers
        assert_refused(response, 413, "more than", "100,000")


def test_uploads_never_touch_disk(client, monkeypatch):
    noise = np.random.default_rng(0).integers(0, 256, (1800, 2400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    big = buffer.getvalue()
    assert len(big) > 2 * 1024 * 1024  # over Starlette's 1 MB spool threshold

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    response = client.post("/v1/detect", files={"image": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["width"] == 2400


def test_real_server_survives_bad_input(photo):
    """Over a real socket: a 50 MB upload and garbage are refused, then a photo still works."""
    with BackgroundServer(create_app(FakePredictor())) as server, httpx.Client(base_url=server.url) as http:
        try:
            response = http.post("/v1/detect", content=b"\0" * (50 * 1024 * 1024),
                                 headers={"Content-Type": "image/jpeg"}, timeout=30)
            assert_refused(response, 413, "over the limit")
        except (httpx.WriteError, httpx.RemoteProtocolError):
            pass  # the server may close the socket before a 50 MB body has been sent: also a refusal
        assert_refused(http.post("/v1/detect", content=b"GIF89a nope", headers={"Content-Type": "image/gif"}),
                       422, "not an image")
        response = http.post("/v1/detect", files={"image": ("ok.jpg", photo, "image/jpeg")})
        assert response.status_code == 200 and response.json()["counts"]["covered"] == 1


def test_serve_command_defaults_to_loopback_without_cors(monkeypatch):
    from maskdetect.cli import main

    served = []
    monkeypatch.setattr("maskdetect.serve.commands.serve", served.append)
    monkeypatch.delenv("MASKDETECT_PORT", raising=False)
    monkeypatch.delenv("MASKDETECT_WORKERS", raising=False)
    assert main(["serve"]) == 0
    options = served[-1]
    assert (options.host, options.port, options.cors_origins, options.workers) == ("127.0.0.1", 8000, (), 1)
    assert options.max_bytes == 10 * 1024 * 1024
    assert main(["serve", "--cors-origin", "http://a.example", "--cors-origin", "http://b"]) == 0
    assert served[-1].cors_origins == ("http://a.example", "http://b")


def test_serve_command_with_a_missing_checkpoint_fails_before_listening(tmp_path, capsys):
    from maskdetect.cli import main

    assert main(["serve", "--port", "0", "--model", str(tmp_path / "missing.pt")]) == 2
    assert f"{tmp_path / 'missing.pt'}: no such model" in capsys.readouterr().err


def test_small_image_round_trip(client):
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (255, 0, 0)).save(buffer, format="BMP")
    response = client.post("/v1/detect", content=buffer.getvalue(), headers={"Content-Type": "image/bmp"})
    assert response.status_code == 200 and response.json()["width"] == 3


def test_busy_server_answers_503_not_a_pile_up(photo):
    predictor = GatedPredictor()
    with BackgroundServer(create_app(predictor, max_pending=1)) as server, ThreadPoolExecutor(1) as pool:
        files = {"image": ("p.jpg", photo, "image/jpeg")}
        first = pool.submit(httpx.post, server.url + "/v1/detect", files=files, timeout=30)
        assert predictor.entered.wait(30)
        second = httpx.post(server.url + "/v1/detect", files=files, timeout=30)
        assert_refused(second, 503, "busy")
        assert second.headers["retry-after"] == "1"
        assert httpx.get(server.url + "/healthz").status_code == 200  # the event loop is free
        predictor.release.set()
        assert first.result().status_code == 200
        assert httpx.post(server.url + "/v1/detect", files=files, timeout=30).status_code == 200
