"""The bundled classifier in int8 against float32, side by side in one run (JSON on stdout).

Both run on ONNX Runtime with one thread, over batches of 1, 3 and 10 face crops (what a video frame
and a photo's verifier candidates give), taking turns so that load from other jobs falls on both
alike; each keeps its best of `--rounds`. Also printed: how often the two give the same label on the
crops (the accurate detector's candidates in the package's CC0 sample photos).

    .venv/bin/python bench/bench_int8.py [--rounds 5] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _best_ms(classifier, batch: np.ndarray, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        classifier(batch)
    return (time.perf_counter() - start) * 1000 / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from maskdetect.quantize import calibration_crops
    from maskdetect.runtime import load_classifier

    models = {p: load_classifier(precision=p, threads=1) for p in ("fp32", "int8")}
    crops = calibration_crops(models["fp32"].preprocessing)
    same = float((models["fp32"](crops).argmax(1) == models["int8"](crops).argmax(1)).mean())
    timings: dict[str, dict[str, float]] = {}
    for faces in (1, 3, 10):
        batch = crops[:faces]
        for model in models.values():  # warm-up: the first runs allocate
            model(batch)
        best = {p: float("inf") for p in models}
        for _ in range(args.rounds):
            for precision, model in models.items():
                best[precision] = min(best[precision], _best_ms(model, batch, args.repeat))
        timings[f"{faces}_faces"] = {"fp32_ms": round(best["fp32"], 2), "int8_ms": round(best["int8"], 2),
                                     "speedup": round(best["fp32"] / best["int8"], 2)}
    print(json.dumps({"threads": 1, "crops": len(crops), "same_label_share": round(same, 4),
                      "load_average_1min_at_end": round(os.getloadavg()[0], 1), "timings": timings},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
