"""/metrics: requests by route and status, latency, faces by class, errors by kind; label sets that no
client can grow; a scrape that gets through a full server; and sums over worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import PHOTO_NAMES, FakePredictor, GatedPredictor, photo_dir, photo_jpeg, png_claiming_size

from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer
from maskdetect.serve.metrics import ERROR_KINDS, MULTIPROC_ENV, ServiceMetrics

TESTS = Path(__file__).resolve().parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def photo(shared_data) -> bytes:
    return photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])


@pytest.fixture
def client(monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with TestClient(create_app(FakePredictor(), max_bytes=200_000, max_pixels=4_000_000)) as client:
        yield client


def test_requests_latency_faces_and_errors_are_counted(client, photo):
    for _ in range(3):
        assert client.post("/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")}).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    cut = client.post("/v1/detect", files={"image": ("cut.jpg", photo[:500], "image/jpeg")})
    assert cut.status_code == 422
    bomb = png_claiming_size(5000, 5000)
    assert client.post("/v1/detect", content=bomb, headers={"Content-Type": "image/png"}).status_code == 413
    big = b"\xff" * 300_000
    assert client.post("/v1/detect", content=big, headers={"Content-Type": "image/jpeg"}).status_code == 413
    assert client.get("/v1/detect").status_code == 405

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    requests = "maskdetect_http_requests_total"
    assert value(text, requests, route="/v1/detect", status="200") == 3
    assert value(text, requests, route="/v1/detect", status="422") == 1
    assert value(text, requests, route="/v1/detect", status="413") == 2
    assert value(text, requests, route="/v1/detect", status="405") == 1
    assert value(text, requests, route="/healthz", status="200") == 1
    assert value(text, requests, route="/static/{name}", status="200") == 1
    assert value(text, requests, route="other", status="404") == 1
    # The fake predictor finds one covered and one uncovered face in every photo.
    assert value(text, "maskdetect_faces_total", label="covered") == 3
    assert value(text, "maskdetect_faces_total", label="uncovered") == 3
    assert ("maskdetect_faces_total", (("label", "incorrect"),)) in samples(text)  # shown at 0
    errors = "maskdetect_errors_total"
    assert value(text, errors, kind="bad_image") == 1
    assert value(text, errors, kind="image_too_large") == 1
    assert value(text, errors, kind="body_too_large") == 1
    assert value(text, errors, kind="not_found") == 1
    assert value(text, errors, kind="method_not_allowed") == 1
    assert value(text, errors, kind="busy") == 0
    histogram = "maskdetect_http_request_duration_seconds"
    assert value(text, histogram + "_count", route="/v1/detect") == 7
    assert value(text, histogram + "_bucket", route="/v1/detect", le="+Inf") == 7
    assert value(text, histogram + "_sum", route="/v1/detect") > 0


def test_no_client_can_grow_the_label_sets(client, photo):
    def hostile_round(i: int) -> None:
        client.get(f"/no-such-page-{i}?x={i}")
        client.get(f"/static/nothing-{i}.js")
        client.request(f"METHOD{i}", f"/v1/detect?annotate={i}")
        client.post("/v1/detect", files={f"field{i}": (f"name-{i}.jpg", photo, f"image/x-{i}")})

    def series() -> set:
        return set(samples(client.get("/metrics").text))

    hostile_round(0)
    series()  # the scrape's own series exist from here on
    before = series()
    for i in range(1, 40):
        hostile_round(i)
    after = series()
    assert after == before  # 39 rounds of new paths, methods, fields and names made no new series
    labels = {value for _, label_set in after for _, value in label_set}
    assert not any("-1" in label or "METHOD" in label or "field" in label for label in labels)
    assert len(client.get("/metrics").content) < 20_000


def test_a_scrape_gets_through_a_full_server(photo, monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    predictor = GatedPredictor()
    with BackgroundServer(create_app(predictor, max_pending=1)) as server, ThreadPoolExecutor(1) as pool:
        files = {"image": ("p.jpg", photo, "image/jpeg")}
        first = pool.submit(httpx.post, server.url + "/v1/detect", files=files, timeout=30)
        assert predictor.entered.wait(30)
        assert httpx.post(server.url + "/v1/detect", files=files, timeout=30).status_code == 503
        scrape = httpx.get(server.url + "/metrics", timeout=10)
        predictor.release.set()
        assert first.result().status_code == 200
    assert scrape.status_code == 200
    assert value(scrape.text, "maskdetect_errors_total", kind="busy") == 1


WORKER = textwrap.dedent("""
    import sys
    from fastapi.testclient import TestClient
    from serve_helpers import FakePredictor
    from maskdetect.serve import create_app

    photo = open(sys.argv[1], "rb").read()
    with TestClient(create_app(FakePredictor())) as client:
        for _ in range(int(sys.argv[2])):
            answer = client.post("/v1/detect", files={"image": ("p.jpg", photo, "image/jpeg")})
            assert answer.status_code == 200
        client.get("/nowhere")
""")


def test_metrics_sum_over_worker_processes(tmp_path, photo, monkeypatch):
    # Two processes, as `serve --workers 2` starts them: the variable set before prometheus_client loads.
    folder = tmp_path / "metrics"
    folder.mkdir()
    photo_file = tmp_path / "p.jpg"
    photo_file.write_bytes(photo)
    env = {**os.environ, MULTIPROC_ENV: str(folder),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    for count in (2, 3):
        subprocess.run([sys.executable, "-c", WORKER, str(photo_file), str(count)], env=env, check=True,
                       timeout=120)
    assert len(list(folder.glob("counter_*.db"))) == 2  # one file per process
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    text = ServiceMetrics().exposition().decode()
    assert value(text, "maskdetect_http_requests_total", route="/v1/detect", status="200") == 5
    assert value(text, "maskdetect_faces_total", label="covered") == 5
    assert value(text, "maskdetect_errors_total", kind="not_found") == 2
    assert value(text, "maskdetect_http_request_duration_seconds_count", route="/v1/detect") == 5
    # A worker's app answers a scrape with every worker's sums too.
    with TestClient(create_app(FakePredictor())) as client:
        scraped = client.get("/metrics").text
    assert value(scraped, "maskdetect_http_requests_total", route="/v1/detect", status="200") == 5


def test_error_kinds_are_a_fixed_set():
    assert len(ERROR_KINDS) == len(set(ERROR_KINDS)) < 20
    metrics = ServiceMetrics()
    metrics.observe("/v1/detect", 400, 0.1, error_kind="a name a client chose")
    text = metrics.exposition().decode()
    assert value(text, "maskdetect_errors_total", kind="bad_request") == 1
    assert "a name a client chose" not in text
