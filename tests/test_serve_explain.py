"""POST /v1/explain (issue 32): one face's occlusion map and nose-and-mouth share, with /v1/detect's
limits and hostile-input rules. A real (untrained, small) checkpoint behind a real Predictor."""

from __future__ import annotations

import base64
import io
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import (
    PHOTO_NAMES,
    GatedPredictor,
    make_checkpoint_file,
    photo_dir,
    photo_jpeg,
    png_claiming_size,
)

from maskdetect.serve import create_app


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from maskdetect.predict import Predictor

    return Predictor(make_checkpoint_file(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, max_bytes=2_000_000, max_pixels=4_000_000)) as client:
        yield client


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])


@pytest.fixture(scope="module")
def detected(client, photo) -> list[dict]:
    faces = client.post("/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")}).json()["faces"]
    assert faces, "the detector should find a face in this photo"
    return faces


def explain(client, data: bytes, query: str, name: str = "p.jpg", content_type: str = "image/jpeg"):
    return client.post(f"/v1/explain?{query}", files={"image": (name, data, content_type)})


def box_query(face: dict) -> str:
    return "box=" + ",".join(str(v) for v in face["box"])


def test_a_box_is_explained_as_the_library_explains_it(client, predictor, photo, detected):
    from maskdetect.explain.face import explain_face, quick_settings
    from maskdetect.explain.runner import Explainer
    from maskdetect.faces.landmarks import FaceMesh

    response = explain(client, photo, box_query(detected[0]))
    assert response.status_code == 200, response.text
    body = response.json()
    explainer = Explainer(predictor.checkpoint_path, quick_settings(predictor.preprocessing.input_size))
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    mesh = FaceMesh().landmarks_in_box
    expected = explain_face(explainer, image, tuple(detected[0]["box"]), mesh).summary()
    for key in ("predicted", "probabilities", "windows", "patch", "stride", "mode", "nose_mouth"):
        assert body[key] == expected[key], key
    assert body["mode"] == "coarse" and body["method"] == "occlusion"
    share = body["nose_mouth"]
    assert 0 <= share["heat_share"] <= 1 and 0 < share["area_share"] < 1 and share["mesh_score"] > 0.5
    # the overlay: a PNG of the map blended on the face, with its colour bar
    assert body["overlay"].startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay"].split(",", 1)[1])))
    assert overlay.format == "PNG" and overlay.width >= 200
    assert (body["width"], body["height"], body["face"], body["detected"]) == (640, 480, None, None)
    assert "explain;dur=" in response.headers["server-timing"]


def test_a_face_index_is_the_face_detect_numbered(client, photo, detected):
    body = explain(client, photo, "face=0").json()
    assert body["face"] == 0 and body["detected"] == detected[0]
    assert body["box"] == [round(v, 1) for v in detected[0]["box"]]
    assert body["predicted"] == explain(client, photo, box_query(detected[0])).json()["predicted"]


def test_a_face_index_past_the_last_names_how_many_there_are(client, photo, detected):
    response = explain(client, photo, f"face={len(detected)}", name="group.jpg")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "group.jpg" in detail and f"no face {len(detected)}" in detail
    assert f"the photo has {len(detected)} face" in detail


def test_where_the_mesh_finds_no_face_the_share_is_left_out_and_said_why(client):
    buffer = io.BytesIO()
    Image.new("RGB", (200, 160), (90, 120, 150)).save(buffer, "PNG")
    response = explain(client, buffer.getvalue(), "box=50,40,150,140", name="wall.png",
                       content_type="image/png")
    assert response.status_code == 200, response.text
    region = response.json()["nose_mouth"]
    assert region["heat_share"] is None and region["area_share"] is None
    assert "found no face" in region["note"] or "did not lower" in region["note"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "name one face"),
        ("face=0&box=1,2,30,40", "not both"),
        ("box=1,2,3", "four numbers"),
        ("box=a,b,c,d", "four numbers"),
        ("box=nan,0,10,10", "four numbers"),  # NaN passes every comparison: the crop would fail later
        ("box=0,0,inf,10", "four numbers"),
        ("box=30,2,10,40", "x1 > x0"),
        ("box=0,0,1e9,1e9", "not within the 640x480 photo"),  # a huge box would make a huge crop
        ("box=700,500,800,600", "not within the 640x480 photo"),
        ("face=-1", "face"),
        ("face=one", "face"),
    ],
)
def test_a_bad_face_is_a_clear_422(client, photo, query, message):
    response = explain(client, photo, query)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_the_upload_rules_of_detect_hold(client):
    box = "box=1,1,20,20"
    not_image = explain(client, b"plain text, not a photo", box, name="notes.jpg")
    assert not_image.status_code == 422 and "notes.jpg" in not_image.json()["detail"]
    bomb = explain(client, png_claiming_size(30_000, 30_000), box, name="bomb.png", content_type="image/png")
    assert bomb.status_code == 413 and "bomb.png" in bomb.json()["detail"]
    too_big = explain(client, b"\xff" * 2_100_000, box)
    assert too_big.status_code == 413 and "over the limit" in too_big.json()["detail"]
    wrong_type = client.post(f"/v1/explain?{box}", content=b"{}",
                             headers={"content-type": "application/json"})
    assert wrong_type.status_code == 415
    empty = client.post(f"/v1/explain?{box}", content=b"", headers={"content-type": "image/jpeg"})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]


def test_explanations_share_detects_in_flight_limit(photo):
    predictor = GatedPredictor()
    client = TestClient(create_app(predictor, max_pending=1))
    files = {"image": ("p.jpg", photo, "image/jpeg")}
    held = threading.Thread(target=client.post, args=("/v1/detect",), kwargs={"files": files})
    held.start()
    try:
        assert predictor.entered.wait(10)
        busy = client.post("/v1/explain?box=10,10,100,100", files=files)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    finally:
        predictor.release.set()
        held.join(10)


def test_a_model_without_a_checkpoint_says_explanations_are_unavailable(photo):
    from serve_helpers import FakePredictor

    client = TestClient(create_app(FakePredictor()))
    response = client.post("/v1/explain?face=0", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert response.status_code == 501 and "no checkpoint" in response.json()["detail"]


def test_openapi_documents_the_endpoint(client):
    operation = client.get("/openapi.json").json()["paths"]["/v1/explain"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {"face", "box"}
    content = operation["requestBody"]["content"]
    assert "image" in content["multipart/form-data"]["schema"]["properties"] and "image/*" in content
    assert "nose" in operation["description"] and "overlay" in operation["description"]
