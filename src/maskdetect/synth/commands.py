"""`maskdetect synth SOURCE OUT`: draw masks on bare faces, in MaskedFace-Net's layout."""

from __future__ import annotations

import argparse
import json

from maskdetect.synth.masks import KINDS
from maskdetect.synth.placement import EXTRA_PLACEMENTS, PLACEMENTS
from maskdetect.synth.runner import SynthOptions, synthesize


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="draw masks (worn right and in three wrong ways) on uncovered faces",
        description=(
            "Draw masks on the uncovered faces of a Pascal VOC photo set, or on a folder of face images, "
            "and write them as MaskedFace-Net does: OUT/CMFD/<thousands>/<id>_Mask.jpg (covered) and "
            "OUT/IMFD/<thousands>/<id>_Mask_{Mouth_Chin,Nose_Mouth,Chin,Neck}.jpg (incorrect), framed as "
            "aligned head shots, plus synth_manifest.csv, synth_summary.json and contact_sheet.png."
        ),
    )
    parser.add_argument("source", help="a Pascal VOC folder (annotations/ + images/) or a folder of faces")
    parser.add_argument("out", help="output folder")
    parser.add_argument(
        "--placements", type=_csv_list, default=PLACEMENTS,
        help=f"comma-separated MaskedFace-Net suffixes to draw (default MaskedFace-Net's four: "
        f"{','.join(PLACEMENTS)}; also {','.join(EXTRA_PLACEMENTS)}: a mask pulled down onto the neck)",
    )
    parser.add_argument(
        "--kinds", type=_csv_list, default=KINDS, help=f"mask kinds to pick from (default {','.join(KINDS)})"
    )
    parser.add_argument(
        "--min-face", type=int, default=40, help="skip faces smaller than this, px (default 40)"
    )
    parser.add_argument("--min-score", type=float, default=0.75, help="skip faces whose mesh score is lower")
    parser.add_argument(
        "--max-yaw", type=float, default=35.0, help="skip faces turned further, degrees (default 35)"
    )
    parser.add_argument("--limit", type=int, default=None, help="stop after this many faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="write into a folder holding an earlier run")
    parser.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    options = SynthOptions(
        placements=args.placements, kinds=args.kinds, min_face=args.min_face, min_score=args.min_score,
        max_yaw=args.max_yaw, seed=args.seed, limit=args.limit,
    )
    summary = synthesize(args.source, args.out, options, overwrite=args.overwrite)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0 if summary.faces_drawn else 1
