"""Measure where BlazeFace puts the face in aligned head shots: the value of ALIGNED_HEADSHOT_BOX.

Runs the project's detector (boxes already converted to VOC-like framing) on every image of
../shared/data/maskedface-net-sample and prints, as JSON, the median best box as fractions of the
image side, its spread, and the medians per subset (CMFD, IMFD).

    .venv/bin/python bench/studies/measure_headshot_box.py [FOLDER]
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT.parent / "shared" / "data" / "maskedface-net-sample"


def main() -> int:
    from maskdetect.faces.blazeface import BlazeFaceDetector
    from maskdetect.images import open_image

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    files = sorted(folder.rglob("*.jpg"))
    if not files:
        sys.exit(f"no .jpg images under {folder}")
    detector = BlazeFaceDetector()

    def best_box(path: Path) -> tuple[str, list[float]] | None:
        image = open_image(path)
        boxes, _ = detector.detect(image)
        if not len(boxes):
            return None
        x0, y0, x1, y1 = boxes[0]
        return path.relative_to(folder).parts[0], [x0 / image.width, y0 / image.height,
                                                   x1 / image.width, y1 / image.height]

    with ThreadPoolExecutor(2) as pool:
        found = [r for r in pool.map(best_box, files) if r]
    boxes = np.array([b for _, b in found])
    spread = np.percentile(boxes, 75, axis=0) - np.percentile(boxes, 25, axis=0)
    report = {
        "folder": str(folder),
        "images": len(files),
        "with_a_face": len(found),
        "median_box": np.median(boxes, axis=0).round(3).tolist(),
        "interquartile_range": spread.round(3).tolist(),
        "median_by_subset": {
            name: np.median(np.array([b for n, b in found if n == name]), axis=0).round(3).tolist()
            for name in sorted({n for n, _ in found})
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
