"""Seconds a face of the web page's "Why?" (POST /v1/explain with the face's box) beside the plain
POST /v1/detect of the same photo, both from `maskdetect serve` (one worker, a subprocess), in one run.

Issue 32's goal: under 2 s a face on 2 CPUs. Each photo (640x480) is first sent to /v1/detect (the
baseline, what the page does when a photo is chosen), then each of its first `--faces` faces to
/v1/explain with the box /v1/detect answered (what a click sends), so both see the same background
load. The first explanation (it builds the explainer and the face mesh) is reported apart. Prints one
JSON object (bench/harness.py): figure = /v1/explain per face, baseline = /v1/detect per photo, ratio.
Beside each wall time, the server process's CPU seconds for the request (from /proc): on a machine
that others load, wall times stretch, CPU seconds much less; on 2 idle cores a request that keeps
both busy takes about half its CPU seconds.

    .venv/bin/python bench/bench_explain_face.py [--photos 8] [--faces 2] [--model PATH]
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
from harness import report  # noqa: E402
from load_test import load_photos, model_checkpoint, server_process  # noqa: E402

GOAL_S = 2.0


def stats(seconds: list[float]) -> dict:
    values = np.asarray(seconds)
    return {
        "p50_s": round(float(np.percentile(values, 50)), 3),
        "mean_s": round(float(values.mean()), 3),
        "p95_s": round(float(np.percentile(values, 95)), 3),
        "count": len(seconds),
    }


def server_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children (the server), from /proc (0 elsewhere)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid():  # fields[1]: the parent's id
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def post(http: httpx.Client, path: str, photo: bytes) -> tuple[float, float, dict, str]:
    """(wall seconds, server CPU seconds, JSON answer, Server-Timing header) of one request."""
    cpu = server_cpu_seconds()
    start = time.perf_counter()
    response = http.post(path, files={"image": ("photo.jpg", photo, "image/jpeg")})
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, server_cpu_seconds() - cpu, response.json(), response.headers.get("server-timing", "")


def stage_ms(header: str, stage: str) -> float | None:
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name == stage and duration:
            return float(duration)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a bundle folder or a checkpoint (default: the bundled model)")
    parser.add_argument("--detector", help="the photo detector (default: the model's own)")
    parser.add_argument("--photos", type=int, default=8, help="640x480 andrewmvd photos")
    parser.add_argument("--faces", type=int, default=2, help="faces explained per photo, at most")
    args = parser.parse_args(argv)
    from maskdetect.bundle import open_bundle

    photos = load_photos(count=args.photos + 1)  # the first one only warms both routes up
    detect_s: list[float] = []
    explain_s: list[float] = []
    detect_cpu: list[float] = []
    explain_cpu: list[float] = []
    explain_stage_ms: list[float] = []
    shares: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model, described = model_checkpoint(args.model, Path(tmp))
        detector = args.detector or open_bundle(model).photo_detector
        with server_process(model, detector) as url, httpx.Client(base_url=url, timeout=120) as http:
            first_detect = post(http, "/v1/detect", photos[0])[2]["faces"]
            first_s = None
            if first_detect:
                box = ",".join(str(v) for v in first_detect[0]["box"])
                first_s = round(post(http, f"/v1/explain?box={box}", photos[0])[0], 3)
            for photo in photos[1:]:
                seconds, cpu, body, _ = post(http, "/v1/detect", photo)
                detect_s.append(seconds)
                detect_cpu.append(cpu)
                for face in body["faces"][: args.faces]:
                    box = ",".join(str(v) for v in face["box"])
                    seconds, cpu, why, timing = post(http, f"/v1/explain?box={box}", photo)
                    explain_s.append(seconds)
                    explain_cpu.append(cpu)
                    explain_stage_ms.append(stage_ms(timing, "explain") or float("nan"))
                    if why["nose_mouth"]["heat_share"] is not None:
                        shares.append(why["nose_mouth"]["heat_share"])
    if not explain_s:
        raise SystemExit("no face was found in the photos: nothing to explain")
    figure = {**stats(explain_s), "cpu_s_p50": round(float(np.median(explain_cpu)), 3),
              "under_goal": round(float(np.mean(np.asarray(explain_s) < GOAL_S)), 3), "first_call_s": first_s,
              "explain_stage_ms_p50": round(float(np.nanmedian(explain_stage_ms)), 1),
              "nose_mouth_share_mean": round(float(np.mean(shares)), 3) if shares else None,
              "load_average": [round(v, 2) for v in (*load_before, *os.getloadavg())]}
    baseline = {**stats(detect_s), "cpu_s_p50": round(float(np.median(detect_cpu)), 3)}
    settings = {**vars(args), "model": described, "detector": detector, "goal_s": GOAL_S,
                "what": "figure: POST /v1/explain?box= per face; baseline: POST /v1/detect per photo; "
                        "load_average: 1/5/15 min before, then after"}
    report("bench_explain_face", figure, baseline, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
