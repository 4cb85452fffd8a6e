"""How much of the photo path's "false" boxes on ilc2021-dev are faces its annotators left out?

ilc2021-dev and andrewmvd-face-mask labelled 96 of the same photos independently
(`near-duplicates-of-andrewmvd.tsv` pairs them). This runs the photo path once on those ilc2021-dev
photos and scores the same boxes three ways, at one IoU:

- against ilc2021-dev's labels (what `evaluate-detect` reports);
- against the union of both annotations: ilc2021-dev's faces, plus andrewmvd's faces (scaled to the
  photo) that overlap none of them at that IoU;
- and andrewmvd's annotation itself against ilc2021-dev's (the ceiling a second careful annotation
  reaches, `evaluate-detect --against`).

If the boxes on no ilc2021-dev face were mostly things that are no face, the union would not lift
precision; where it does, those boxes are faces a second team labelled. Photos whose andrewmvd copy
the face verifiers were fitted on (`bench/andrewmvd-verifier-photos.txt`) are left out unless
`--all-pairs`: the verifier learned from andrewmvd's labels of them.

It also counts the people each team labelled, by class, as the tracking study's truth counts them
(faces at least `ClipSettings.min_photo_face` px wide in andrewmvd's photo): how far apart two careful
teams' counts of the same people are, beside the tracking study's "people counted within 5%" goal.

    .venv/bin/python bench/studies/annotation_union_study.py [--match-iou 0.3] [--detector D] [--all-pairs]

Prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ILC, ANDREW = DATA / "ilc2021-dev", DATA / "andrewmvd-face-mask"
PAIRS = ILC / "near-duplicates-of-andrewmvd.tsv"
VERIFIER_PHOTOS = ROOT / "bench" / "andrewmvd-verifier-photos.txt"


def union_truth(truth: list, other: list, iou: float) -> list:
    """`truth` plus the faces of `other` (same pixels) that overlap none of `truth`'s at `iou`.

    >>> other = [((1, 0, 11, 10), "covered"), ((50, 0, 60, 10), "uncovered")]
    >>> union_truth([((0, 0, 10, 10), "covered")], other, 0.3)
    [((0, 0, 10, 10), 'covered'), ((50, 0, 60, 10), 'uncovered')]
    """
    from maskdetect.faces.nms import iou_matrix

    if not truth or not other:
        return list(truth) + list(other)
    overlap = iou_matrix(np.array([b for b, _ in other], float), np.array([b for b, _ in truth], float))
    return list(truth) + [face for face, row in zip(other, overlap, strict=True) if row.max() < iou]


def people_by_class(faces: list, min_px: float) -> dict[str, int]:
    """Faces at least `min_px` wide, by class.

    >>> people_by_class([((0, 0, 40, 40), "covered"), ((0, 0, 20, 20), "uncovered")], 32)
    {'covered': 1, 'incorrect': 0, 'uncovered': 0}
    """
    from maskdetect.labels import CLASSES

    counts = dict.fromkeys(CLASSES, 0)
    for (x0, _, x1, _), label in faces:
        counts[label] += x1 - x0 >= min_px
    return counts


def count_agreement(items: list, others: list, pairs: list) -> dict:
    """Each team's people by class on the paired photos, and how far the counts lie apart
    (`track_score.combine_scores`'s count error: the classes' differences over ilc2021-dev's people)."""
    from maskdetect.evaluation.clips import ClipSettings
    from maskdetect.evaluation.detection import paired_faces

    min_px = ClipSettings().min_photo_face
    ilc: dict[str, int] = {}
    andrew: dict[str, int] = {}
    # In andrewmvd's pixels, where the tracking truth measures.
    for _, faces, scaled in paired_faces(others, items, [(theirs, mine) for mine, theirs in pairs]):
        for total, counts in ((ilc, people_by_class(scaled, min_px)),
                              (andrew, people_by_class(faces, min_px))):
            for label, n in counts.items():
                total[label] = total.get(label, 0) + n
    off = sum(abs(andrew[c] - ilc[c]) for c in ilc)
    return {"min_face_px": min_px, "ilc2021_dev": ilc, "andrewmvd": andrew,
            "count_error": round(off / max(1, sum(ilc.values())), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--match-iou", type=float, default=0.3)
    parser.add_argument("--detector", default=None, help="photo detector (default: the bundle's)")
    parser.add_argument("--all-pairs", action="store_true",
                        help="keep the pairs whose andrewmvd photo the verifiers were fitted on")
    args = parser.parse_args(argv)

    from maskdetect.data.voc_set import read_names, voc_items
    from maskdetect.evaluation.commands import read_pairs
    from maskdetect.evaluation.detection import (
        agreement_outcomes,
        evaluate_images,
        matched_outcome,
        summarise,
    )
    from maskdetect.evaluation.false_alarms import false_alarm_report
    from maskdetect.options import ModelOptions
    from maskdetect.predict import Predictor

    every_pair = pairs = read_pairs(PAIRS)
    if not args.all_pairs:
        fitted = {Path(name).stem for name in read_names(VERIFIER_PHOTOS)}
        pairs = [(mine, theirs) for mine, theirs in pairs if Path(theirs).stem not in fitted]
    items = voc_items(ILC, only=[mine for mine, _ in pairs])
    others = voc_items(ANDREW, only=[theirs for _, theirs in pairs])
    # andrewmvd's annotation as if it were a detector: its boxes scaled to each ilc2021-dev photo
    annotators = agreement_outcomes(items, others, pairs, args.match_iou)
    theirs = {o.path: [(tuple(map(float, box)), label) for box, label in zip(o.boxes, o.labels, strict=True)]
              for o in annotators}

    predictor = Predictor.from_options(ModelOptions(detector=args.detector))

    def find(image: object) -> tuple[np.ndarray, np.ndarray, list[str]]:
        faces = predictor(image)
        return (np.array([f.box for f in faces]).reshape(-1, 4), np.array([f.detection_score for f in faces]),
                [f.label for f in faces])

    found = list(evaluate_images(items, find, workers=2, iou=args.match_iou))
    union = [matched_outcome(o.path, union_truth(o.truth, theirs[o.path], args.match_iou), o.boxes, o.scores,
                             o.labels, args.match_iou) for o in found]

    def figures(outcomes: list) -> dict:
        report = summarise(outcomes, args.match_iou)
        keep = ("faces", "detections", "matched", "recall", "precision", "recall_32px_and_more")
        by_size = false_alarm_report(outcomes)["by_size"]
        unmatched = {k: v["unmatched"] for k, v in by_size.items()}
        return {**{k: report[k] for k in keep}, "unmatched_by_size": unmatched}

    print(json.dumps({
        "photos": len(items), "pairs_left_out_as_verifier_photos": len(every_pair) - len(pairs),
        "match_iou": args.match_iou, "detector": predictor.detector.name,
        "photo_path_against_ilc2021_dev": figures(found),
        "photo_path_against_both_annotations": figures(union),
        "andrewmvd_annotation_against_ilc2021_dev": figures(annotators),
        "people_counted_by_each_team": count_agreement(items, others, pairs),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
