"""Milliseconds a photo of the web page's private mode (the pipeline in headless Chromium, onnxruntime-web)
beside the server's POST /v1/detect of the same photo, in one run; the share of the server's faces the
browser gives back (IoU >= 0.9, same label); and the frames/s of private mode's live camera, fed from a
clip of a sample photo by Chromium's fake camera.

One in-process server (`maskdetect serve`'s app, the bundled model unless --model) and one Chromium.
Each photo goes to /v1/detect (the baseline: wall ms of the request, as the page would wait for it)
and through the page's file input with private mode on (the figure: ms from the photo's pixels to the
answer, as the page shows it, and the browser's ms by stage). The camera's frames/s is counted from the
page's frame counter over --camera-seconds after a 3 s warm-up. Prints one JSON object
(bench/harness.py).

    .venv/bin/python bench/bench_private_mode.py [--photos 50] [--camera-seconds 10] [--precision int8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src/maskdetect/assets/sample/andrewmvd/images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
CLIP_PHOTO = "maksssksksss104.jpg"  # 11 faces, several large enough for the camera's 320 px pass


def agreement(ours: dict, theirs: dict, iou: float = 0.9) -> tuple[int, int]:
    """(faces of `theirs` matched by a face of `ours` at IoU >= `iou` with the same label, the larger
    face count of the two): both /v1/detect-shaped answers.

    >>> face = {"box": [0, 0, 10, 10], "label": "covered"}
    >>> agreement({"faces": [face]}, {"faces": [face, {"box": [20, 0, 30, 10], "label": "covered"}]})
    (1, 2)
    """
    from maskdetect.faces.nms import iou_matrix

    truth = np.array([f["box"] for f in theirs["faces"]], np.float64).reshape(-1, 4)
    found = np.array([f["box"] for f in ours["faces"]], np.float64).reshape(-1, 4)
    total = max(len(truth), len(found))
    if not len(truth) or not len(found):
        return 0, total
    overlap = iou_matrix(truth, found)
    same = 0
    for t, face in enumerate(theirs["faces"]):
        j = int(overlap[t].argmax())
        same += bool(overlap[t, j] >= iou and ours["faces"][j]["label"] == face["label"])
    return same, total


def write_y4m(path: Path, photo: Path, frames: int = 10, size: tuple[int, int] = (640, 480),
              fps: int = 30) -> Path:
    """A clip for Chromium's fake camera (--use-file-for-fake-video-capture): one photo, still, as
    YUV 4:2:0 frames (BT.601, full range)."""
    rgb = np.asarray(Image.open(photo).convert("RGB").resize(size), np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = (rgb[..., 2] - y) * 0.564 + 128
    v = (rgb[..., 0] - y) * 0.713 + 128

    def plane(p: np.ndarray, half: bool) -> bytes:
        if half:
            p = p.reshape(size[1] // 2, 2, size[0] // 2, 2).mean(axis=(1, 3))
        return np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes()

    frame = b"FRAME\n" + plane(y, False) + plane(u, True) + plane(v, True)
    path.write_bytes(f"YUV4MPEG2 W{size[0]} H{size[1]} F{fps}:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


def open_private_page(browser, url: str, requests: list | None = None, timeout_ms: float = 120_000):
    """A page of `url` with private mode switched on and its models loaded; every request it makes
    is appended to `requests` when given."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    if requests is not None:
        page.on("request", lambda request: requests.append(request))
    page.goto(url + "/")
    page.check("#private-mode")
    page.wait_for_selector("#private-box[data-state='on'], #private-box[data-state='unavailable']",
                           state="attached", timeout=timeout_ms)
    if page.get_attribute("#private-box", "data-state") != "on":
        raise RuntimeError(page.text_content("#private-status"))
    return page


def check_in_page(page, photo: Path, timeout_ms: float = 120_000) -> dict:
    """The page's private-mode answer for a photo chosen in its file input."""
    page.evaluate("delete canvas.dataset.ms")
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#canvas[data-ms]", state="attached", timeout=timeout_ms)
    return page.evaluate("window.maskdetectPrivate.last")


def camera_fps(page, seconds: float) -> dict:
    page.click("#camera-start")
    page.wait_for_selector("#canvas[data-frames]", state="attached", timeout=120_000)
    time.sleep(3)  # warm-up: every face classified once
    start, frames = time.perf_counter(), int(page.get_attribute("#canvas", "data-frames"))
    time.sleep(seconds)
    elapsed, done = time.perf_counter() - start, int(page.get_attribute("#canvas", "data-frames"))
    last = page.evaluate("window.maskdetectPrivate.last")
    page.click("#camera-stop")
    return {"fps": round((done - frames) / elapsed, 2), "frames": done - frames,
            "faces_last_frame": len(last["faces"]),
            "last_frame_ms": {k: round(v, 1) for k, v in last["timing"].items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a bundle folder or a checkpoint (default: the bundled model)")
    parser.add_argument("--precision", choices=["int8", "fp32"], help="default: the Predictor's")
    parser.add_argument("--photos", type=int, default=50, help="sample photos (of the 50)")
    parser.add_argument("--camera-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from maskdetect.predict import Predictor
    from maskdetect.serve import create_app
    from maskdetect.serve.background import BackgroundServer

    photos = sorted(SAMPLE.glob("*.jpg"))[: args.photos]
    settings = {k: v for k, v in {"precision": args.precision}.items() if v}
    predictor = Predictor(args.model, **settings)
    browser_ms, page_ms, server_ms, stages = [], [], [], {}
    same = total = 0
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(create_app(predictor)) as server, \
            sync_playwright() as playwright:
        clip = write_y4m(Path(tmp) / "clip.y4m", SAMPLE / CLIP_PHOTO)
        camera_arg = f"--use-file-for-fake-video-capture={clip}"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[*CHROMIUM_ARGS, camera_arg])
        load_start = time.perf_counter()
        page = open_private_page(browser, server.url)
        load_s = time.perf_counter() - load_start
        page.context.grant_permissions(["camera"], origin=server.url)
        check_in_page(page, photos[0])  # the first run compiles; not counted
        with httpx.Client(base_url=server.url, timeout=120) as http:
            http.post("/v1/detect", files={"image": ("p.jpg", photos[0].read_bytes(), "image/jpeg")})
            for photo in photos:
                start = time.perf_counter()
                files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
                theirs = http.post("/v1/detect", files=files)
                server_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                ours = check_in_page(page, photo)
                page_ms.append((time.perf_counter() - start) * 1000)
                browser_ms.append(ours["ms"])
                for stage, ms in ours["timing"].items():
                    stages.setdefault(stage, []).append(ms)
                agree, count = agreement(ours, theirs.json())
                same, total = same + agree, total + count
        camera = camera_fps(page, args.camera_seconds)
        browser.close()

    def summary(values: list[float]) -> dict:
        return {"p50_ms": round(statistics.median(values), 1), "mean_ms": round(statistics.fmean(values), 1),
                "max_ms": round(max(values), 1)}

    figure = {"ms_a_photo": round(statistics.median(browser_ms), 1), "browser": summary(browser_ms),
              "page_round_trip": summary(page_ms),
              "stage_mean_ms": {k: round(statistics.fmean(v), 1) for k, v in stages.items()},
              "agreement": round(same / total, 4) if total else None, "faces": total,
              "camera_fps": camera["fps"], "camera": camera, "model_load_s": round(load_s, 2),
              "precision": predictor.precision}
    baseline = {"ms_a_photo": round(statistics.median(server_ms), 1), "server": summary(server_ms)}
    report("bench_private_mode", figure, baseline,
           settings={**vars(args), "photos": len(photos)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
