"""What the REST service adds over calling the Predictor directly, on the same 640x480 photos.

Prints JSON: per-photo latency (p50/p95 ms) and photos/s for (a) `Predictor(jpeg_bytes)` in this
process and (b) POST /v1/detect to `maskdetect serve` (one worker, a subprocess) from one client,
interleaved pass by pass; then 2 concurrent clients; and the overhead of (b) over (a).

    .venv/bin/python bench/bench_serve.py [--model PATH] [--detector blazeface] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import load_photos, model_checkpoint, run_load, server_process  # noqa: E402


def summarise(seconds: list[float], wall: float) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "per_s": round(len(seconds) / wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", "--checkpoint", dest="model",
                        help="a bundle folder, a checkpoint or an ONNX export (default: the bundled model, "
                        "else an untrained small CNN)")
    parser.add_argument("--detector", default="blazeface")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes over the photos")
    args = parser.parse_args(argv)
    from maskdetect.predict import Predictor

    photos = load_photos(count=args.photos)
    direct: list[float] = []
    service: list[float] = []
    wall = {"direct": 0.0, "service": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        model, described = model_checkpoint(args.model, Path(tmp))
        predictor = Predictor(model, detector=args.detector)
        with server_process(model, args.detector) as url, httpx.Client(base_url=url, timeout=60) as http:
            for photo in photos[:2]:  # warm-up: first calls are not the steady state
                predictor(photo)
                post(http, photo)
            # Interleaved passes: the machine is shared, so both sides see the same background load.
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                direct.extend(timed(predictor, photo) for photo in photos)
                t1 = time.perf_counter()
                service.extend(timed(lambda p: post(http, p), photo) for photo in photos)
                t2 = time.perf_counter()
                wall["direct"] += t1 - t0
                wall["service"] += t2 - t1
            concurrent = run_load(url, photos, clients=2, requests=len(photos) * args.rounds)
    a, b = summarise(direct, wall["direct"]), summarise(service, wall["service"])
    result = {
        "model": described,
        "detector": args.detector,
        "photo_size": "640x480",
        "photos": len(photos),
        "requests_each": len(direct),
        "cpu_count": os.cpu_count(),
        "direct_predictor": a,
        "service_1_client": b,
        "service_2_clients": {k: concurrent[k] for k in ("p50_ms", "p95_ms", "requests_per_s", "errors")},
        "overhead_p50": round(b["p50_ms"] / a["p50_ms"] - 1, 3),
        "overhead_p95": round(b["p95_ms"] / a["p95_ms"] - 1, 3),
        "overhead_throughput": round(a["per_s"] / b["per_s"] - 1, 3),
        "goal": "the service adds under 20% (overheads < 0.20)",
    }
    import harness

    harness.report("bench_serve", result, a, vars(args),
                   ratio={k: v for k, v in result.items() if k.startswith("overhead_")})
    return 0


def timed(func, photo: bytes) -> float:
    start = time.perf_counter()
    func(photo)
    return time.perf_counter() - start


def post(http: httpx.Client, photo: bytes) -> None:
    response = http.post("/v1/detect", files={"image": ("photo.jpg", photo, "image/jpeg")})
    response.raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
