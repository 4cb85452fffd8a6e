"""Bounded load test of `maskdetect serve`: N concurrent clients post real 640x480 photos.

Prints JSON: requests, errors, p50/p95/max latency (ms), requests/s, and the model used.

    .venv/bin/python bench/load_test.py                       # starts its own server (one worker)
    .venv/bin/python bench/load_test.py --url http://127.0.0.1:8000 --clients 8 --requests 500
    .venv/bin/python bench/load_test.py --mixed               # a clean run, then one beside attackers
    .venv/bin/python bench/load_test.py --workers 1 2         # the same load on 1 and on 2 worker processes

--mixed runs the same load twice on one server: clean, then beside hostile clients (connections that
send 10 bytes of a promised 1 MB body and wait, progressive-JPEG scan bombs, 49 MP PNG pixel bombs);
it prints both runs, the ratio of their p95 latencies (the goal: at most 2) and what the attackers got.

--workers 1 2 starts `maskdetect serve --workers N` for each N in turn, in the same run, and prints each
run under its N with the ratio of requests/s against the first (a baseline measured minutes apart on
a shared machine: run it more than once before believing a difference).

Without --checkpoint it serves the bundled default model, or, if that does not exist yet, a small
untrained CNN made for the run (the JSON says which): latency then measures the detector and the
service, not a real classifier.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask" / "images"


def load_photos(folder: Path = PHOTOS, count: int = 16, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """The first `count` photos of a folder, resized to `size`, as JPEG bytes."""
    paths = sorted(folder.glob("*.jpg"))[:count]
    if not paths:
        raise FileNotFoundError(f"no .jpg photos in {folder}")
    photos = []
    for path in paths:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize(size, Image.BILINEAR).save(buffer, format="JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


def scan_bomb_jpeg(side: int = 7000, repeats: int = 10_000) -> bytes:
    """A progressive JPEG of side x side pixels whose smallest scan repeats `repeats` times.

    Each repeat makes a decoder pass over every coefficient again: at 7000 px and 10,000 repeats
    about 1.5 MB that take a minute or more of CPU to decode, unless refused by its scan count.
    """
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((side, side)).save(
        buffer, format="JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    scans = _scan_spans(data)
    start, end = min(scans, key=lambda span: span[1] - span[0])
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[start:end] * repeats + data[eoi:]


def _scan_spans(data: bytes) -> list[tuple[int, int]]:
    # (start, end) of each SOS segment with its scan data: from its marker to the next marker.
    marker = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")
    spans, pos = [], 2
    while (match := marker.search(data, pos)) is not None and match.group(1) != b"\xd9":
        pos = match.end() + int.from_bytes(data[match.end():match.end() + 2], "big")
        if match.group(1) == b"\xda":
            following = marker.search(data, pos)
            pos = following.start() if following else len(data)
            spans.append((match.start(), pos))
    return spans


def pixel_bomb_png(width: int = 7000, height: int = 7000) -> bytes:
    """A real, fully decodable PNG of one grey level: about 50 KB that decode to width x height x 3 bytes."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def run_load(url: str, photos: Sequence[bytes], clients: int = 8, requests: int = 500,
             timeout: float = 60.0) -> dict:
    """Send `requests` posts to `url`/v1/detect from `clients` threads; count errors, time each one."""
    if clients < 1 or requests < 1:
        raise ValueError(f"clients and requests must be at least 1, got {clients} and {requests}")
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                photo = photos[index % len(photos)]
                start = time.perf_counter()
                try:
                    response = http.post("/v1/detect", files={"image": (f"{index}.jpg", photo, "image/jpeg")})
                    problem = None if response.status_code == 200 and "faces" in response.json() else (
                        f"HTTP {response.status_code}: {response.text[:200]}")
                except (httpx.HTTPError, ValueError) as err:
                    problem = f"{type(err).__name__}: {err}"
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
        "requests_per_s": round(len(latencies) / wall, 2),
        "wall_s": round(wall, 2),
    }


def hostile_clients(url: str, stop: threading.Event, slow: int = 70, scan_bombs: int = 2,
                    pixel_bombs: int = 1, pause: float = 0.5) -> tuple[list[threading.Thread], dict]:
    """Start attacker threads against `url` until `stop` is set; returns them and their tally.

    Each slow client reconnects when cut off; each bomb client posts its bomb, waits for the answer,
    pauses `pause` seconds and posts again.
    """
    tally: dict = {"slow_cut_off": 0, "slow_open_at_end": 0, "scan_bomb": {}, "pixel_bomb": {}}
    lock = threading.Lock()
    host, port = url.removeprefix("http://").rsplit(":", 1)

    def slow_loop() -> None:
        while not stop.is_set():
            with socket.create_connection((host, int(port)), timeout=1) as sock:
                sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                             b"Content-Length: 1000000\r\n\r\n0123456789")
                while not stop.is_set():
                    try:
                        if not sock.recv(65536):
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                else:
                    with lock:
                        tally["slow_open_at_end"] += 1
                    return
            with lock:
                tally["slow_cut_off"] += 1

    def bomb_loop(kind: str, body: bytes, content_type: str) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while not stop.is_set():
                try:
                    status = str(http.post("/v1/detect", content=body, headers={"Content-Type": content_type})
                                 .status_code)
                except httpx.HTTPError as err:
                    status = type(err).__name__
                with lock:
                    tally[kind][status] = tally[kind].get(status, 0) + 1
                stop.wait(pause)

    scan_bomb, pixel_bomb = scan_bomb_jpeg(), pixel_bomb_png()
    threads = [threading.Thread(target=slow_loop, daemon=True) for _ in range(slow)]
    threads += [threading.Thread(target=bomb_loop, args=("scan_bomb", scan_bomb, "image/jpeg"), daemon=True)
                for _ in range(scan_bombs)]
    threads += [threading.Thread(target=bomb_loop, args=("pixel_bomb", pixel_bomb, "image/png"), daemon=True)
                for _ in range(pixel_bombs)]
    for thread in threads:
        thread.start()
    return threads, tally


def run_mixed(url: str, photos: Sequence[bytes], clients: int, requests: int, **hostile) -> dict:
    """The same load clean and then beside `hostile_clients`; both results and the p95 ratio."""
    clean = run_load(url, photos, clients, requests)
    stop = threading.Event()
    threads, tally = hostile_clients(url, stop, **hostile)
    time.sleep(3)  # the attackers are in before the normal clients start
    mixed = run_load(url, photos, clients, requests)
    stop.set()
    for thread in threads:
        thread.join(timeout=310)
    return {"clean": clean, "mixed": mixed, "p95_ratio": round(mixed["p95_ms"] / clean["p95_ms"], 2),
            "hostile": {**tally, **hostile}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_checkpoint(model: str | None, workdir: Path) -> tuple[str, str]:
    """(model path, what it is): the one asked for (a bundle folder, a checkpoint or an ONNX export),
    the bundled model, or a throwaway CNN."""
    if model:
        return model, f"model {model}"
    from maskdetect.bundle import DEFAULT_BUNDLE, MANIFEST

    if (DEFAULT_BUNDLE / MANIFEST).is_file():
        return str(DEFAULT_BUNDLE), f"bundled default model {DEFAULT_BUNDLE.name}"
    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    path = workdir / "untrained-small_cnn.pt"
    save_checkpoint(make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing()), path)
    return str(path), "untrained small_cnn at 160 px (no bundled default model yet)"


@contextmanager
def server_process(model: str, detector: str, port: int | None = None,
                   start_timeout: float = 120.0, workers: int = 1) -> Iterator[str]:
    """`maskdetect serve --workers N` in a subprocess; yields its URL once /healthz answers."""
    port = port or free_port()
    command = [sys.executable, "-m", "maskdetect", "serve", "--port", str(port),
               "--model", model, "--detector", detector, "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: a pipe nobody reads can fill up and stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_healthy(url, process, log, start_timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(url: str, process: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {process.returncode}: {log.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer /healthz within {timeout:.0f} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--model", "--checkpoint", dest="model",
                        help="model for the server this script starts: a bundle folder, a checkpoint or an "
                        "ONNX export (default: the bundled model)")
    parser.add_argument("--detector", default="blazeface", help="face detector for the started server")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--photos", type=int, default=16, help="distinct andrewmvd photos to cycle through")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], metavar="N",
                        help="worker processes of the started server; several values: one run each")
    parser.add_argument("--mixed", action="store_true",
                        help="run the load clean, then beside slow clients, scan bombs and pixel bombs")
    parser.add_argument("--slow", type=int, default=70, help="--mixed: slow-body connections")
    parser.add_argument("--scan-bombs", type=int, default=2, help="--mixed: clients posting scan bombs")
    parser.add_argument("--pixel-bombs", type=int, default=1, help="--mixed: clients posting 49 MP PNGs")
    args = parser.parse_args(argv)
    hostile = {"slow": args.slow, "scan_bombs": args.scan_bombs, "pixel_bombs": args.pixel_bombs}

    def measure(url: str) -> dict:
        if args.mixed:
            return run_mixed(url, photos, args.clients, args.requests, **hostile)
        return run_load(url, photos, args.clients, args.requests)

    photos = load_photos(count=args.photos)
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            result = measure(args.url)
            result["model"] = httpx.get(f"{args.url}/v1/model").json().get("name")
        else:
            model, described = model_checkpoint(args.model, Path(tmp))
            runs = {}
            for workers in args.workers:
                with server_process(model, args.detector, workers=workers) as url:
                    # Warm-up, enough for every worker: first-call costs are not load.
                    run_load(url, photos[:2], 2 * workers, 4 * workers)
                    runs[workers] = measure(url)
            result = runs[args.workers[0]] if len(runs) == 1 else {"by_workers": runs}
            if len(runs) > 1 and not args.mixed:
                base = runs[args.workers[0]]["requests_per_s"]
                result["requests_per_s_vs_first"] = {n: round(run["requests_per_s"] / base, 2)
                                                     for n, run in runs.items()}
            result["model"] = described
            result["detector"] = args.detector
    result["photo_size"] = "640x480"
    result["cpu_count"] = os.cpu_count()
    import harness

    harness.report("load_test", result, None, vars(args),
                   ratio=result.get("requests_per_s_vs_first") or result.get("p95_ratio"))
    checked = list(result["by_workers"].values()) if "by_workers" in result else [result]
    if args.mixed:
        return 0 if all(r["mixed"]["errors"] == 0 and r["p95_ratio"] <= 2 for r in checked) else 1
    return 0 if all(r["errors"] == 0 for r in checked) else 1

if __name__ == "__main__":
    sys.exit(main())
