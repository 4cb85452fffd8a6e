"""`maskdetect data download ...` and `maskdetect data cache ...`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import sys

from maskdetect.data.datasets_catalog import CATALOG, DatasetInfo, dataset_info, format_catalog


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    _add_download(subparsers)
    _add_cache(subparsers)


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
    parser.add_argument("--verify", action="store_true",
                        help="maskedface-net: re-hash archives already extracted against SHA256SUMS")
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
    from maskdetect.data.dataset_download import download_ffhq, download_maskedface_net, parse_url_args

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
        if not pairs:
            return _explain_missing_links("MaskedFace-Net needs its download links pasted by hand.", info)
        report = download_maskedface_net(args.dest, pairs, extract=not args.no_extract,
                                         verify=args.verify, **options)
    else:
        if not args.json:
            return _explain_missing_links("FFHQ needs its index file, ffhq-dataset-v2.json.", info)
        report = download_ffhq(args.dest, args.json, kind=args.kind, limit=args.limit,
                               base_url=args.base_url, **options)
    skipped = f", {len(report.skipped)} archives already extracted" if report.skipped else ""
    print(f"{len(report.downloaded)} files downloaded and checked, "
          f"{len(report.extracted)} archives extracted{skipped}, {len(report.failed)} failed "
          f"(into {args.dest}; licence: {info.licence})")
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
