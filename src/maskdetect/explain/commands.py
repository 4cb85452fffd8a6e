"""`maskdetect explain IMAGE|DIR` and `maskdetect explain --summary DIR`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.explain.options import BORDERS, FILLS, METHODS, MODES
from maskdetect.fileio import unused_name
from maskdetect.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from maskdetect.explain.runner import Explainer, FaceExplanation

log = logging.getLogger(__name__)

COLOUR_LABELS = {
    "occlusion": "drop in P({target}) when occluded",
    "gradcam": "Grad-CAM for {target}",
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="heat maps of what the classifier looks at (occlusion, Grad-CAM); nose/mouth share",
        description="Explain the classifier on every face of a photo, on every image of a folder (with a "
        "contact sheet), or measure the heat on the nose and mouth over a labelled folder (--summary).",
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
    parser.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    parser.add_argument("--no-detect", action="store_true", help="treat each image as one face crop")
    parser.add_argument("--detector", default="blazeface",
                        help="face detector for photos: blazeface (default), blazeface-fast or haar")
    parser.add_argument("--raw-probability", action="store_true",
                        help="also write the target's probability map with each pixel occluded")
    parser.add_argument("--out", type=Path, default=Path("explanations"), help="output folder")
    parser.add_argument("--limit", type=int, help="at most this many images (per class with --summary)")
    parser.add_argument("--min-mesh-score", type=float, default=0.5,
                        help="--summary: skip crops where the face mesh's score is lower")
    parser.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    if (args.path is None) == (args.summary is None):
        raise ValueError("give either an IMAGE or DIR to explain, or --summary DIR (not both)")
    from maskdetect.explain.runner import Explainer, ExplainSettings

    settings = ExplainSettings(
        method=args.method, target=args.target, patch=args.patch, stride=args.stride, fill=args.fill,
        border=args.border, batch_size=args.batch_size, backend=args.backend, mode=args.mode,
    )
    explainer = Explainer(args.checkpoint, settings, detector=_boxes_by(args.detector))
    if args.summary is not None:
        return _run_summary(explainer, args)
    if not args.path.exists():
        raise FileNotFoundError(f"{args.path}: no such image or folder")
    if args.path.is_dir():
        return _run_folder(explainer, args)
    from maskdetect.images import open_image

    faces = explainer.explain_photo(open_image(args.path), detect=not args.no_detect)
    if not faces:
        print(f"{args.path}: no face found (use --no-detect to explain the whole image as one crop)")
    entries = _write_faces(faces, args.path.stem, args.out, args)
    atomic_json(args.out / "index.json", [{"image": str(args.path), **e} for e in entries])
    return 0


def _run_folder(explainer: Explainer, args: argparse.Namespace) -> int:
    from maskdetect.explain.overlay import Panel, save_contact_sheet
    from maskdetect.images import open_image

    images = sorted(p for p in args.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if args.limit is not None:
        images = images[: args.limit]
    if not images:
        raise FileNotFoundError(f"{args.path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    panels, index, used = [], [], set()
    for path in images:
        try:
            photo = open_image(path)
        except ValueError as err:  # a corrupt image is reported and skipped
            print(f"maskdetect: skipping {err}", file=sys.stderr)
            continue
        faces = explainer.explain_photo(photo, detect=not args.no_detect)
        if not faces:
            print(f"{path}: no face found (--no-detect explains whole images as crops)")
        rel = path.relative_to(args.path)
        # a.tif beside a.webp (or A.png beside a.png) would write the same maps: the later is numbered.
        stem = unused_name(str, rel.with_suffix("").as_posix().replace("/", "__"), used)
        entries = _write_faces(faces, stem, args.out, args)
        index.extend({"image": str(path), **e} for e in entries)
        for face in faces:
            caption = f"{rel.stem[:18]}\n{face.predicted} {face.probabilities[face.predicted]:.2f}"
            panels.append(Panel(face.crop, face.heatmap, caption, symmetric=face.method == "occlusion"))
    atomic_json(args.out / "index.json", index)
    if panels:
        sheet = args.out / "contact_sheet.png"
        save_contact_sheet(panels[:120], sheet)
        print(f"contact sheet of {min(len(panels), 120)} faces: {sheet}")
    return 0


def _write_faces(faces: list[FaceExplanation], stem: str, out: Path, args: argparse.Namespace) -> list[dict]:
    from maskdetect.explain.overlay import save_overlay
    from maskdetect.fileio import atomic_path

    entries = []
    for number, face in enumerate(faces):
        name = stem if face.box is None else f"{stem}_face{number}"
        name = f"{name}_{face.method}"
        npy, png = out / f"{name}.npy", out / f"{name}.png"
        with atomic_path(npy) as tmp, open(tmp, "wb") as handle:
            np.save(handle, face.heatmap.astype(np.float32))
        title = f"{face.predicted} {face.probabilities[face.predicted]:.2f} · explaining {face.target}"
        save_overlay(face.crop, face.heatmap, png, title=title, symmetric=face.method == "occlusion",
                     colour_label=COLOUR_LABELS[face.method].format(target=face.target))
        entry = {**face.summary(), "map": str(npy), "overlay": str(png)}
        if args.raw_probability and face.probability_map is not None:
            prob = out / f"{name}_probability.npy"
            with atomic_path(prob) as tmp, open(tmp, "wb") as handle:
                np.save(handle, face.probability_map.astype(np.float32))
            entry["probability_map"] = str(prob)
        entries.append(entry)
        box = "" if face.box is None else " box " + ",".join(f"{v:.0f}" for v in face.box)
        print(f"{name}:{box} {face.predicted} ({face.probabilities[face.predicted]:.2f}), "
              f"explaining {face.target} -> {png}")
    return entries


def _run_summary(explainer: Explainer, args: argparse.Namespace) -> int:
    from maskdetect.explain import summary
    from maskdetect.faces.landmarks import FaceMesh

    items = summary.labelled_images(args.summary)
    if not items:
        raise FileNotFoundError(f"{args.summary}: no images in class folders (covered, incorrect, uncovered)")
    from maskdetect.explain.overlay import Panel, save_contact_sheet

    mesh = FaceMesh()
    panels: list[Panel] = []

    def keep_panel(record, explanation, polygon) -> None:  # noqa: ANN001 - a callback
        if len(panels) < 48:
            caption = f"{record.label}\nheat on region {record.heat_share:.2f}"
            panels.append(Panel(explanation.crop, explanation.heatmap, caption,
                                symmetric=explanation.method == "occlusion", polygon=polygon))

    records, skipped = summary.measure_regions(
        explainer, items, mesh.landmarks, min_mesh_score=args.min_mesh_score, limit_per_class=args.limit,
        on_face=keep_panel,
    )
    if not records:
        raise ValueError(f"{args.summary}: no face could be measured ({len(skipped)} skipped)")
    table = summary.summarise(records)
    s = explainer.settings
    settings = {"checkpoint": explainer.source, "method": s.method, "target": s.target, "patch": s.patch,
                "stride": s.stride, "fill": s.fill, "mode": s.mode, "data": str(args.summary)}
    json_path, md_path = summary.write_report(args.out, table, records, skipped, settings)
    if panels:
        save_contact_sheet(panels, args.out / "regions.png")
    print(summary.markdown_table(table))
    print(f"{len(records)} faces measured, {len(skipped)} skipped; report: {md_path}, {json_path}")
    return 0


def _boxes_by(name: str):  # noqa: ANN202 - a BoxDetector
    """Face boxes from a detector of `maskdetect.faces.detector`, built on first use."""
    from maskdetect.faces.detector import DETECTORS

    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; allowed: {', '.join(DETECTORS)}")
    built: list = []

    def detect(image):  # noqa: ANN001, ANN202
        if not built:
            from maskdetect.faces.detector import create_detector

            built.append(create_detector(name))
        return [tuple(map(float, box)) for box in built[0].detect(image)[0]]

    return detect


def atomic_json(path: Path, data: object) -> None:
    from maskdetect.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
