"""The REST API contract, through the app factory with an injected fake predictor."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import PHOTO_NAMES, FakePredictor, photo_dir, photo_jpeg

from maskdetect.serve import create_app


@pytest.fixture
def predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def client(predictor: FakePredictor):
    with TestClient(create_app(predictor)) as client:
        yield client


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[0])


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "fake"}


def test_model_describes_classes_and_limits(client):
    info = client.get("/v1/model").json()
    assert info["classes"] == ["covered", "incorrect", "uncovered"]
    assert info["colours"]["incorrect"] == "rgb(230,145,20)"
    assert info["limits"]["max_bytes"] == 10 * 1024 * 1024


def test_detect_multipart(client, predictor, photo):
    response = client.post("/v1/detect", files={"image": ("photo.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (640, 480)
    assert body["counts"] == {"covered": 1, "incorrect": 0, "uncovered": 1}
    assert [f["label"] for f in body["faces"]] == ["covered", "uncovered"]
    assert body["faces"][0]["box"] == pytest.approx([64, 48, 192, 192])
    assert body["model"] == "fake"
    assert "annotated_image" not in body
    assert predictor.sizes == [(640, 480)]


def test_detect_raw_body(client, predictor, photo):
    response = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["covered"] == 1
    assert predictor.calls == 1


def test_detect_png_with_alpha(client):
    buffer = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(buffer, format="PNG")
    response = client.post("/v1/detect", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert (response.json()["width"], response.json()["height"]) == (50, 40)


def test_annotate_adds_base64_jpeg(client, photo):
    response = client.post("/v1/detect?annotate=true", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    data_url = response.json()["annotated_image"]
    assert data_url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (640, 480)


def test_format_jpeg_returns_image(client, photo):
    response = client.post("/v1/detect?format=jpeg", content=photo, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-face-counts"] == "covered=1,incorrect=0,uncovered=1"
    assert Image.open(io.BytesIO(response.content)).size == (640, 480)


def test_bad_query_value_is_422_json(client, photo):
    response = client.post("/v1/detect?format=gif", content=photo, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 422
    assert "format" in response.json()["detail"]


def test_one_predictor_serves_every_request(client, predictor, photo):
    for _ in range(3):
        response = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200
    assert predictor.calls == 3


def test_predictor_loaded_once_at_startup(photo):
    built = []

    def load():
        built.append(FakePredictor())
        return built[-1]

    app = create_app(load_predictor=load)
    assert built == []  # nothing loads before the server starts
    with TestClient(app) as client:
        for _ in range(2):
            client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
    assert len(built) == 1 and built[0].calls == 2


def test_cors_off_by_default(client):
    response = client.get("/healthz", headers={"Origin": "http://example.org"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_when_asked(predictor):
    with TestClient(create_app(predictor, cors_origins=["http://example.org"])) as client:
        response = client.get("/healthz", headers={"Origin": "http://example.org"})
        assert response.headers["access-control-allow-origin"] == "http://example.org"
        other = client.get("/healthz", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_factory_refuses_bad_limits():
    with pytest.raises(ValueError, match="max_bytes"):
        create_app(FakePredictor(), max_bytes=0)


def test_openapi_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/model", "/v1/detect"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/detect"]["post"]["requestBody"]["content"]


class BrokenPredictor(FakePredictor):
    def __call__(self, image):
        raise RuntimeError("model exploded")


def test_a_failing_model_is_a_json_500_and_the_server_goes_on(photo, caplog):
    with TestClient(create_app(BrokenPredictor()), raise_server_exceptions=False) as client:
        response = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 500
        assert response.json()["detail"].startswith("internal error (RuntimeError)")
        assert "model exploded" in caplog.text
        assert client.get("/healthz").status_code == 200
