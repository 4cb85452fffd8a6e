"""`maskdetect explain IMAGE|DIR` and `maskdetect explain --summary DIR`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskdetect.explain.options import BORDERS, EXPLAIN_BACKENDS, FILLS, METHODS, MODES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="heat maps of what the classifier looks at (occlusion, Grad-CAM); nose/mouth share",
        description="Explain the classifier on every face of a photo, on every image of a folder (with a "
        "contact sheet), or measure the heat on the nose and mouth over a labelled folder (--summary). "
        "Files go to --out (default ./explanations/); its index.json lists every map in it.",
    )
    parser.add_argument("path", nargs="?", type=Path, help="a photo or a folder of images")
    parser.add_argument("--summary", type=Path, metavar="DIR",
                        help="labelled folder root/[split/]<class>/...: nose-and-mouth heat share per class")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the bundled model)")
    parser.add_argument("--method", choices=METHODS, default="occlusion")
    parser.add_argument("--target", default="predicted",
                        help="class to explain: predicted (default), covered, incorrect or uncovered")
    parser.add_argument("--patch", type=int, default=16, help="occlusion window side in crop pixels")
    parser.add_argument("--stride", type=int, default=8, help="occlusion step in crop pixels")
    parser.add_argument("--fill", choices=FILLS, default="grey", help="occlusion fill, in pixel space")
    parser.add_argument("--border", choices=BORDERS, default="clip",
                        help="clip: the last window is clipped at the border (captum's rule); "
                        "shift: whole windows, the last one flush with the border")
    parser.add_argument("--mode", choices=MODES, default="exact",
                        help="exact, or coarse (coarse-to-fine: exact windows only where the map is high)")
    parser.add_argument("--batch-size", type=int, default=64, help="occluded crops per forward pass")
    parser.add_argument("--backend", choices=EXPLAIN_BACKENDS, default="auto")
    parser.add_argument("--no-detect", action="store_true", help="treat each image as one face crop")
    parser.add_argument("--detector", default="blazeface",
                        help="face detector for photos: blazeface (default), blazeface-fast or haar")
    parser.add_argument("--raw-probability", action="store_true",
                        help="also write the target's probability map with each pixel occluded")
    parser.add_argument("--out", type=Path, default=Path("explanations"),
                        help="output folder (default: ./%(default)s/)")
    parser.add_argument("--limit", type=int, help="at most this many images (per class with --summary)")
    parser.add_argument("--min-mesh-score", type=float, default=0.5,
                        help="--summary: skip crops where the face mesh's score is lower")
    parser.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    if (args.path is None) == (args.summary is None):
        raise ValueError("give either an IMAGE or DIR to explain, or --summary DIR (not both)")
    from maskdetect.explain.folder import (
        ExplainOptions,
        boxes_by,
        explain_folder,
        explain_image,
        summarise_regions,
    )
    from maskdetect.explain.runner import Explainer, ExplainSettings

    settings = ExplainSettings(
        method=args.method, target=args.target, patch=args.patch, stride=args.stride, fill=args.fill,
        border=args.border, batch_size=args.batch_size, backend=args.backend, mode=args.mode,
    )
    explainer = Explainer(args.checkpoint, settings, detector=boxes_by(args.detector))
    options = ExplainOptions(detect=not args.no_detect, raw_probability=args.raw_probability,
                             limit=args.limit, min_mesh_score=args.min_mesh_score)
    if args.summary is not None:
        summarise_regions(explainer, args.summary, args.out, options, echo=print)
    elif args.path.is_dir():
        explain_folder(explainer, args.path, args.out, options, echo=print,
                       on_skip=lambda problem: print(f"maskdetect: skipping {problem}", file=sys.stderr))
    else:
        explain_image(explainer, args.path, args.out, options, echo=print)
    return 0
