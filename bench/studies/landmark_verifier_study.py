"""Do RetinaFace's five landmarks help the face verifier tell faces from false faces?

Mines every candidate of the photo detector (RetinaFace, from the verifier's candidate score) on
andrewmvd-face-mask and ilc2021-dev (near-duplicates left out), with the classifier's features and
the landmarks, with `bundler.candidates.mine_candidates`, as `maskdetect fit-verifier` does. Then
fits two verifiers the same way on andrewmvd's 400 verifier photos
(`bench/andrewmvd-verifier-photos.txt`, the same regression and trust floor) and scores both on
andrewmvd's other 453 photos and on ilc2021-dev:

- `refit`: the verifier's own columns (detector score, box size, classifier features);
- `with landmarks`: those plus 12 columns from the landmarks: the five points in the candidate's box
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ANDREW, ILC = DATA / "andrewmvd-face-mask", DATA / "ilc2021-dev"
VERIFIER_PHOTOS = ROOT / "bench" / "andrewmvd-verifier-photos.txt"
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def landmark_columns(boxes: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """12 columns per candidate from its box (N x 4) and five landmarks (N x 5 x 2).

    >>> marks = np.array([[[3, 4], [7, 4], [5, 6], [4, 8], [6, 8]]])
    >>> landmark_columns(np.array([[0, 0, 10, 10]]), marks).round(2)
    array([[0.3, 0.7, 0.5, 0.4, 0.6, 0.4, 0.4, 0.6, 0.8, 0.8, 0.4, 0. ]])
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    marks = np.asarray(marks, np.float64).reshape(-1, 5, 2)
    width = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)[:, None]
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)[:, None]
    xs, ys = (marks[:, :, 0] - boxes[:, [0]]) / width, (marks[:, :, 1] - boxes[:, [1]]) / height
    eyes = np.hypot(*(marks[:, 1] - marks[:, 0]).T)
    turn = np.abs(marks[:, 2, 0] - (marks[:, 0, 0] + marks[:, 1, 0]) / 2) / np.maximum(eyes, 1.0)
    return np.column_stack([xs, ys, eyes / width[:, 0], turn])


def shipped_probabilities(predictor, data) -> np.ndarray:
    """The bundled verifier's face probability of every candidate, photo by photo (no second looks)."""
    face = np.zeros(len(data.first))
    for index in np.unique(data.photo):
        rows = data.photo == index
        side = float(data.longer_side[rows][0])
        face[rows] = predictor.verifier.decide(data.boxes[rows], data.first[rows], data.features[rows],
                                               (side, side), lambda r: np.zeros((len(r), 2)))
    return face


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="retinaface-960")
    args = parser.parse_args(argv)

    from maskdetect.bundler.candidates import FACE, SECOND_BOX, mine_candidates, operating_point
    from maskdetect.bundler.fit import fit_logistic, trust_score
    from maskdetect.data.voc_set import read_names, voc_items
    from maskdetect.predict import Predictor
    from maskdetect.verify import trusted

    predictor = Predictor(detector=args.detector)
    fitted = {Path(n).stem for n in read_names(VERIFIER_PHOTOS)}
    andrew = voc_items(ANDREW)
    sets = {"fit": [i for i in andrew if i[0].stem in fitted],
            "andrewmvd held out": [i for i in andrew if i[0].stem not in fitted],
            "ilc2021-dev": voc_items(ILC, read_names(ILC / "near-duplicates-of-andrewmvd.tsv"))}
    mined = {name: mine_candidates(predictor, items) for name, items in sets.items()}

    train = mined["fit"]
    rows, target = train.kind != SECOND_BOX, (train.kind == FACE).astype(int)
    trust = trust_score(train, 0.95)
    def with_landmarks(data) -> np.ndarray:
        return np.column_stack([data.columns(), landmark_columns(data.boxes, data.landmarks)])

    variants = {"refit": (train.columns(), lambda data: data.columns()),
                "with landmarks": (with_landmarks(train), with_landmarks)}
    report: dict = {"detector": args.detector, "trust_score": trust, "shipped": {}, "variants": {}}
    for name in ("andrewmvd held out", "ilc2021-dev"):
        data = mined[name]
        report["shipped"][name] = operating_point(data, shipped_probabilities(predictor, data),
                                                  predictor.face_threshold)
    for variant, (columns, columns_of) in variants.items():
        model = fit_logistic(columns[rows], target[rows])
        report["variants"][variant] = {}
        for name in ("andrewmvd held out", "ilc2021-dev"):
            data = mined[name]
            face = trusted(model.probability(columns_of(data)), data.first, trust)
            report["variants"][variant][name] = {
                str(t): f"{p['recall_32px']:.3f} @ {p['precision']:.3f}"
                for t, p in ((t, operating_point(data, face, t)) for t in THRESHOLDS)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
