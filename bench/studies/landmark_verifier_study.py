"""Do RetinaFace's five landmarks help the face verifier tell faces from false faces?

Mines every candidate of the photo detector (RetinaFace, from the verifier's candidate score) on
andrewmvd-face-mask and ilc2021-dev (near-duplicates left out), with the classifier's features, as
`maskdetect fit-verifier` does. Then fits two verifiers the same way on andrewmvd's 400 verifier
photos (`bench/andrewmvd-verifier-photos.txt`, the same regression and trust floor) and scores both
on andrewmvd's other 453 photos and on ilc2021-dev:

- `refit`: the verifier's own columns (detector score, box size, classifier features);
- `with landmarks`: those plus 12 columns from the landmarks: the five points in the network's box
  (x and y as shares of its width and height), the eyes' distance as a share of the box's width, and
  how far the nose tip sits beside the eyes' midpoint in eye distances (how turned the face is).

The shipped verifier's operating point is printed first, on the same candidates. Each line gives,
per threshold, the recall of faces of 32 px and more and the precision (IoU 0.3, second boxes
suppressed as the Predictor does).

    .venv/bin/python bench/studies/landmark_verifier_study.py [--detector retinaface-960]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ANDREW, ILC = DATA / "andrewmvd-face-mask", DATA / "ilc2021-dev"
VERIFIER_PHOTOS = ROOT / "bench" / "andrewmvd-verifier-photos.txt"
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)

_predictor = None


def _start(detector: str) -> None:
    global _predictor
    from maskdetect.predict import Predictor

    _predictor = Predictor(detector=detector)


def _mine(item: tuple) -> dict:
    from maskdetect.images import open_image

    path, truth = item
    photo = open_image(path)
    found = _predictor.detector.candidates(photo)
    record = {"name": Path(path).name, "longer": max(photo.size), "truth": truth, "boxes": found.boxes,
              "first": found.first, "landmarks": found.landmarks, "raw": found.raw_boxes}
    if len(found):
        crop = _predictor.preprocessing.face_array
        batch = np.stack([crop(photo, tuple(map(float, b))) for b in found.boxes])
        _, features = _predictor.classifier.logits_and_features(batch)
        record["features"] = features
        record["shipped"] = _predictor.verifier.decide(found.boxes, found.first, features, photo.size,
                                                       lambda rows: np.zeros((len(rows), 2)))
    return record


def landmark_columns(raw: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """12 columns per candidate from its network box (N x 4) and five landmarks (N x 5 x 2).

    >>> marks = np.array([[[3, 4], [7, 4], [5, 6], [4, 8], [6, 8]]])
    >>> landmark_columns(np.array([[0, 0, 10, 10]]), marks).round(2)
    array([[0.3, 0.7, 0.5, 0.4, 0.6, 0.4, 0.4, 0.6, 0.8, 0.8, 0.4, 0. ]])
    """
    raw, marks = np.asarray(raw, np.float64).reshape(-1, 4), np.asarray(marks, np.float64).reshape(-1, 5, 2)
    width = np.maximum(raw[:, 2] - raw[:, 0], 1e-6)[:, None]
    height = np.maximum(raw[:, 3] - raw[:, 1], 1e-6)[:, None]
    xs, ys = (marks[:, :, 0] - raw[:, [0]]) / width, (marks[:, :, 1] - raw[:, [1]]) / height
    eyes = np.hypot(*(marks[:, 1] - marks[:, 0]).T)
    turn = np.abs(marks[:, 2, 0] - (marks[:, 0, 0] + marks[:, 1, 0]) / 2) / np.maximum(eyes, 1.0)
    return np.column_stack([xs, ys, eyes / width[:, 0], turn])


def candidate_set(records: list[dict]) -> tuple[object, dict]:
    """A `bundler.candidates.CandidateSet` of the records, and the extra arrays (landmark columns,
    the shipped verifier's probabilities) row for row."""
    from maskdetect.bundler.candidates import CandidateSet, candidate_kinds

    parts: dict[str, list] = {k: [] for k in ("photo", "boxes", "first", "features", "longer", "kind",
                                              "landmarks", "shipped")}
    truth_photo, truth_boxes = [], []
    for index, record in enumerate(records):
        truth = np.array([box for box, _ in record["truth"]], np.float64).reshape(-1, 4)
        truth_photo += [index] * len(truth)
        truth_boxes.append(truth)
        count = len(record["boxes"])
        if not count:
            continue
        parts["photo"].append(np.full(count, index))
        parts["boxes"].append(record["boxes"])
        parts["first"].append(record["first"])
        parts["features"].append(record["features"])
        parts["longer"].append(np.full(count, record["longer"], np.float64))
        parts["kind"].append(candidate_kinds(truth, record["boxes"], record["first"]))
        parts["landmarks"].append(landmark_columns(record["raw"], record["landmarks"]))
        parts["shipped"].append(record["shipped"])
    data = {k: np.concatenate(v) for k, v in parts.items()}
    candidates = CandidateSet(data["photo"], data["boxes"], data["first"], np.zeros((len(data["first"]), 2)),
                              data["features"], data["longer"], data["kind"], np.array(truth_photo, int),
                              np.concatenate(truth_boxes), len(records))
    return candidates, {"landmarks": data["landmarks"], "shipped": data["shipped"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="retinaface-960")
    args = parser.parse_args(argv)

    from maskdetect.bundler.candidates import FACE, SECOND_BOX, operating_point
    from maskdetect.bundler.fit import fit_logistic, trust_score
    from maskdetect.data.voc_set import read_names, voc_items
    from maskdetect.verify import trusted

    fitted = {Path(n).stem for n in read_names(VERIFIER_PHOTOS)}
    andrew = voc_items(ANDREW)
    sets = {"fit": [i for i in andrew if i[0].stem in fitted],
            "andrewmvd held out": [i for i in andrew if i[0].stem not in fitted],
            "ilc2021-dev": voc_items(ILC, read_names(ILC / "near-duplicates-of-andrewmvd.tsv"))}
    with ProcessPoolExecutor(2, initializer=_start, initargs=(args.detector,)) as pool:
        mined = {name: candidate_set(list(pool.map(_mine, items, chunksize=8)))
                 for name, items in sets.items()}

    train, train_extra = mined["fit"]
    rows, target = train.kind != SECOND_BOX, (train.kind == FACE).astype(int)
    trust = trust_score(train, 0.95)
    variants = {
        "refit": (train.columns(), lambda data, extra: data.columns()),
        "with landmarks": (np.column_stack([train.columns(), train_extra["landmarks"]]),
                           lambda data, extra: np.column_stack([data.columns(), extra["landmarks"]])),
    }
    report: dict = {"detector": args.detector, "trust_score": trust, "shipped": {}, "variants": {}}
    for name in ("andrewmvd held out", "ilc2021-dev"):
        data, extra = mined[name]
        report["shipped"][name] = operating_point(data, extra["shipped"], _predictor_threshold(args.detector))
    for variant, (columns, columns_of) in variants.items():
        model = fit_logistic(columns[rows], target[rows])
        report["variants"][variant] = {}
        for name in ("andrewmvd held out", "ilc2021-dev"):
            data, extra = mined[name]
            face = trusted(model.probability(columns_of(data, extra)), data.first, trust)
            report["variants"][variant][name] = {
                str(t): f"{p['recall_32px']:.3f} @ {p['precision']:.3f}"
                for t, p in ((t, operating_point(data, face, t)) for t in THRESHOLDS)}
    print(json.dumps(report, indent=1))
    return 0


def _predictor_threshold(detector: str) -> float:
    from maskdetect.predict import Predictor

    return float(Predictor(detector=detector).face_threshold)


if __name__ == "__main__":
    sys.exit(main())
