"""`maskdetect bundle` and `maskdetect fit-verifier`: argv in, one library call, its result printed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskdetect.faces.detector import DETECTORS
from maskdetect.options import PRECISIONS


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    bundle = subparsers.add_parser(
        "bundle", help="make a model bundle (one folder) from a trained checkpoint",
        description="Copies the checkpoint into OUT with a manifest (bundle.json). Add face verifiers with "
        "`maskdetect fit-verifier OUT PHOTOS`; until then the detector's scores alone decide what is a face.")
    bundle.add_argument("classifier", type=Path, metavar="CHECKPOINT",
                        help="a checkpoint from `maskdetect train` (.pt) or an ONNX export")
    bundle.add_argument("--out", "-o", type=Path, required=True, help="the bundle folder to make")
    bundle.add_argument("--detector", choices=DETECTORS, default="retinaface-960",
                        help="its photo detector (default %(default)s)")
    bundle.add_argument("--video-detector", choices=DETECTORS, default="blazeface-fast",
                        help="its video detector")
    bundle.add_argument("--data", default="", help="what the classifier learned from (provenance)")
    bundle.add_argument("--licence", default="", help="the licence of that data (provenance)")
    bundle.set_defaults(func=run_bundle)

    fit = subparsers.add_parser(
        "fit-verifier", help="fit a bundle's face verifier on labelled photos (Pascal VOC)",
        description="Runs the detector and classifier over the photos, fits a logistic regression that "
        "tells faces from false faces among the detector's candidates, chooses its threshold out of fold, "
        "and adds it to the bundle as verifiers/DETECTOR.PRECISION.json.")
    fit.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle folder (`maskdetect bundle`)")
    fit.add_argument("photos", type=Path, metavar="PHOTOS", help="a Pascal VOC folder of labelled photos")
    fit.add_argument("--detector", choices=DETECTORS,
                     help="whose candidates (default: the bundle's photo detector)")
    fit.add_argument("--precision", choices=PRECISIONS, default="int8",
                     help="the classifier precision it runs beside (default %(default)s)")
    target = fit.add_mutually_exclusive_group()
    target.add_argument("--recall-target", type=float, default=0.95,
                        help="two stages; threshold at this recall of faces >= 32 px (default %(default)s)")
    target.add_argument("--precision-target", type=float,
                        help="one stage; threshold at this precision (detectors without second looks)")
    fit.add_argument("--candidate-threshold", type=float, help="the detector's candidate score")
    fit.add_argument("--trust-precision", type=float,
                     help="with --precision-target: keep every candidate the detector scores from where its "
                     "candidates alone reach this precision on the photos (a floor under the regression)")
    fit.add_argument("--only", type=Path, help="a file listing the photos to use (one name a line)")
    fit.add_argument("--exclude", type=Path, help="a file listing photos to leave out")
    fit.add_argument("--limit", type=int, help="at most this many photos")
    fit.set_defaults(func=run_fit_verifier)


def run_bundle(args: argparse.Namespace) -> int:
    from maskdetect.bundler.build import create_bundle

    bundle = create_bundle(args.classifier, args.out, photo_detector=args.detector,
                           video_detector=args.video_detector, data=args.data, licence=args.licence)
    print(f"wrote bundle {bundle.root} (no face verifier yet: add one with "
          f"`maskdetect fit-verifier {bundle.root} PHOTOS`)")
    return 0


def run_fit_verifier(args: argparse.Namespace) -> int:
    from maskdetect.bundler.build import FitOptions, fit_bundle_verifier
    from maskdetect.data.voc_set import read_names

    options = FitOptions(
        photos=args.photos, detector=args.detector, precision=args.precision,
        recall_target=None if args.precision_target is not None else args.recall_target,
        precision_target=args.precision_target, candidate_threshold=args.candidate_threshold,
        only=None if args.only is None else tuple(read_names(args.only)),
        exclude=() if args.exclude is None else tuple(read_names(args.exclude)), limit=args.limit,
        trust_precision=args.trust_precision,
    )
    result = fit_bundle_verifier(args.bundle, options)
    print(json.dumps(result))
    return 0
