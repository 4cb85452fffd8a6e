"""Which decision tells a face from a false face best? Mine every candidate box the photo detector
keeps at a low threshold, with every score it already computes, and fit/measure verifiers.

    python bench/verifier_study.py mine ../shared/data/andrewmvd-face-mask --out /tmp/cand-andrew.npz
    python bench/verifier_study.py mine ../shared/data/ilc2021-dev --out /tmp/cand-ilc.npz \
        --exclude ../shared/data/ilc2021-dev/near-duplicates-of-andrewmvd.tsv
    python bench/verifier_study.py fit /tmp/cand-andrew.npz /tmp/cand-ilc.npz

`mine` records per candidate: the first-pass score, both second-look scores, the face mesh's
face-presence score, the box size, the classifier's probabilities and its 1280-d penultimate
features, and whether the box is the match (IoU >= 0.3, greedy, best score first) of a labelled face,
a second box on a matched face, or no labelled face at all. `fit` trains each verifier on the first
set only (the shipped model may learn only from CC0 photos) and reports, on the second, precision at
the threshold that keeps recall of faces >= 32 px at a target.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskdetect.detect.evaluate import voc_items
from maskdetect.faces.blazeface import BlazeFaceDetector, to_voc_boxes
from maskdetect.faces.landmarks import FaceMesh
from maskdetect.faces.nms import clip_boxes, iou_matrix
from maskdetect.faces.second_look import second_look_scores
from maskdetect.images import open_image
from maskdetect.runtime import DEFAULT_MODEL, load_classifier

MATCH_IOU = 0.3
CANDIDATE = 0.3


def _names(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [line.split("\t")[0].split(",")[0].strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def mine(voc_dir: Path, out: Path, exclude: Path | None, limit: int | None, workers: int) -> None:
    detector = BlazeFaceDetector("accurate", threshold=CANDIDATE)
    classifier = load_classifier(DEFAULT_MODEL, "torch")
    model, pre = classifier.model.eval(), classifier.preprocessing
    items = list(voc_items(voc_dir, _names(exclude), limit))
    import threading

    local = threading.local()

    def one(item: tuple[Path, list]) -> dict:
        path, truth = item
        mesh = getattr(local, "mesh", None) or FaceMesh()
        local.mesh = mesh
        photo = open_image(path)
        pixels = np.asarray(photo)
        boxes, first = detector._merged_candidates(pixels, CANDIDATE)
        if not len(boxes):
            return {"path": str(path), "truth": truth, "n": 0}
        second = second_look_scores(pixels, boxes, detector._models())
        mesh_scores, mesh_boxes = [], []
        for box in boxes:
            result = mesh.landmarks_in_box(photo, tuple(box), upright=False)
            points = result.points[:, :2]
            mesh_scores.append(result.score)
            mesh_boxes.append((box + np.concatenate([points.min(axis=0), points.max(axis=0)])) / 2)
        final = clip_boxes(to_voc_boxes(np.array(mesh_boxes), detector.config.voc_framing),
                           photo.width, photo.height)
        batch = np.stack([pre.face_array(photo, tuple(b)) for b in final])
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            feats = torch.nn.functional.adaptive_avg_pool2d(model.features(x), 1).flatten(1)
            logits = model.classifier(feats)
        return {"path": str(path), "truth": truth, "n": len(boxes), "boxes": final, "first": first,
                "second": second, "mesh": np.array(mesh_scores), "feats": feats.numpy(),
                "probs": torch.softmax(logits, 1).numpy(), "size": (photo.width, photo.height)}

    torch.set_num_threads(1)
    rows = {k: [] for k in ("photo", "box", "first", "second", "mesh", "feats", "probs", "kind", "truth_label",
                            "truth_size", "photo_w", "photo_h")}
    truths = []  # (photo index, size, label) of every labelled face, for recall
    truth_found: list[list[int]] = []
    with ThreadPoolExecutor(workers) as pool:
        for index, record in enumerate(pool.map(one, items)):
            truth = record["truth"]
            tboxes = np.array([t[0] for t in truth], float).reshape(-1, 4)
            for box, label in truth:
                truths.append((index, math.sqrt((box[2] - box[0]) * (box[3] - box[1])), label))
            if not record["n"]:
                continue
            order = np.argsort(-np.asarray(record["first"]), kind="stable")
            overlap = iou_matrix(tboxes, record["boxes"]) if len(tboxes) else np.zeros((0, record["n"]))
            kinds = np.full(record["n"], 2)  # 0 matched face, 1 second box on a face, 2 no labelled face
            tlabel, tsize = [""] * record["n"], np.zeros(record["n"])
            taken = set()
            for det in order:
                if not len(tboxes):
                    break
                free = [t for t in range(len(tboxes)) if t not in taken and overlap[t, det] >= MATCH_IOU]
                if free:
                    t = max(free, key=lambda t: overlap[t, det])
                    taken.add(t)
                    kinds[det] = 0
                    tlabel[det] = truth[t][1]
                    b = tboxes[t]
                    tsize[det] = math.sqrt((b[2] - b[0]) * (b[3] - b[1]))
                elif overlap[:, det].max() >= MATCH_IOU:
                    kinds[det] = 1
            for det in range(record["n"]):
                rows["photo"].append(index)
                rows["box"].append(record["boxes"][det])
                rows["first"].append(record["first"][det])
                rows["second"].append(record["second"][det])
                rows["mesh"].append(record["mesh"][det])
                rows["feats"].append(record["feats"][det])
                rows["probs"].append(record["probs"][det])
                rows["kind"].append(kinds[det])
                rows["truth_label"].append(tlabel[det])
                rows["truth_size"].append(tsize[det])
                rows["photo_w"].append(record["size"][0])
                rows["photo_h"].append(record["size"][1])
            if index % 100 == 0:
                print(f"{index}/{len(items)} photos", file=sys.stderr, flush=True)
    arrays = {k: np.array(v) for k, v in rows.items()}
    arrays["truth_all"] = np.array([(p, s) for p, s, _ in truths], float)
    arrays["truth_all_label"] = np.array([lab for _, _, lab in truths])
    arrays["paths"] = np.array([str(p) for p, _ in items])
    np.savez_compressed(out, **arrays)
    kinds = arrays["kind"]
    print(json.dumps({"photos": len(items), "faces": len(truths), "candidates": int(len(kinds)),
                      "matched": int((kinds == 0).sum()), "second_boxes": int((kinds == 1).sum()),
                      "no_face": int((kinds == 2).sum())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mine")
    m.add_argument("voc_dir", type=Path)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--exclude", type=Path)
    m.add_argument("--limit", type=int)
    m.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.cmd == "mine":
        mine(args.voc_dir, args.out, args.exclude, args.limit, args.workers)


if __name__ == "__main__":
    Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # keep the project's own limit (set on import)
    main()
