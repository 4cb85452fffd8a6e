"""Faces found in large photos, with and without the finer tiles (`max_tile_px`), in one run (JSON).

No labelled set here has photos over 1,280 px, so large photos are built from real ones: andrewmvd
photos (CC0) pasted at their own size, side by side, into mosaics of `--side` pixels (a 48 MP phone
photo is 8,000 px), their boxes moved with them. The same faces are also detected in their own
photos, as the reference a large photo should come close to. Recall at IoU 0.5 (faces of 32 px and
more, and all), precision and seconds per mosaic for the `blazeface` photo detector as shipped and
with `max_tile_px=None` (fraction-only tiles, as before).

    .venv/bin/python bench/bench_large_photos.py [--side 8000] [--mosaics 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VOC = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask"


def build_mosaics(items: list, side: int, count: int) -> tuple[list[tuple[Image.Image, list]], list]:
    """Pack photos row by row, in order, into `count` canvases of side x 3/4 side; boxes follow.

    Returns the mosaics (image, faces) and the items placed in them.
    """
    from maskdetect.images import open_image

    height = side * 3 // 4
    mosaics, placed, next_item = [], [], 0
    for _ in range(count):
        canvas, truth = Image.new("RGB", (side, height), (90, 90, 90)), []
        x = y = row = 0
        while next_item < len(items):
            path, faces = items[next_item]
            photo = open_image(path)
            if x + photo.width > side:
                x, y, row = 0, y + row, 0
            if y + photo.height > height:
                break  # this photo starts the next mosaic
            canvas.paste(photo, (x, y))
            truth += [((b[0] + x, b[1] + y, b[2] + x, b[3] + y), label) for b, label in faces]
            placed.append(items[next_item])
            x, row, next_item = x + photo.width, max(row, photo.height), next_item + 1
        mosaics.append((canvas, truth))
    return mosaics, placed


def score(detector, image: Image.Image, truth: list) -> tuple:
    from maskdetect.evaluation.detection import matched_outcome

    start = time.perf_counter()
    boxes, scores = detector.detect(image)
    seconds = time.perf_counter() - start
    return matched_outcome("", truth, boxes, scores, None), seconds


def summary(outcomes: list, seconds: float) -> dict:
    from maskdetect.evaluation.detection import summarise

    report = summarise(outcomes)
    return {"recall_32px_and_more": report["recall_32px_and_more"], "recall": report["recall"],
            "precision": report["precision"], "faces": report["faces"], "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000, help="mosaic width in pixels (height 3/4 of it)")
    parser.add_argument("--mosaics", type=int, default=2)
    parser.add_argument("--max-tile", type=int, action="append", default=[],
                        help="also measure this max_tile_px (repeatable)")
    args = parser.parse_args()
    if not VOC.is_dir():
        print(f"{VOC} is missing: this benchmark needs ../shared/data", file=sys.stderr)
        return 2
    from maskdetect.data.voc_set import voc_items
    from maskdetect.faces.blazeface import CONFIGS, BlazeFaceDetector
    from maskdetect.images import open_image

    items = voc_items(VOC)
    mosaics, placed = build_mosaics(items, args.side, args.mosaics)

    def capped(px: int | None) -> BlazeFaceDetector:
        return BlazeFaceDetector(dataclasses.replace(CONFIGS["accurate"], max_tile_px=px))

    shipped = BlazeFaceDetector("accurate")
    detectors = [("finer tiles (shipped)", shipped), ("fraction tiles only", capped(None))]
    detectors += [(f"max_tile_px={px}", capped(px)) for px in args.max_tile]
    import harness

    results: dict[str, dict] = {}
    for name, detector in detectors:
        runs = [score(detector, image, truth) for image, truth in mosaics]
        results[name] = summary([o for o, _ in runs], sum(s for _, s in runs) / len(runs))
    if args.max_tile:  # comparing caps: the reference below does not change with them
        harness.report("bench_large_photos/max_tile", results, None, vars(args))
        return 0
    # The same faces in their own photos, the reference: what tiling a large photo should come close to.
    own = [score(shipped, open_image(path), faces) for path, faces in placed]
    results["the same faces in their own photos"] = summary([o for o, _ in own], sum(s for _, s in own))
    harness.report("bench_large_photos", {"side": args.side, "mosaics": len(mosaics), "results": results},
                   results["fraction tiles only"], vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
