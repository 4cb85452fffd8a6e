"""Occlusion speed against captum, and coarse-to-fine agreement with the exact map. Prints JSON.

Setting (the issue's): MobileNetV2 (ImageNet features, a seeded random 3-class head) at 224 px,
patch 16, stride 8 (729 windows), grey fill, captum's Occlusion with perturbations_per_eval=64 as
the same-run baseline. Figures:

- exact: our batched occlusion on ONNX Runtime (the default backend), and on eager torch;
  both checked equal to captum's map (max abs difference).
- coarse: coarse-to-fine (coarse patch 32 / stride 16, exact windows near the coarse top 10%),
  with the IoU of its top-10% region against the exact map's, over several face crops.
- the one-off ONNX export, reported apart and also folded into a single-image speed-up.

Run: .venv/bin/python bench/bench_explain.py [--images 3] [--threads 2] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskdetect.checkpoint import make_checkpoint
from maskdetect.explain.occlusion import (
    coarse_to_fine_map,
    fill_pixels,
    normalise_pixels,
    occlusion_map,
    region_iou,
    top_region,
)
from maskdetect.faces.crop import crop_face
from maskdetect.models import create_model
from maskdetect.models.registry import mobilenet_v2_weights_path
from maskdetect.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from maskdetect.runtime import Classifier, load_classifier

SIZE, PATCH, STRIDE, PPE = 224, 16, 8, 64
SAMPLE = Path(__file__).resolve().parents[1] / "src" / "maskdetect" / "assets" / "sample" / "andrewmvd"


def face_crops(count: int) -> list[np.ndarray]:
    """The astronaut's face (public domain) and faces from the bundled CC0 sample, 224 px."""
    from skimage.data import astronaut

    crops = [crop_face(Image.fromarray(astronaut()), (165, 40, 265, 160), size=SIZE)]
    for xml in sorted((SAMPLE / "annotations").glob("*.xml")):
        if len(crops) >= count:
            break
        root = ET.parse(xml).getroot()
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            box = tuple(float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            if box[2] - box[0] >= 40:
                image = Image.open(SAMPLE / "images" / f"{xml.stem}.jpg").convert("RGB")
                crops.append(crop_face(image, box, size=SIZE))
                break
    return [np.asarray(c, np.float32) for c in crops[:count]]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="face crops for the coarse-to-fine IoU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=SIZE,
                        help="crop side in pixels (default %(default)s, 729 windows; a smoke run takes 64)")
    parser.add_argument("--skip-torch", action="store_true", help="skip our eager-torch exact run")
    args = parser.parse_args()
    SIZE = args.size  # the crops, the checkpoint and the report all read it
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pretrained = mobilenet_v2_weights_path() is not None
    model = create_model("mobilenet_v2", pretrained=pretrained).eval()

    crops = face_crops(args.images)
    inputs = [normalise_pixels(c, IMAGENET_MEAN, IMAGENET_STD) for c in crops]
    baselines = [normalise_pixels(fill_pixels(c, "grey"), IMAGENET_MEAN, IMAGENET_STD) for c in crops]
    torch_forward = Classifier.from_module(model).probabilities
    target = int(np.argmax(torch_forward(inputs[0][None])[0]))

    from captum.attr import Occlusion

    def captum_run() -> np.ndarray:
        with torch.no_grad():
            return Occlusion(lambda x: torch.softmax(model(x), dim=1)).attribute(
                torch.from_numpy(inputs[0])[None], sliding_window_shapes=(3, PATCH, PATCH),
                strides=(3, STRIDE, STRIDE), baselines=torch.from_numpy(baselines[0])[None],
                target=target, perturbations_per_eval=PPE,
            )[0, 0].numpy()

    captum_map, captum_s = timed(captum_run)
    checkpoint = make_checkpoint(model, "mobilenet_v2", Preprocessing(input_size=SIZE))
    onnx_classifier, export_s = timed(lambda: load_classifier(checkpoint, "onnx", threads=args.threads))
    onnx_forward = onnx_classifier.probabilities

    def ours(forward: Callable[[np.ndarray], np.ndarray], i: int, fine: bool = False) -> Any:
        run = coarse_to_fine_map if fine else occlusion_map
        return run(forward, inputs[i], baselines[i], target, PATCH, STRIDE, batch_size=PPE)

    exact_onnx, exact_onnx_s = timed(lambda: ours(onnx_forward, 0))
    coarse, coarse_s = timed(lambda: ours(onnx_forward, 0, fine=True))
    result: dict = {
        "setting": {"model": "mobilenet_v2", "imagenet_features": pretrained, "size": SIZE, "patch": PATCH,
                    "stride": STRIDE, "windows": exact_onnx.windows, "perturbations_per_eval": PPE,
                    "threads": args.threads, "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                    "python": platform.python_version(), "torch": torch.__version__},
        "captum_s": round(captum_s, 3),
        "exact_onnx_s": round(exact_onnx_s, 3),
        "onnx_export_s": round(export_s, 3),
        "speedup_exact_onnx": round(captum_s / exact_onnx_s, 2),
        "speedup_exact_onnx_with_export": round(captum_s / (exact_onnx_s + export_s), 2),
        "max_abs_diff_exact_onnx_vs_captum": float(np.nanmax(np.abs(exact_onnx.delta - captum_map))),
        "max_abs_captum_value": float(np.abs(captum_map).max()),  # the scale the difference is against
        "coarse_s": round(coarse_s, 3),
        "coarse_windows": coarse.windows,
        "speedup_coarse": round(captum_s / coarse_s, 2),
    }
    if not args.skip_torch:
        exact_torch, exact_torch_s = timed(lambda: ours(torch_forward, 0))
        result["exact_torch_s"] = round(exact_torch_s, 3)
        result["speedup_exact_torch"] = round(captum_s / exact_torch_s, 2)
        diff = float(np.nanmax(np.abs(exact_torch.delta - captum_map)))
        result["max_abs_diff_exact_torch_vs_captum"] = diff
    ious = [region_iou(top_region(coarse.delta, 0.1), top_region(exact_onnx.delta, 0.1))]
    for i in range(1, len(inputs)):
        ious.append(region_iou(top_region(ours(onnx_forward, i, fine=True).delta, 0.1),
                               top_region(ours(onnx_forward, i).delta, 0.1)))
    result["coarse_top10_iou"] = [round(v, 3) for v in ious]
    result["coarse_top10_iou_min"] = round(min(ious), 3)
    result["goals"] = {
        "exact_3x": result["speedup_exact_onnx"] >= 3,
        "coarse_10x": result["speedup_coarse"] >= 10,
        "coarse_iou_0.8": result["coarse_top10_iou_min"] >= 0.8,
        "exact_equals_captum_1e-5": result["max_abs_diff_exact_onnx_vs_captum"] <= 1e-5,
    }
    import harness

    harness.report("bench_explain", result, {"captum_s": round(captum_s, 3)}, vars(args),
                   ratio={k: v for k, v in result.items() if k.startswith("speedup_")})


if __name__ == "__main__":
    main()
