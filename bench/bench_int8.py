"""The bundled classifier in int8 against float32, side by side in one run (JSON on stdout).

Both run on ONNX Runtime with one thread, over batches of 1, 3 and 10 face crops (what a video frame
and a photo's verifier candidates give), taking turns so that load from other jobs falls on both
alike; each keeps its best of `--rounds`. Also printed: how often the two give the same label on the
crops (the accurate detector's candidates in the package's CC0 sample photos).

    .venv/bin/python bench/bench_int8.py [--rounds 5] [--repeat 20]
    .venv/bin/python bench/bench_int8.py --labelled VOC_DIR [--exclude NAMES_FILE]

`--labelled` instead classifies every labelled face box of a VOC set with both and prints each one's
accuracy and macro-F1 (`maskdetect.metrics.classification_report`) and how often they agree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _best_ms(classifier, batch: np.ndarray, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        classifier(batch)
    return (time.perf_counter() - start) * 1000 / repeat


def labelled(voc_dir: Path, exclude: Path | None) -> dict:
    """fp32 and int8 on the labelled face boxes of a VOC set: accuracy, macro-F1, agreement."""
    from maskdetect.data.voc_set import read_names, voc_items
    from maskdetect.images import open_image
    from maskdetect.metrics import classification_report
    from maskdetect.runtime import load_classifier

    names = [] if exclude is None else read_names(exclude)
    models = {p: load_classifier(precision=p) for p in ("fp32", "int8")}
    pre = models["fp32"].preprocessing
    truth: list[str] = []
    predicted: dict[str, list[int]] = {p: [] for p in models}
    for image, faces in voc_items(voc_dir, names):
        photo = open_image(image)
        batch = np.stack([pre.face_array(photo, box) for box, _ in faces]) if faces else None
        if batch is None:
            continue
        truth += [label for _, label in faces]
        for precision, model in models.items():
            predicted[precision] += model(batch).argmax(1).tolist()
    reports = {p: classification_report(truth, [pre.classes[i] for i in v], pre.classes,
                                        layout="evaluate-detect") for p, v in predicted.items()}
    return {"faces": len(truth),
            "same_label_share": round(float(np.mean(np.equal(predicted["fp32"], predicted["int8"]))), 4),
            **{p: {k: r[k] for k in ("accuracy", "macro_f1")} | {
                "f1": {c: r["per_class"][c]["f1"] for c in pre.classes}} for p, r in reports.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--labelled", type=Path, help="a VOC set: compare labels on its face boxes instead")
    parser.add_argument("--exclude", type=Path, help="with --labelled: a file of image names to leave out")
    args = parser.parse_args()
    if args.labelled is not None:
        import harness

        figure = {"set": str(args.labelled), **labelled(args.labelled, args.exclude)}
        harness.report("bench_int8/labelled", figure, None, vars(args))
        return 0
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
    import harness

    figure = {"threads": 1, "crops": len(crops), "same_label_share": round(same, 4),
              "load_average_1min_at_end": round(os.getloadavg()[0], 1), "timings": timings,
              **{f"int8_ms_{k}": v["int8_ms"] for k, v in timings.items()}}
    baseline = {f"int8_ms_{k}": v["fp32_ms"] for k, v in timings.items()}  # fp32, same run
    harness.report("bench_int8", figure, baseline, vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
