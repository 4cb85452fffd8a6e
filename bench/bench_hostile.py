"""Issue 18's four service cases and issue 31's connection cases, measured against a server with
its default limits.

Prints JSON for one case (each in a fresh process, so peak memory is that case's own):

    .venv/bin/python bench/bench_hostile.py slow      # 70 slow bodies: do others get 503? how long open?
    .venv/bin/python bench/bench_hostile.py scan      # two scan bombs, then an ordinary photo: its wait
    .venv/bin/python bench/bench_hostile.py pixel     # eight 49 MP PNGs at once: peak memory; hang-ups
    .venv/bin/python bench/bench_hostile.py headers   # headers, /docs, /v1/model paths, error body size
    .venv/bin/python bench/bench_hostile.py connections  # part bombs vs /healthz, slow/huge headers,
                                                         # half-closed clients, 300 idle connections

The server runs in this process (`BackgroundServer`) over a predictor that stands in for the model
(it sleeps 0.2 s plus 20 ms per megapixel, so no model weights are needed); the numbers describe
the service's own behaviour, and run unchanged against older versions of `create_app`.
"""

from __future__ import annotations

import argparse
import io
import resource
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import load_photos, pixel_bomb_png, scan_bomb_jpeg  # noqa: E402

from maskdetect.labels import CLASSES  # noqa: E402
from maskdetect.serve import create_app  # noqa: E402
from maskdetect.serve.background import BackgroundServer  # noqa: E402


class ModelStandIn:
    """Answers no faces after the time a model might take; counts its calls."""

    classes = CLASSES
    name = "stand-in"
    checkpoint_path = "/home/trainer/runs/exp7/best.pt"
    model_card = {"arch": "small_cnn", "train_args": {"data": "/home/trainer/data", "epochs": 7}}

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        time.sleep(0.2 + 0.02 * image.width * image.height / 1e6)
        return []


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def post(url: str, body: bytes, content_type: str, timeout: float = 600) -> tuple[int, float]:
    started = time.perf_counter()
    response = httpx.post(url + "/v1/detect", content=body, headers={"Content-Type": content_type},
                          timeout=timeout)
    return response.status_code, round(time.perf_counter() - started, 2)


def slow_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 b"Content-Length: 1000000\r\n\r\n0123456789")
    return sock


def case_slow(url: str, photo: bytes, limit_s: float = 30.0) -> dict:
    sockets = [slow_socket(url) for _ in range(70)]
    time.sleep(0.5)
    statuses = [post(url, photo, "image/jpeg")[0] for _ in range(5)]
    started, open_times = time.monotonic(), []
    for sock in sockets:
        sock.settimeout(max(0.01, limit_s - (time.monotonic() - started)))
        try:
            while sock.recv(65536):
                pass
            open_times.append(time.monotonic() - started)
        except OSError:
            pass
        sock.close()
    return {"ordinary_statuses_beside_70_slow": statuses,
            "slow_closed_by_server": len(open_times),
            f"slow_still_open_after_{limit_s:g}_s": 70 - len(open_times),
            "last_closed_after_s": round(max(open_times), 2) if open_times else None}


def case_scan(url: str, photo: bytes, repeats: int) -> dict:
    bomb = scan_bomb_jpeg(7000, repeats)
    clean = post(url, photo, "image/jpeg")[1]
    with ThreadPoolExecutor(2) as pool:
        bombs = [pool.submit(post, url, bomb, "image/jpeg") for _ in range(2)]
        time.sleep(0.5)
        beside = post(url, photo, "image/jpeg")
        answered = [future.result() for future in bombs]
    return {"bomb_bytes": len(bomb), "repeats": repeats, "bomb_answers": answered,
            "photo_s_alone": clean, "photo_beside_two_bombs": beside}


def case_pixel(url: str, predictor: ModelStandIn) -> dict:
    bomb = pixel_bomb_png(7000, 7000)
    base = peak_rss_mb()
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(url, bomb, "image/png"), range(8)))
    result = {"bomb_bytes": len(bomb), "rss_before_mb": base, "peak_rss_mb": peak_rss_mb(),
              "answers": answers, "all_answered_s": round(time.perf_counter() - started, 2)}
    calls, cpu = predictor.calls, time.process_time()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    for _ in range(2):  # clients that send a 49 MP PNG and hang up at once
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         + f"Content-Length: {len(bomb)}\r\n\r\n".encode() + bomb)
    time.sleep(8)
    result["hung_up_requests_run_by_model"] = predictor.calls - calls
    result["cpu_s_after_hang_ups"] = round(time.process_time() - cpu, 2)
    return result


def case_headers(url: str) -> dict:
    wanted = ("content-security-policy", "x-content-type-options", "referrer-policy")
    missing = {}
    for path in ("/", "/healthz", "/v1/model", "/openapi.json", "/docs"):
        headers = httpx.get(url + path).headers
        missing[path] = [name for name in wanted if name not in headers]
    docs = httpx.get(url + "/docs").text
    model = httpx.get(url + "/v1/model").text
    form = io.BytesIO()
    for i in range(90_090):
        form.write(b'--zz\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i)
    form.write(b"--zz--\r\n")
    response = httpx.post(url + "/v1/detect", content=form.getvalue(), timeout=120,
                          headers={"Content-Type": "multipart/form-data; boundary=zz"})
    return {"security_headers_missing": missing, "docs_status": httpx.get(url + "/docs").status_code,
            "docs_loads_from_cdn": "cdn.jsdelivr.net" in docs,
            "model_names_local_paths": "/home/" in model,
            "form_of_90090_fields": {"bytes": len(form.getvalue()), "status": response.status_code,
                                     "error_body_bytes": len(response.content)}}


def raw_exchange(url: str, request: bytes, half_close: bool = False,
                 limit_s: float = 30) -> tuple[bytes, float]:
    """What the server answers `request` on a fresh connection until it closes it (b"open" if it
    has not after `limit_s`), and the seconds that took."""
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=limit_s) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            answer = b"open"
        except ConnectionError:
            answer = b"reset"
    return answer, round(time.perf_counter() - started, 2)


def status_of(answer: bytes) -> str:
    """"HTTP/1.1 200" and the like (after an interim 100), or "open", "reset", "" (closed, no answer)."""
    final = answer.split(b"\r\n\r\n", 1)[1] if answer.startswith(b"HTTP/1.1 100") else answer
    return final[:12].decode("latin-1")


def case_connections(url: str, photo: bytes) -> dict:
    parts = b"--z\r\n" + b"\r\n\r\n--z\r\n" * ((10 * 1024 * 1024 - 5) // 9)  # 1.17 M empty parts
    with ThreadPoolExecutor(2) as pool:
        bombs = [pool.submit(post, url, parts, "multipart/form-data; boundary=z") for _ in range(2)]
        slowest = 0.0
        while not all(bomb.done() for bomb in bombs):
            started = time.perf_counter()
            httpx.get(url + "/healthz", timeout=120)
            slowest = max(slowest, time.perf_counter() - started)
        bomb_results = [bomb.result() for bomb in bombs]
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    close = b"Connection: close\r\n\r\n"
    cases = {
        "request_line_then_nothing": get,
        "header_of_100_kb": get + b"X-Big: " + b"a" * 100_000 + b"\r\n" + close,
        "10000_headers": get + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + close,
    }
    headers = {}
    for name, request in cases.items():
        answer, seconds = raw_exchange(url, request)
        headers[name] = {"answer": status_of(answer), "closed_after_s": seconds}
    detect = (b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              + f"Content-Length: {len(photo)}\r\n\r\n".encode() + photo)
    half_closed, _ = raw_exchange(url, detect, half_close=True)
    host, port = url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(300)]
    try:
        extra, _ = raw_exchange(url, get + close, limit_s=5)
    finally:
        for sock in idle:
            sock.close()
    return {"healthz_slowest_s_beside_two_part_bombs": round(slowest, 2),
            "part_bombs": [{"status": status, "seconds": seconds} for status, seconds in bomb_results],
            "headers": headers, "half_closed_detect": status_of(half_closed),
            "request_beside_300_idle_connections": status_of(extra)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=("slow", "scan", "pixel", "headers", "connections"))
    parser.add_argument("--repeats", type=int, default=2000, help="scan: repeats of the bomb's scan")
    args = parser.parse_args(argv)
    photo = load_photos(count=1)[0]
    predictor = ModelStandIn()
    with BackgroundServer(create_app(predictor)) as server:
        if args.case == "slow":
            result = case_slow(server.url, photo)
        elif args.case == "scan":
            result = case_scan(server.url, photo, args.repeats)
        elif args.case == "pixel":
            result = case_pixel(server.url, predictor)
        elif args.case == "connections":
            result = case_connections(server.url, photo)
        else:
            result = case_headers(server.url)
    import harness

    harness.report(f"bench_hostile/{args.case}", {"case": args.case, **result}, None, vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
