"""Sources to a verified, grouped split tree: the steps of `maskdetect data manifest|verify|split|prepare`.

Each step takes typed options and reports what it did as text lines through `echo` (the log by
default; the command passes `print`), so the command line, the demo and scripts run the same code.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from maskdetect.data.dedup import DEFAULT_THRESHOLD
from maskdetect.data.manifest import ManifestRow, read_manifest, write_manifest
from maskdetect.data.sources import build_manifest
from maskdetect.data.split import assign_splits, count_table
from maskdetect.data.tree import DEFAULT_CROP_SIZE, TreeResult, write_split_tree
from maskdetect.data.verify import verify_rows, write_exclusions
from maskdetect.data.voc import DEFAULT_MIN_FACE
from maskdetect.faces.crop import CropPolicy
from maskdetect.images import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
SHOWN_EXCLUSIONS = 30  # more excluded files than this are left to the report


@dataclass(frozen=True)
class SourceOptions:
    """Which source folders to scan (each kind may be given several times)."""

    maskedface_net: tuple[str, ...] = ()
    ffhq: tuple[str, ...] = ()
    voc: tuple[str, ...] = ()
    folder: tuple[str, ...] = ()
    min_face: int = DEFAULT_MIN_FACE


@dataclass(frozen=True)
class VerifyOptions:
    """How to decode every image; `report` is the CSV of excluded files (None: not written)."""

    report: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 2


@dataclass(frozen=True)
class SplitOptions:
    """The grouped split and the tree it is written as (see `assign_splits`, `write_split_tree`)."""

    out: str
    seed: int = 0
    holdout: float = 0.2
    validation: float = 0.2
    cap: int | None = None
    balance: bool = False
    near_duplicate_threshold: int | None = DEFAULT_THRESHOLD
    link: str = "hard"
    size: int = DEFAULT_CROP_SIZE
    crop_scale: float = CropPolicy().scale
    overwrite: bool = False
    keep_split: str | None = None
    workers: int = 2


@dataclass(frozen=True)
class PrepareOptions:
    """All three steps at once; the manifests and the exclusion report go into `split.out`."""

    sources: SourceOptions
    split: SplitOptions
    verify: VerifyOptions = field(default_factory=VerifyOptions)


@dataclass
class PrepareResult:
    """What `prepare_data` wrote: the manifests, the exclusion report and the tree."""

    manifest: Path
    verified: Path
    report: Path
    tree: TreeResult
    rows: list[ManifestRow]


def check_output_parent(path: str | os.PathLike) -> None:
    """Fail before any work when the folder a file would be written into does not exist.

    >>> check_output_parent("/no/such/folder/manifest.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: output folder not found: /no/such/folder
    """
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder not found: {parent}")


def scan_sources(sources: SourceOptions, *, echo: Echo = log.info) -> list[ManifestRow]:
    """Scan every source folder into manifest rows; echo the count and what each VOC set skipped.

    Raises:
        ValueError: no source given. FileNotFoundError: a source folder is missing.

    >>> scan_sources(SourceOptions())
    Traceback (most recent call last):
    ...
    ValueError: no source given: pass at least one of --maskedface-net, --ffhq, --voc, --folder
    """
    start = time.perf_counter()
    build = build_manifest(maskedface_net=sources.maskedface_net, ffhq=sources.ffhq, voc=sources.voc,
                           folder=sources.folder, min_face=sources.min_face)
    echo(f"manifest: {len(build.rows)} face images ({time.perf_counter() - start:.1f} s)")
    for report in build.voc_reports:
        echo(f"  {report.summary()}")
        for line in report.degenerate + report.problems:
            echo(f"    {line}")
        for name, count in sorted(report.unknown_labels.items()):
            echo(f"    unknown label {name!r}: {count} boxes skipped")
    return build.rows


def write_source_manifest(
    sources: SourceOptions, output: str | os.PathLike, *, echo: Echo = log.info
) -> Path:
    """`scan_sources`, then the rows written as the manifest CSV `output`; returns its path.

    >>> write_source_manifest(SourceOptions(voc=("/no/such",)), "/no/such/dir/m.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: output folder not found: /no/such/dir
    """
    check_output_parent(output)
    path = write_manifest(scan_sources(sources, echo=echo), output)
    echo(f"  written: {output}")
    return path


def verify_manifest(
    rows: Sequence[ManifestRow], options: VerifyOptions = VerifyOptions(), *, echo: Echo = log.info
) -> list[ManifestRow]:
    """Decode every image once; the rows kept (corrupt files and duplicates echoed and reported).

    >>> verify_manifest([ManifestRow("/no/such.jpg", None, "covered")], VerifyOptions(workers=1),
    ...                 echo=lambda line: None)
    []
    """
    start = time.perf_counter()
    result = verify_rows(rows, max_pixels=options.max_pixels, workers=options.workers)
    echo(f"verify: {len(result.rows)} kept, {len(result.excluded)} excluded "
         f"({time.perf_counter() - start:.1f} s)")
    # One line per file and reason (a photo with ten faces is one bad file, not ten).
    by_file = Counter((item.path, item.reason) for item in result.excluded)
    for (path, reason), faces in list(by_file.items())[:SHOWN_EXCLUSIONS]:
        echo(f"  excluded {path}: {reason}{f' ({faces} faces)' if faces > 1 else ''}")
    if len(by_file) > SHOWN_EXCLUSIONS:
        echo(f"  ... and {len(by_file) - SHOWN_EXCLUSIONS} more files (see the report)")
    if options.report:
        write_exclusions(result.excluded, options.report)
        echo(f"  report: {options.report}")
    return result.rows


def verify_manifest_file(
    manifest: str | os.PathLike, output: str | os.PathLike, options: VerifyOptions = VerifyOptions(),
    *, echo: Echo = log.info,
) -> Path:
    """`verify_manifest` from one manifest CSV to another; returns the verified manifest's path.

    >>> verify_manifest_file("m.csv", "/no/such/dir/verified.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: output folder not found: /no/such/dir
    """
    check_output_parent(output)
    path = write_manifest(verify_manifest(read_manifest(manifest), options, echo=echo), output)
    echo(f"  written: {output}")
    return path


def split_to_tree(
    rows: Sequence[ManifestRow] | str | os.PathLike, options: SplitOptions, *, echo: Echo = log.info
) -> TreeResult:
    """Assign grouped, stratified splits to verified rows (or a manifest CSV) and write the tree.

    Raises:
        ValueError: `keep_split` names a manifest without splits, or a bad share, link mode or size.

    >>> split_to_tree([], SplitOptions(out="/tmp/tree", link="soft"))
    Traceback (most recent call last):
    ...
    ValueError: link mode must be one of hard, sym, copy, got 'soft'
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = read_manifest(rows)
    start = time.perf_counter()
    keep = read_manifest(options.keep_split) if options.keep_split else []
    if options.keep_split and not any(r.split for r in keep):
        raise ValueError(f"{options.keep_split}: no split in it; "
                         "give the split_manifest.csv of a prepared tree")
    split_rows = assign_splits(rows, holdout=options.holdout, validation=options.validation,
                               seed=options.seed, cap=options.cap, balance=options.balance,
                               near_duplicate_threshold=options.near_duplicate_threshold, keep=keep)
    result = write_split_tree(split_rows, options.out, link=options.link, size=options.size,
                              policy=CropPolicy(scale=options.crop_scale), overwrite=options.overwrite,
                              workers=options.workers)
    merged = len({r.group for r in split_rows}) - len({r.split_group for r in split_rows})
    echo(f"split: {len(split_rows)} images; near-duplicate photos merged {merged} groups into others")
    echo(count_table(split_rows))
    echo(f"tree {result.root}: {result.written} written, {result.unchanged} unchanged, "
         f"{result.failed} photos failed ({time.perf_counter() - start:.1f} s)")
    return result


def prepare_data(options: PrepareOptions, *, echo: Echo = log.info) -> PrepareResult:
    """Manifest, verify and split in one go: `manifest.csv`, `verified.csv`, the report and the tree in `out`.

    Args:
        options: the sources, how to verify (the report defaults to `out/excluded.csv`) and split.
        echo: where the steps' text lines go.

    Returns:
        A `PrepareResult` naming the files written, the tree and the rows it holds.

    >>> prepare_data(PrepareOptions(SourceOptions(), SplitOptions(out="/tmp/tree")))
    Traceback (most recent call last):
    ...
    ValueError: no source given: pass at least one of --maskedface-net, --ffhq, --voc, --folder
    """
    out = Path(options.split.out)
    rows = scan_sources(options.sources, echo=echo)
    out.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(rows, out / "manifest.csv")
    verify = replace(options.verify, report=options.verify.report or str(out / "excluded.csv"))
    rows = verify_manifest(rows, verify, echo=echo)
    verified = write_manifest(rows, out / "verified.csv")
    tree = split_to_tree(rows, options.split, echo=echo)
    return PrepareResult(manifest=manifest, verified=verified, report=Path(verify.report), tree=tree,
                         rows=rows)
