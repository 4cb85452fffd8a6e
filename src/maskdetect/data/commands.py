"""`maskdetect data ...`: thin adapters over `maskdetect.data` (prepare, download, cache).

Each `run_*` turns its arguments into the library's options and makes one call; the logic lives in
`maskdetect.data.prepare`, `maskdetect.data.download` and `maskdetect.data.cache`.
"""

from __future__ import annotations

import argparse
import sys

from maskdetect.data.dedup import DEFAULT_THRESHOLD
from maskdetect.data.download import (
    CATALOG,
    DatasetInfo,
    DownloadReport,
    dataset_info,
    download_ffhq,
    download_maskedface_net,
    format_catalog,
    parse_url_args,
)
from maskdetect.data.download.datasets import verify_archives
from maskdetect.data.prepare import (
    PrepareOptions,
    SourceOptions,
    SplitOptions,
    VerifyOptions,
    prepare_data,
    split_to_tree,
    verify_manifest_file,
    write_source_manifest,
)
from maskdetect.data.tree import DEFAULT_CROP_SIZE, LINK_MODES
from maskdetect.data.voc import DEFAULT_MIN_FACE
from maskdetect.faces.crop import CropPolicy
from maskdetect.images import DEFAULT_MAX_PIXELS


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build manifests, split trees, caches; download data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    _add_download(data_sub)
    _add_cache(data_sub)
    _add_prepare_steps(data_sub)


def _add_prepare_steps(subparsers: argparse._SubParsersAction) -> None:
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


def _sources(args: argparse.Namespace) -> SourceOptions:
    return SourceOptions(maskedface_net=tuple(args.maskedface_net), ffhq=tuple(args.ffhq),
                         voc=tuple(args.voc), folder=tuple(args.folder), min_face=args.min_face)


def _verify_options(args: argparse.Namespace) -> VerifyOptions:
    return VerifyOptions(report=args.report, max_pixels=args.max_pixels, workers=args.workers)


def _split_options(args: argparse.Namespace) -> SplitOptions:
    threshold = None if args.near_duplicate_threshold < 0 else args.near_duplicate_threshold
    return SplitOptions(out=args.out, seed=args.seed, holdout=args.holdout, validation=args.validation,
                        cap=args.cap, balance=args.balance, near_duplicate_threshold=threshold,
                        link=args.link, size=args.size, crop_scale=args.crop_scale, overwrite=args.overwrite,
                        keep_split=args.keep_split, workers=getattr(args, "workers", 2))


def run_manifest(args: argparse.Namespace) -> int:
    write_source_manifest(_sources(args), args.output, echo=print)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    verify_manifest_file(args.manifest, args.output, _verify_options(args), echo=print)
    return 0


def run_split(args: argparse.Namespace) -> int:
    split_to_tree(args.manifest, _split_options(args), echo=print)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    options = PrepareOptions(_sources(args), _split_options(args), _verify_options(args))
    prepare_data(options, echo=print)
    return 0


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download MaskedFace-Net or FFHQ (resumable, checked, safely extracted)",
        description="Download a data set into DEST: resumable transfers, retries, checksums, a free-disk "
        "check, safe zip extraction. Run with --list to see where each data set lives and which links "
        "you must paste by hand.",
    )
    parser.add_argument("dataset", nargs="?", choices=sorted(CATALOG), metavar="DATASET",
                        help=f"which data set: {', '.join(sorted(CATALOG))}")
    parser.add_argument("dest", nargs="?", metavar="DEST", help="destination folder")
    parser.add_argument("--list", action="store_true", help="print the catalogue of data sets and exit")
    parser.add_argument("--url", action="append", default=[], metavar="[NAME=]URL",
                        help="maskedface-net: a direct download link of one archive (repeatable)")
    parser.add_argument("--urls-file", help="maskedface-net: a file of 'URL [NAME]' lines")
    parser.add_argument("--no-extract", action="store_true", help="maskedface-net: keep the zips unextracted")
    parser.add_argument("--delete-archives", action="store_true",
                        help="maskedface-net: delete each zip once it is extracted and its sha256 recorded "
                        "(by default the zips, about 39 GB, are kept beside the extracted images)")
    parser.add_argument("--verify", action="store_true",
                        help="maskedface-net: re-hash the zips on disk against DEST/SHA256SUMS (no links "
                        "needed; with --url, also those already extracted)")
    parser.add_argument("--json", help="ffhq: ffhq-dataset-v2.json, a local path or an http(s) URL")
    parser.add_argument("--kind", choices=("thumbnails", "images"), default="thumbnails",
                        help="ffhq: 128 px thumbnails (1.95 GB) or 1024 px images (89 GB)")
    parser.add_argument("--limit", type=int, help="ffhq: only the first N faces")
    parser.add_argument("--base-url", help="ffhq: fetch BASE_URL/file_path, not each file_url (a mirror)")
    parser.add_argument("--jobs", type=int, default=4, help="files downloaded at once (default 4)")
    parser.add_argument("--retries", type=int, default=5, help="retries per file, exponential back-off")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_download)


def run_download(args: argparse.Namespace) -> int:
    if args.list:
        print(format_catalog())
        return 0
    if not args.dataset or not args.dest:
        raise ValueError("give a data set and a destination folder (or --list); "
                         f"data sets: {', '.join(sorted(CATALOG))}")
    info = dataset_info(args.dataset)
    options = {"jobs": args.jobs, "progress": not args.no_progress, "retries": args.retries,
               "timeout": args.timeout}
    if args.dataset == "maskedface-net":
        pairs = parse_url_args(args.url, args.urls_file)
        if not pairs and args.verify:
            return _print_verified(verify_archives(args.dest), args.dest)
        if not pairs:
            return _explain_missing_links("MaskedFace-Net needs its download links pasted by hand.", info)
        report = download_maskedface_net(args.dest, pairs, extract=not args.no_extract,
                                         verify=args.verify, delete_archives=args.delete_archives, **options)
    else:
        if not args.json:
            return _explain_missing_links("FFHQ needs its index file, ffhq-dataset-v2.json.", info)
        report = download_ffhq(args.dest, args.json, kind=args.kind, limit=args.limit,
                               base_url=args.base_url, **options)
    skipped = f", {len(report.skipped)} archives already extracted" if report.skipped else ""
    deleted = f", {len(report.deleted)} zips deleted after extraction" if report.deleted else ""
    print(f"{len(report.downloaded)} files downloaded and checked, "
          f"{len(report.extracted)} archives extracted{skipped}{deleted}, {len(report.failed)} failed "
          f"(into {args.dest}; licence: {info.licence})")
    for name, reason in sorted(report.failed.items()):
        print(f"  FAILED {name}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _print_verified(report: DownloadReport, dest: str) -> int:
    print(f"{len(report.verified)} zips match {dest}/SHA256SUMS, {len(report.failed)} do not")
    for name, reason in sorted(report.failed.items()):
        print(f"  FAILED {name}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _explain_missing_links(problem: str, info: DatasetInfo) -> int:
    """Say what is missing and where the data set's links are found; the exit status of a usage error."""
    print(f"{problem}\n  home:    {info.home}\n  licence: {info.licence}\n  {info.how_to_get_links}",
          file=sys.stderr)
    return 2


def _add_cache(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="resize a split tree once to the training size, so epochs decode small files",
        description="Resize every image of SRC_TREE into the same layout under DEST_TREE (JPEG draft "
        "decoding, every core). Re-runs redo only new or changed files. Corrupt images are reported "
        "and skipped.",
    )
    parser.add_argument("src", metavar="SRC_TREE", help="ImageFolder tree: root/{train,...}/CLASS")
    parser.add_argument("dest", metavar="DEST_TREE", help="where the resized tree goes")
    parser.add_argument("--size", type=int, default=160, help="target size in pixels (default 160)")
    parser.add_argument("--mode", choices=("shorter", "square"), default="shorter",
                        help="shorter: shorter side to SIZE, aspect kept (default); square: SIZE x SIZE")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of cached files (default 90)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: every core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from maskdetect.data.cache import build_cache

    report = build_cache(args.src, args.dest, size=args.size, mode=args.mode, quality=args.quality,
                         jobs=args.jobs, progress=not args.no_progress)
    removed = f", {report.removed} removed (source gone)" if report.removed else ""
    print(f"{report.written} images written, {report.up_to_date} already up to date{removed}, "
          f"{len(report.failed)} skipped as unreadable (cache: {args.dest})")
    for name, reason in sorted(report.failed.items()):
        print(f"  SKIPPED {name}: {reason}", file=sys.stderr)
    return 0
