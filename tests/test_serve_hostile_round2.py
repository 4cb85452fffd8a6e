"""Hostile clients, round two (issue 31): multipart part bombs, slow and oversized headers, too many
connections, half-closed clients, and what /v1/model may say. Each test starts its own server on
127.0.0.1 and talks to it over raw sockets where the HTTP client would hide the behaviour."""

from __future__ import annotations

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
    photo_dir,
    photo_jpeg,
    read_until_closed,
    wait_for,
)

from maskdetect.serve import create_app, upload
from maskdetect.serve.background import BackgroundServer
from maskdetect.serve.connection import ConnectionLimits, uvicorn_settings

FORM = "multipart/form-data; boundary=z"


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])


def empty_parts_body(size: int = 10 * 1024 * 1024) -> bytes:
    """`size` bytes of empty multipart parts, 9 bytes each: 1.17 million in 10 MB."""
    return b"--z\r\n" + b"\r\n\r\n--z\r\n" * ((size - 5) // 9)


def slowest_healthz(url: str, while_running: threading.Thread) -> float:
    """The longest /healthz took, asked again and again while `while_running` runs."""
    slowest = 0.0
    with httpx.Client(base_url=url, timeout=60) as http:
        while while_running.is_alive():
            started = time.monotonic()
            assert http.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
    return slowest


def post_in_thread(url: str, body: bytes, answers: list) -> threading.Thread:
    def post() -> None:
        answer = httpx.post(url + "/v1/detect", content=body, headers={"Content-Type": FORM}, timeout=60)
        answers.append(answer)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def request(path: str = "/healthz", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


# Item 2: multipart part bombs.


def test_two_bodies_of_a_million_empty_parts_get_a_400_and_the_loop_keeps_answering():
    # Before: each took about 5 s of parsing on the event loop; /healthz waited for both.
    body = empty_parts_body()
    answers: list[httpx.Response] = []
    with BackgroundServer(create_app(FakePredictor())) as server:
        posts = [post_in_thread(server.url, body, answers) for _ in range(2)]
        slowest = slowest_healthz(server.url, posts[0])
        for post in posts:
            post.join(60)
    assert slowest < 1.0, slowest
    assert [a.status_code for a in answers] == [400, 400], [a.text[:200] for a in answers]
    assert all("more than 100 parts" in a.json()["detail"] for a in answers)


def test_multipart_bodies_are_parsed_off_the_event_loop(monkeypatch, photo):
    parse = upload.parse_multipart

    def slow_parse(body: bytes, boundary: bytes) -> list:
        time.sleep(2)  # a parse that takes long holds its own thread, not the loop
        return parse(body, boundary)

    monkeypatch.setattr(upload, "parse_multipart", slow_parse)
    head = b'--z\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n\r\n'
    form = head + photo + b"\r\n--z--\r\n"
    answers: list[httpx.Response] = []
    with BackgroundServer(create_app(FakePredictor())) as server:
        post = post_in_thread(server.url, form, answers)
        time.sleep(0.3)
        slowest = slowest_healthz(server.url, post)
    assert slowest < 1.0, slowest
    assert answers[0].status_code == 200, answers[0].text


def test_a_form_within_the_part_limit_still_lists_its_fields():
    body = b"".join(b'--z\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(100))
    with TestClient(create_app(FakePredictor())) as client:
        response = client.post("/v1/detect", content=body + b"--z--\r\n", headers={"Content-Type": FORM})
    assert response.status_code == 400
    assert "'f0'" in response.json()["detail"] and "and 90 more" in response.json()["detail"]


# Headers: slow, large, many.


def test_headers_sent_slowly_or_never_are_cut_off_within_the_header_timeout():
    limits = ConnectionLimits(header_timeout=0.5)
    with BackgroundServer(create_app(FakePredictor()), limits=limits) as server:
        silent = connect(server.url)
        trickle = connect(server.url)
        started = time.monotonic()
        trickle.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(20):  # a byte every 0.1 s: each arrives well within any idle timeout
                trickle.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass  # closed on us: what should happen
        answers = [read_until_closed(sock, limit_s=3) for sock in (trickle, silent)]
        elapsed = time.monotonic() - started
        silent.close()
        trickle.close()
    assert elapsed < 3, elapsed
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"not received within 0.5 s" in answer


def test_the_header_timeout_spares_requests_the_app_takes_long_over(photo):
    predictor = GatedPredictor()
    limits = ConnectionLimits(header_timeout=0.3)
    with BackgroundServer(create_app(predictor), limits=limits) as server, \
            httpx.Client(base_url=server.url, timeout=20) as http:
        threading.Timer(1.0, predictor.release.set).start()  # inference takes 1 s: past the timeout
        first = http.post("/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")})
        second = http.get("/healthz")  # the same connection, kept alive
    assert first.status_code == 200, first.text
    assert second.status_code == 200
    assert len(predictor.sizes) == 1


@pytest.mark.parametrize("extra", [
    b"X-Big: " + b"a" * 100_000 + b"\r\n",
    b"".join(b"X-%d: v\r\n" % i for i in range(10_000)),
], ids=["a 100 KB header", "10,000 headers"])
def test_oversized_header_blocks_get_431(extra):
    with BackgroundServer(create_app(FakePredictor())) as server:
        with connect(server.url) as sock:
            sock.sendall(request(extra=extra))
            answer = read_until_closed(sock, limit_s=5)
        assert httpx.get(server.url + "/healthz").status_code == 200  # and the server keeps answering
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    detail = json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]
    assert "too large" in detail or "too many" in detail, detail


def test_ordinary_headers_are_under_the_limits():
    browser = b"".join(b"X-Header-%d: %s\r\n" % (i, b"v" * 100) for i in range(40))  # 40 headers, 5 KB
    with BackgroundServer(create_app(FakePredictor())) as server, connect(server.url) as sock:
        sock.sendall(request(extra=browser + b"Connection: close\r\n"))
        assert read_until_closed(sock, limit_s=5).startswith(b"HTTP/1.1 200")


# Connections: a cap, and clients that half-close.


def test_connections_over_the_cap_get_503_and_are_closed():
    limits = ConnectionLimits(max_connections=4, header_timeout=30)
    with BackgroundServer(create_app(FakePredictor()), limits=limits) as server:
        idle = [connect(server.url) for _ in range(4)]
        with connect(server.url) as extra:
            extra.sendall(request(extra=b"Connection: close\r\n"))
            refused = read_until_closed(extra, limit_s=5)
        for sock in idle:
            sock.close()
        assert wait_for(lambda: len(server.server.server_state.connections) == 0, limit_s=5)
        with connect(server.url) as again:
            again.sendall(request(extra=b"Connection: close\r\n"))
            answered = read_until_closed(again, limit_s=5)
    assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
    assert b"retry-after: 1" in refused.lower() and b"too many connections" in refused
    assert answered.startswith(b"HTTP/1.1 200"), answered[:200]


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_client_that_half_closes_after_its_request_gets_its_answer(photo, version):
    predictor = GatedPredictor()
    with BackgroundServer(create_app(predictor)) as server, connect(server.url) as sock:
        sock.sendall(f"POST /v1/detect HTTP/{version}\r\nHost: x\r\nContent-Type: image/jpeg\r\n".encode()
                     + f"Content-Length: {len(photo)}\r\n\r\n".encode() + photo)
        sock.shutdown(socket.SHUT_WR)  # all sent: the write side is done
        assert predictor.entered.wait(10)
        time.sleep(0.3)  # the end of the stream has reached the server while the model works
        predictor.release.set()
        answer = read_until_closed(sock, limit_s=10)
    if version == "1.1":  # first the interim answer that checks the client is still there
        interim, answer = answer.split(b"\r\n\r\n", 1)
        assert interim == b"HTTP/1.1 100 Continue"
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]  # (never a 1xx to a 1.0 client)
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["counts"]["covered"] == 1


def test_a_client_that_half_closes_in_the_middle_of_its_body_is_dropped(photo):
    with BackgroundServer(create_app(FakePredictor())) as server, connect(server.url) as sock:
        sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     + f"Content-Length: {len(photo)}\r\n\r\n".encode() + photo[:1000])
        sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock, limit_s=5)  # closed, not left waiting for the rest
    assert not answer.startswith(b"HTTP/1.1 200")


def test_serve_runs_uvicorn_with_the_guarded_protocol(monkeypatch):
    import uvicorn

    from maskdetect.serve import server

    runs: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append(kwargs))
    monkeypatch.setattr(server, "check_model_in_a_process", lambda options: None)
    server.serve(server.ServeOptions(port=8123, workers=2))
    monkeypatch.setattr(server, "load_predictor", lambda options: FakePredictor())
    server.serve(server.ServeOptions(port=0))
    for kwargs in runs:
        assert kwargs["http"] is uvicorn_settings()["http"]  # importable by name, for spawned workers
        assert kwargs["h11_max_incomplete_event_size"] == 16 * 1024
    assert len(runs) == 2


# Item 13: what /v1/model says.


class LeakyCardPredictor(FakePredictor):
    checkpoint_path = "/home/trainer/runs/exp7/best.pt"
    model_card = {
        "arch": "small_cnn from /home/trainer/code",
        "data": {"/home/trainer/data/faces": 6000, "C:\\Users\\trainer\\extra": 12,
                 "file:///srv/cache/more": 3},
        "dataset": {"source": "https://trainer:hunter2@example.org/faces.zip",
                    "mirror": "ftp://anon@files.example.org/faces.zip",
                    "cache": "file:///home/trainer/.cache/faces.tar",
                    "notes": ["copied from /mnt/nas/trainer/faces on host1", "see ~/notes/faces.md"]},
        "train_args": {"data": "file:///home/trainer/data", "/home/trainer/flag": True, "epochs": 7},
        "metrics": {"val/accuracy": 0.9, "written to": "\\\\nas\\trainer\\metrics.json"},
    }


def test_model_description_redacts_paths_in_keys_file_urls_and_credentials():
    with TestClient(create_app(LeakyCardPredictor())) as client:
        info = client.get("/v1/model").json()
    text = json.dumps(info)
    leaks = ("/home", "trainer", "/srv", "/mnt", "Users", "C:", "file:", "hunter2", "anon@", "~/", "nas\\")
    for fragment in leaks:
        assert fragment not in text, (fragment, text)
    assert info["data"] == {"faces": 6000, "extra": 12, "more": 3}
    assert info["dataset"]["source"] == "https://example.org/faces.zip"
    assert info["dataset"]["mirror"] == "ftp://files.example.org/faces.zip"
    assert info["dataset"]["cache"] == "faces.tar"
    assert info["dataset"]["notes"] == ["copied from faces on host1", "see faces.md"]
    assert info["train_args"] == {"epochs": 7}
    assert info["metrics"] == {"val/accuracy": 0.9, "written to": "metrics.json"}  # a relative key stays
    assert info["arch"] == "small_cnn from code" and info["name"] == "fake (best.pt)"
