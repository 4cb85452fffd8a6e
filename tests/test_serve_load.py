"""A real Predictor behind the real server: a bounded load test (bench/load_test.py, smaller) and
the model description read from a real checkpoint."""

from __future__ import annotations

import json
from contextlib import contextmanager

import httpx
import pytest
from serve_helpers import load_bench_module, make_checkpoint_file

from maskdetect.serve import create_app
from maskdetect.serve.background import BackgroundServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from maskdetect.predict import Predictor

    # The fast detector keeps the test short; the served path is the same for every detector.
    checkpoint = make_checkpoint_file(tmp_path_factory.mktemp("model"))
    predictor = Predictor(checkpoint, detector="blazeface-fast")
    with BackgroundServer(create_app(predictor)) as server:
        server.checkpoint = checkpoint  # /v1/model names only the file, not where it lies
        yield server


def test_concurrent_clients_get_no_errors(server, shared_data):
    bench = load_bench_module()
    photos = bench.load_photos(shared_data / "andrewmvd-face-mask" / "images", count=8)
    result = bench.run_load(server.url, photos, clients=8, requests=48)
    json.dumps(result)  # the bench prints it as JSON
    assert result["requests"] == 48
    assert result["errors"] == 0, result["first_errors"]
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_model_card_from_the_checkpoint(server):
    info = httpx.get(server.url + "/v1/model").json()
    assert info["arch"] == "small_cnn"
    assert info["input_size"] == 64
    assert info["metrics"] == {"note": "untrained test model"}
    assert info["detector"] == "blazeface-fast" and info["backend"] == "onnx"
    assert "state_dict" not in json.dumps(info)


def test_real_prediction_matches_the_predictor(server, shared_data):
    from maskdetect.predict import Predictor

    photo = shared_data / "andrewmvd-face-mask" / "images" / "maksssksksss100.jpg"
    response = httpx.post(server.url + "/v1/detect?annotate=true",
                          files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["faces"] and body["annotated_image"].startswith("data:image/jpeg;base64,")
    assert sum(body["counts"].values()) == len(body["faces"])
    assert "server-timing" in response.headers
    assert body["model"] == "small_cnn (small_cnn.pt, onnx, blazeface-fast)"
    assert httpx.get(server.url + "/v1/model").json()["checkpoint"] == "small_cnn.pt"
    direct = Predictor(server.checkpoint, detector="blazeface-fast")(photo)
    assert [f.to_dict() for f in direct] == body["faces"]


def test_the_load_test_measures_each_worker_count_in_one_run(monkeypatch, capsys, untrained_checkpoint):
    bench = load_bench_module()
    started = []

    @contextmanager
    def fake_server(model, detector, workers=1, **kwargs):
        started.append((model, detector, workers))
        yield f"http://worker-{workers}"

    def fake_load(url, photos, clients=8, requests=500, timeout=60.0):
        rate = 10.0 * int(url.rsplit("-", 1)[1])
        return {"requests": requests, "errors": 0, "requests_per_s": rate, "p50_ms": 1.0, "p95_ms": 2.0}

    monkeypatch.setattr(bench, "server_process", fake_server)
    monkeypatch.setattr(bench, "run_load", fake_load)
    argv = ["--model", str(untrained_checkpoint), "--detector", "blazeface-fast", "--workers", "1", "2",
            "--requests", "20", "--photos", "2"]
    assert bench.main(argv) == 0
    result = json.loads(capsys.readouterr().out)["figure"]  # bench/harness.py's shape
    assert [workers for _, _, workers in started] == [1, 2]
    assert {(model, detector) for model, detector, _ in started} == {
        (str(untrained_checkpoint), "blazeface-fast")}
    assert result["by_workers"]["1"]["requests_per_s"] == 10 and result["by_workers"]["2"]["requests"] == 20
    assert result["requests_per_s_vs_first"] == {"1": 1.0, "2": 2.0}
