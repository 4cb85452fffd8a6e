"""`maskdetect data manifest | verify | split | prepare`: sources to a verified, grouped split tree."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from maskdetect.data.dedup import DEFAULT_THRESHOLD
from maskdetect.data.manifest import ManifestRow, read_manifest, write_manifest
from maskdetect.data.sources import build_manifest
from maskdetect.data.split import assign_splits, count_table
from maskdetect.data.tree import DEFAULT_CROP_SIZE, LINK_MODES, write_split_tree
from maskdetect.data.verify import verify_rows, write_exclusions
from maskdetect.data.voc import DEFAULT_MIN_FACE
from maskdetect.faces.crop import CropPolicy
from maskdetect.images import DEFAULT_MAX_PIXELS

SHOWN_EXCLUSIONS = 30


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    manifest = subparsers.add_parser("manifest", help="scan source folders into one manifest CSV")
    _add_source_args(manifest)
    manifest.add_argument("-o", "--output", required=True, help="manifest CSV to write")
    manifest.set_defaults(func=run_manifest)

    verify = subparsers.add_parser("verify", help="decode every image; drop corrupt files and duplicates")
    verify.add_argument("manifest", help="manifest CSV from `data manifest`")
    verify.add_argument("-o", "--output", required=True, help="verified manifest CSV to write")
    _add_verify_args(verify)
    verify.set_defaults(func=run_verify)

    split = subparsers.add_parser("split", help="grouped stratified split, written as an ImageFolder tree")
    split.add_argument("manifest", help="verified manifest CSV from `data verify`")
    _add_split_args(split)
    split.set_defaults(func=run_split)

    prepare = subparsers.add_parser("prepare", help="manifest + verify + split in one go (files in --out)")
    _add_source_args(prepare)
    _add_verify_args(prepare, report_required=False)
    _add_split_args(prepare)
    prepare.set_defaults(func=run_prepare)


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sources (each may be given several times)")
    group.add_argument("--maskedface-net", action="append", default=[], metavar="DIR",
                       help="MaskedFace-Net folder holding CMFD/ and IMFD/")
    group.add_argument("--ffhq", action="append", default=[], metavar="DIR",
                       help="FFHQ folder holding images1024x1024/ or thumbnails128x128/")
    group.add_argument("--voc", action="append", default=[], metavar="DIR",
                       help="Pascal VOC set: annotations/ + images/ (or JPEGImages/)")
    group.add_argument("--folder", action="append", default=[], metavar="DIR",
                       help="folder of class-named subfolders (with_mask/, uncovered/ ...)")
    parser.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE,
                        help="skip VOC boxes whose shorter side is below this many pixels "
                        f"(default {DEFAULT_MIN_FACE})")


def _add_verify_args(parser: argparse.ArgumentParser, report_required: bool = True) -> None:
    parser.add_argument("--report", required=report_required, help="CSV of excluded files and why")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"exclude images with more pixels (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (default 2)")


def _add_split_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="root of the train/validation/holdout tree")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--holdout", type=float, default=0.2, help="share held out (default 0.2)")
    parser.add_argument("--validation", type=float, default=0.2, help="share of the rest (default 0.2)")
    parser.add_argument("--cap", type=int, help="at most this many images per class (e.g. 20000)")
    parser.add_argument("--balance", action="store_true", help="downsample every class to the smallest")
    parser.add_argument("--near-duplicate-threshold", type=int, default=DEFAULT_THRESHOLD,
                        help=f"dhash bits within which photos share a group (default {DEFAULT_THRESHOLD}; "
                        "-1: off)")
    parser.add_argument("--link", choices=LINK_MODES, default="hard",
                        help="whole-file faces: hard links (default; copies across file systems), sym, copy")
    parser.add_argument("--size", type=int, default=DEFAULT_CROP_SIZE,
                        help=f"side of the JPEG face crops in px (default {DEFAULT_CROP_SIZE})")
    parser.add_argument("--crop-scale", type=float, default=CropPolicy().scale,
                        help=f"crop side / face box side (default {CropPolicy().scale})")
    parser.add_argument("--overwrite", action="store_true", help="replace a different tree at --out")
    parser.add_argument("--keep-split", metavar="CSV",
                        help="an earlier tree's split_manifest.csv: its photos keep their split, new ones "
                        "fill the shares around them (add data without moving the holdout)")


def _check_output_parent(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder not found: {parent}")


def _manifest(args: argparse.Namespace) -> list[ManifestRow]:
    start = time.perf_counter()
    build = build_manifest(maskedface_net=args.maskedface_net, ffhq=args.ffhq, voc=args.voc,
                           folder=args.folder, min_face=args.min_face)
    print(f"manifest: {len(build.rows)} face images ({time.perf_counter() - start:.1f} s)")
    for report in build.voc_reports:
        print(f"  {report.summary()}")
        for line in report.degenerate + report.problems:
            print(f"    {line}")
        for name, count in sorted(report.unknown_labels.items()):
            print(f"    unknown label {name!r}: {count} boxes skipped")
    return build.rows


def _verify(rows: list[ManifestRow], args: argparse.Namespace) -> list[ManifestRow]:
    start = time.perf_counter()
    result = verify_rows(rows, max_pixels=args.max_pixels, workers=args.workers)
    print(f"verify: {len(result.rows)} kept, {len(result.excluded)} excluded "
          f"({time.perf_counter() - start:.1f} s)")
    # One line per file and reason (a photo with ten faces is one bad file, not ten).
    by_file = Counter((item.path, item.reason) for item in result.excluded)
    for (path, reason), faces in list(by_file.items())[:SHOWN_EXCLUSIONS]:
        print(f"  excluded {path}: {reason}{f' ({faces} faces)' if faces > 1 else ''}")
    if len(by_file) > SHOWN_EXCLUSIONS:
        print(f"  ... and {len(by_file) - SHOWN_EXCLUSIONS} more files (see the report)")
    if args.report:
        write_exclusions(result.excluded, args.report)
        print(f"  report: {args.report}")
    return result.rows


def _split(rows: list[ManifestRow], args: argparse.Namespace) -> None:
    start = time.perf_counter()
    threshold = None if args.near_duplicate_threshold < 0 else args.near_duplicate_threshold
    keep = read_manifest(args.keep_split) if args.keep_split else []
    if args.keep_split and not any(r.split for r in keep):
        raise ValueError(f"{args.keep_split}: no split in it; give the split_manifest.csv of a prepared tree")
    split_rows = assign_splits(rows, holdout=args.holdout, validation=args.validation, seed=args.seed,
                               cap=args.cap, balance=args.balance, near_duplicate_threshold=threshold,
                               keep=keep)
    result = write_split_tree(split_rows, args.out, link=args.link, size=args.size,
                              policy=CropPolicy(scale=args.crop_scale), overwrite=args.overwrite,
                              workers=getattr(args, "workers", 2))
    merged = len({r.group for r in split_rows}) - len({r.split_group for r in split_rows})
    print(f"split: {len(split_rows)} images; near-duplicate photos merged {merged} groups into others")
    print(count_table(split_rows))
    print(f"tree {result.root}: {result.written} written, {result.unchanged} unchanged, "
          f"{result.failed} photos failed ({time.perf_counter() - start:.1f} s)")


def run_manifest(args: argparse.Namespace) -> int:
    _check_output_parent(args.output)
    write_manifest(_manifest(args), args.output)
    print(f"  written: {args.output}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    _check_output_parent(args.output)
    rows = _verify(read_manifest(args.manifest), args)
    write_manifest(rows, args.output)
    print(f"  written: {args.output}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    _split(read_manifest(args.manifest), args)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = _manifest(args)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(rows, out / "manifest.csv")
    args.report = args.report or str(out / "excluded.csv")
    rows = _verify(rows, args)
    write_manifest(rows, out / "verified.csv")
    _split(rows, args)
    return 0
