"""Hostile clients and files (issue 18): slow bodies, scan bombs, pixel bombs, clients that hang up,
and what every answer carries. Each test starts its own server on 127.0.0.1 with small limits."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_helpers import (
    PHOTO_NAMES,
    FakePredictor,
    GatedPredictor,
    connect,
    load_bench_module,
    photo_dir,
    photo_jpeg,
    read_until_closed,
    wait_for,
)

from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer
from maskdetect.serve.static import PAGE_HEADERS

bench = load_bench_module()


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])


def slow_client(url: str, sent: bytes = b"0123456789") -> socket.socket:
    """A connection that promises a 1,000,000-byte body, sends 10 bytes of it and waits."""
    sock = connect(url)
    sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 b"Content-Length: 1000000\r\n\r\n" + sent)
    return sock


def test_slow_bodies_hold_no_slot_and_are_cut_off(photo):
    app = create_app(FakePredictor(), max_pending=2, body_timeout=2.0, body_grace=0.5)
    with BackgroundServer(app) as server:
        slow = [slow_client(server.url) for _ in range(8)]
        try:
            time.sleep(0.2)  # every slow body has started
            response = httpx.post(server.url + "/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")},
                                  timeout=10)
            assert response.status_code == 200, response.text  # not 503 "busy"
            started = time.monotonic()
            answers = [read_until_closed(sock, limit_s=5) for sock in slow]
            assert time.monotonic() - started < 4  # cut off after the grace, not left open
        finally:
            for sock in slow:
                sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"too slow" in answer and b"10 bytes" in answer


def test_a_steady_but_slow_body_is_cut_off_at_the_minimum_rate():
    app = create_app(FakePredictor(), body_timeout=30, body_grace=0.3, min_body_rate=1000)
    with BackgroundServer(app) as server:
        sock = slow_client(server.url, sent=b"")
        try:
            answer = b""
            for _ in range(40):  # 100 bytes/s, well under 1000: cut off within about a second
                try:
                    sock.sendall(b"x" * 10)
                except OSError:
                    break
                time.sleep(0.1)
            answer = read_until_closed(sock, limit_s=5)
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"1,000 bytes/s" in answer


def test_scan_bomb_is_refused_before_decoding(photo):
    bomb = bench.scan_bomb_jpeg(side=2000, repeats=500)
    with TestClient(create_app(FakePredictor())) as client:
        response = client.post("/v1/detect", files={"image": ("bomb.jpg", bomb, "image/jpeg")})
        assert response.status_code == 422, response.text
        assert "more than 100 scans" in response.json()["detail"]
        ordinary = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
        assert ordinary.status_code == 200
    with TestClient(create_app(FakePredictor(), max_scans=1000)) as client:  # the limit is the app's
        response = client.post("/v1/detect", content=bomb, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text


def test_pixel_bombs_wait_for_room_in_the_budget_then_get_503():
    predictor = GatedPredictor()
    big = bench.pixel_bomb_png(2000, 1500)  # 3 MP; the budget holds one, not two
    app = create_app(predictor, max_pixels=4_000_000, pixel_budget=5_000_000, budget_wait=0.5)
    files = {"image": ("big.png", big, "image/png")}
    releaser = threading.Timer(4, predictor.release.set)  # bounds the test if the budget is ignored
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        releaser.start()
        try:
            first = threading.Thread(target=http.post, args=("/v1/detect",), kwargs={"files": files})
            first.start()
            assert predictor.entered.wait(10)
            second = http.post("/v1/detect", files=files)
            assert second.status_code == 503, second.text
            assert "budget" in second.json()["detail"] and second.headers["retry-after"]
            predictor.release.set()
            first.join(10)
            assert http.post("/v1/detect", files=files).status_code == 200  # room again
        finally:
            predictor.release.set()
            releaser.cancel()


def test_work_is_dropped_when_its_client_has_gone(photo):
    predictor = GatedPredictor()
    app = create_app(predictor)
    with BackgroundServer(app) as server:
        files = {"image": ("p.jpg", photo, "image/jpeg")}
        first = threading.Thread(target=httpx.post, args=(server.url + "/v1/detect",),
                                 kwargs={"files": files, "timeout": 20})
        first.start()
        try:
            assert predictor.entered.wait(10)
            with connect(server.url) as sock:
                sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                             + f"Content-Length: {len(photo)}\r\n\r\n".encode() + photo)
                assert wait_for(lambda: app.state.pending == 2)  # its body is in; it waits for the model
        finally:
            predictor.release.set()  # the client above has hung up
            first.join(20)
        wait_for(lambda: getattr(app.state, "abandoned", 0) == 1, limit_s=5)
        assert predictor.calls == 1  # the abandoned request never reached the model


def test_every_response_carries_the_security_headers(photo):
    with TestClient(create_app(FakePredictor())) as client:
        responses = [client.get(path) for path in ("/", "/healthz", "/v1/model", "/openapi.json", "/nowhere")]
        responses.append(client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"}))
        responses.append(client.post("/v1/detect", content=b"x", headers={"Content-Type": "text/plain"}))
        for response in responses:
            for name, value in PAGE_HEADERS.items():
                assert response.headers.get(name) == value, (response.request.url, name)
        # Swagger UI and ReDoc would load their scripts from a CDN: off, the schema stays.
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        assert "/v1/detect" in client.get("/openapi.json").json()["paths"]


class CardPredictor(FakePredictor):
    checkpoint_path = "/home/trainer/runs/exp7/best.pt"
    model_card = {
        "arch": "small_cnn",
        "epoch": 7,
        "train_args": {"data": "/home/trainer/data/tree", "out": "runs/exp7", "epochs": 7, "lr": 0.001,
                       "extra": ["/srv/more", "C:\\\\data\\\\faces"], "source": "https://example.org/faces.zip"},
        "dataset": {"root": "/srv/datasets/faces", "images": 6000},
    }


def test_model_description_names_no_local_paths():
    with TestClient(create_app(CardPredictor())) as client:
        info = client.get("/v1/model").json()
    text = json.dumps(info)
    for fragment in ("/home", "trainer", "/srv", "runs/", "C:"):
        assert fragment not in text, (fragment, text)
    assert info["checkpoint"] == "best.pt"
    assert info["train_args"] == {"epochs": 7, "lr": 0.001, "source": "https://example.org/faces.zip"}
    assert info["dataset"] == {"root": "faces", "images": 6000}
    assert info["name"] == "fake (best.pt)"


def test_a_form_of_90090_fields_gets_a_short_400():
    body = io.BytesIO()
    for i in range(90_090):
        body.write(b'--zz\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i)
    body.write(b"--zz--\r\n")
    with TestClient(create_app(FakePredictor())) as client:
        response = client.post("/v1/detect", content=body.getvalue(),
                               headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400
    assert len(response.content) < 1000, len(response.content)
    assert "more than 100 parts" in response.json()["detail"]  # refused at the 101st: the rest unparsed


class HoldsLargeImages(GatedPredictor):
    """Holds only images over a million pixels until released."""

    def __call__(self, image):
        if image.width * image.height > 1_000_000:
            return super().__call__(image)
        return FakePredictor.__call__(self, image)


def test_a_large_image_does_not_hold_up_ordinary_photos(photo):
    predictor = HoldsLargeImages()
    app = create_app(predictor, large_pixels=1_000_000)
    big = {"image": ("big.png", bench.pixel_bomb_png(2000, 1500), "image/png")}
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        first = threading.Thread(target=http.post, args=("/v1/detect",), kwargs={"files": big})
        first.start()
        try:
            assert predictor.entered.wait(10)
            ordinary = http.post("/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=5)
            assert ordinary.status_code == 200, ordinary.text  # beside the held 3 MP image, not behind it
        finally:
            predictor.release.set()
            first.join(10)
