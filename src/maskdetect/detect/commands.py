"""`maskdetect detect`, `maskdetect export` and `maskdetect evaluate-detect`: argv in, one library
call (`detect_files`, `export_onnx`, `evaluate_detection` / `annotator_agreement`), its result printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from maskdetect.faces.detector import DETECTORS
from maskdetect.fileio import atomic_write_text
from maskdetect.runtime import BACKENDS, PRECISIONS

log = logging.getLogger(__name__)

DETECT_EXIT_CODES = """exit status:
  0    every input was read and detected
  1    some inputs failed or were skipped (each named on stderr and in the JSON Lines); the others are done
  2    usage error: bad arguments, no inputs, an unusable checkpoint
  130  interrupted (Ctrl-C); --resume continues the run"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser(
        "detect", help="find faces in images, folders, videos or a camera and label their masks",
        description="Annotated images/videos go to --out (default ./detections/); one JSON line per image "
        "or frame to OUT/detections.jsonl. Each video's faces are tracked into people: CLIP.tracks.jsonl, "
        "CLIP.summary.json (people by verdict), CLIP.timeline.csv/.png go beside CLIP.annotated.mp4 (H.264).",
        epilog=DETECT_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders (recursive), videos, stream URLs (http://, rtsp://)")
    detect.add_argument("--camera", type=int, metavar="INDEX", help="read a camera (e.g. 0) instead")
    detect.add_argument("--frames", type=int, default=0, metavar="N",
                        help="stop a camera after N frames (0: until q/Ctrl-C)")
    detect.add_argument("--out", "-o", type=Path, default=Path("detections"),
                        help="output folder (default: ./%(default)s/)")
    detect.add_argument("--jsonl", type=Path, help="JSON Lines file (default OUT/detections.jsonl)")
    detect.add_argument("--no-images", action="store_true", help="write JSON Lines only, no annotated images")
    detect.add_argument("--resume", action="store_true",
                        help="skip the inputs an interrupted run (same --out/--jsonl) had finished")
    detect.add_argument("--workers", type=int, default=2, help="images processed in parallel (threads)")
    _model_options(detect)
    detect.add_argument("--video-detector", choices=DETECTORS, default="blazeface-fast",
                        help="face detector for video and camera frames (default: %(default)s)")
    detect.add_argument("--no-tracking", dest="tracking", action="store_false",
                        help="videos, streams, camera: label each frame on its own (no tracks, no people)")
    detect.set_defaults(func=run_detect)

    batch = subparsers.add_parser(
        "batch", help="detect over millions of photos on a Ray cluster; Parquet out, resumable",
        description="Needs the ray extra (pip install 'maskdetect[ray]'). Writes OUT/faces/part-*.parquet, "
        "one row per face (and one per image without a face or that failed); run it again to resume.",
        epilog=DETECT_EXIT_CODES.replace("JSON Lines", "Parquet rows"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("inputs", nargs="*", metavar="INPUT",
                       help="images, folders, glob patterns, a .txt list or a .csv/.parquet table of paths")
    batch.add_argument("--out", "-o", type=Path, required=True, help="output folder (also the resume state)")
    batch.add_argument("--address", help="a running Ray cluster (HOST:6379); default: start one here")
    batch.add_argument("--actors", type=int, default=2, help="actors, one model each (default %(default)s)")
    batch.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves")
    batch.add_argument("--gpus-per-actor", type=float, default=0.0,
                       help="GPUs each actor reserves (above 0: torch classifier on CUDA)")
    batch.add_argument("--shard-size", type=int, default=500,
                       help="inputs per output file (default %(default)s)")
    batch.add_argument("--path-column", default="path", help="the paths' column in a CSV/Parquet table")
    batch.add_argument("--summary-by", action="append", metavar="KEY",
                       help="then write OUT/summary.csv and .png by this key (see `summarize --by`)")
    _model_options(batch)
    batch.set_defaults(func=run_batch)

    summarize = subparsers.add_parser(
        "summarize", help="faces by class per folder, path component or day: CSV and a PNG chart",
        description="Reads a `batch` output folder or `detect`'s JSON Lines.")
    summarize.add_argument("results", type=Path, metavar="RESULTS",
                           help="a batch --out folder, or detections.jsonl (or its folder)")
    summarize.add_argument("--by", action="append", required=True, metavar="KEY",
                           help="folder, part:N (Nth path component, -2: the folder's name), a column of "
                           "the input table, or COLUMN:day|week|month|year|hour; repeat to nest")
    summarize.add_argument("--out", "-o", type=Path, help="file prefix (default RESULTS/summary)")
    summarize.set_defaults(func=run_summarize)

    export = subparsers.add_parser("export", help="export a checkpoint's classifier (ONNX)")
    export.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file (.pt)")
    export.add_argument("--format", choices=("onnx",), default="onnx")
    export.add_argument("--output", "-o", type=Path, required=True, help="file to write, e.g. model.onnx")
    export.set_defaults(func=run_export)

    evaluate = subparsers.add_parser(
        "evaluate-detect", help="end-to-end evaluation on a Pascal VOC photo set (recall, precision, F1)",
        description="Prints the full report as JSON on stdout (and to --output), then a few lines of "
        "summary on stderr: recall, precision, and accuracy and macro-F1 of the faces found.",
    )
    evaluate.add_argument("voc_dir", type=Path, metavar="VOC_DIR", help="folder with annotations/ and images")
    _model_options(evaluate)
    evaluate.add_argument("--detection-only", action="store_true", help="no classifier: face recall only")
    evaluate.add_argument("--raw-boxes", action="store_true",
                          help="(blazeface) score the detector's boxes before their VOC framing "
                          "(accurate config: the mesh-averaged boxes)")
    evaluate.add_argument("--match-iou", type=float, default=0.5, help="IoU for a match (default 0.5)")
    evaluate.add_argument("--exclude", type=Path, help="file listing image names to leave out (first column)")
    evaluate.add_argument("--only", type=Path, help="file listing the only image names to use (first column)")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N annotations")
    evaluate.add_argument("--against", type=Path, metavar="OTHER_VOC",
                          help="no detector: score this second annotation of the same photos (with --pairs); "
                          "how well two annotators agree")
    evaluate.add_argument("--pairs", type=Path,
                          help="with --against: lines 'photo in VOC_DIR<TAB or comma>its copy in OTHER_VOC' "
                          "(a first line of column names is skipped)")
    evaluate.add_argument("--unmatched-sheet", type=Path, metavar="IMAGE",
                          help="write a contact sheet of boxes that match no labelled face (PNG or JPEG; "
                          "a CSV naming each tile goes beside it), to see what the false alarms are")
    evaluate.add_argument("--missed-sheet", type=Path, metavar="IMAGE",
                          help="write a contact sheet of the labelled faces of 32 px and more that no box "
                          "matched (PNG or JPEG, a CSV beside it), to see what recall misses")
    evaluate.add_argument("--sheet-count", type=int, default=100, metavar="N",
                          help="boxes or faces on each sheet, chosen at random (default %(default)s)")
    evaluate.add_argument("--sweep", type=_thresholds, metavar="T1,T2,...",
                          help="also report recall and precision at each of these detection thresholds: "
                          "the detector runs once at the lowest, its faces are then kept by score (a "
                          "detector that merges only boxes above its threshold, as blazeface-fast does, "
                          "can differ a little from a run at each one)")
    evaluate.add_argument("--workers", type=int, default=2, help="photos processed in parallel (threads)")
    evaluate.add_argument("--output", "-o", type=Path, help="write the JSON report here too")
    evaluate.set_defaults(func=run_evaluate)


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must lie between 0 and 1, got {text!r}")
    return values


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="checkpoint (.pt); default: the bundled model")
    parser.add_argument("--detector", choices=DETECTORS, default="blazeface", help="face detector")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx", help="classifier runtime")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="the classifier's arithmetic: int8 (the default on onnx: about 2.3x faster, "
                        "made once per checkpoint and cached) or fp32 (the default on torch)")
    parser.add_argument("--threshold", type=float,
                        help="face score threshold (0-1): the face verifier's when one sits beside the "
                        "checkpoint (the bundled model has one), else the detector's")
    parser.add_argument("--no-verifier", dest="verify", action="store_false",
                        help="let the detector's scores alone decide what is a face (no face verifier)")


def run_export(args: argparse.Namespace) -> int:
    from maskdetect.checkpoint import load_checkpoint
    from maskdetect.export import export_onnx

    start = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint)
    # One step of 8-16 s with nothing to count: say it started, then what it wrote.
    print(f"exporting {args.checkpoint} to ONNX (about 10 s)...", file=sys.stderr, flush=True)
    path = export_onnx(checkpoint, args.output, source=str(args.checkpoint))
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s; run it with "
          f"`maskdetect detect PHOTO --checkpoint {path}` or `Predictor({str(path)!r})`")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    if not args.inputs and args.camera is None:
        raise ValueError("give INPUT files/folders/videos or --camera INDEX")
    predictor = Predictor(args.checkpoint, detector=args.detector, backend=args.backend,
                          detection_threshold=args.threshold, verify=args.verify, precision=args.precision)
    summary = detect_files(
        predictor, args.inputs, args.out, workers=args.workers, resume=args.resume,
        images=not args.no_images, jsonl=args.jsonl, camera=args.camera, frames=args.frames,
        video_predictor=predictor.with_detector(args.video_detector, args.threshold), tracking=args.tracking,
    )
    print("faces by class: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items()))
    if sum(summary.people.values()):
        print("people in videos by verdict (one per face track): "
              + ", ".join(f"{k} {v}" for k, v in summary.people.items()))
    for failure in summary.failures:
        print(f"skipped: {failure}", file=sys.stderr)
    print(_written(summary.annotated, summary.jsonl, args.out))
    return 1 if summary.failures else 0  # DETECT_EXIT_CODES


def run_batch(args: argparse.Namespace) -> int:
    from maskdetect.detect.ray_batch import BatchOptions, run_batch

    options = BatchOptions(
        args.out, checkpoint=args.checkpoint, detector=args.detector, backend=args.backend,
        threshold=args.threshold, verify=args.verify, precision=args.precision,
        actors=args.actors, cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor, shard_size=args.shard_size, address=args.address,
        path_column=args.path_column,
    )
    summary = run_batch(args.inputs, options)
    for line in summary.left_out:
        print(f"left out: {line}", file=sys.stderr)
    print(f"{summary.inputs} inputs in {summary.shards} shards; this run detected {summary.images_run} "
          f"images ({summary.shards_run} shards) in {summary.seconds:.0f} s, "
          f"{summary.images_per_second:.2f} images/s")
    print("faces by class: " + ", ".join(f"{k} {v}" for k, v in summary.faces.items())
          + f"; {summary.failed} inputs failed (their error is in the rows)")
    if args.summary_by:
        args.results, args.by, args.out = args.out, args.summary_by, None
        run_summarize(args)
    else:
        print(f"wrote {args.out / 'faces'}")
    return 1 if summary.failed or summary.left_out else 0  # DETECT_EXIT_CODES


def run_summarize(args: argparse.Namespace) -> int:
    from maskdetect.detect.summary import load_detections, summarize, write_summary

    table = summarize(load_detections(args.results), args.by)
    prefix = args.out or (args.results if args.results.is_dir() else args.results.parent) / "summary"
    csv, png = write_summary(table, args.by, prefix)
    print(table.to_string(index=False, max_rows=40))
    print(f"wrote {csv} and {png}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from maskdetect.detect.evaluate import EvaluateDetectOptions, annotator_agreement, evaluate_detection
    from maskdetect.detect.voc_set import read_names

    if (args.against is None) != (args.pairs is None):
        raise ValueError("--against and --pairs go together")
    exclude = read_names(args.exclude) if args.exclude else []
    only = read_names(args.only) if args.only else None
    if args.against is not None:
        report = annotator_agreement(args.voc_dir, args.against, _read_pairs(args.pairs), exclude=exclude,
                                     only=only, limit=args.limit, match_iou=args.match_iou)
    else:
        options = EvaluateDetectOptions(
            checkpoint=args.checkpoint, detector=args.detector, backend=args.backend,
            threshold=args.threshold, detection_only=args.detection_only, raw_boxes=args.raw_boxes,
            match_iou=args.match_iou, exclude=exclude, only=only, limit=args.limit,
            sweep=args.sweep or (), workers=args.workers, unmatched_sheet=args.unmatched_sheet,
            missed_sheet=args.missed_sheet, verify=args.verify, precision=args.precision,
            sheet_count=args.sheet_count,
        )
        report = evaluate_detection(args.voc_dir, options)
    _emit(report, args.output)
    return 0


def _written(annotated: int, jsonl: Path, out: Path) -> str:
    """The last line of `detect`: what it wrote, and where.

    >>> _written(3, Path("out/detections.jsonl"), Path("out"))
    'wrote 3 annotated files and detections.jsonl to out'
    >>> _written(0, Path("log.jsonl"), Path("out"))
    'wrote log.jsonl'
    """
    if jsonl.parent == out:
        return f"wrote {annotated} annotated files and {jsonl.name} to {out}"
    return f"wrote {annotated} annotated files to {out} and {jsonl}" if annotated else f"wrote {jsonl}"


def _emit(report: dict, output: Path | None) -> None:
    text = json.dumps(report, indent=2)
    if output:
        atomic_write_text(output, text + "\n")
    print(text)
    # After the JSON (on stdout, for scripts), the few figures a person reads, last on the screen.
    print(summary_lines(report), file=sys.stderr)
    if output:
        print(f"wrote {output}", file=sys.stderr)


def summary_lines(report: dict) -> str:
    """A few plain lines of an `evaluate-detect` report: recall, precision, accuracy, macro-F1.

    >>> print(summary_lines({"images": 2, "faces": 4, "matched": 3, "recall": 0.75, "precision": 0.6,
    ...                      "iou_threshold": 0.5, "recall_32px_and_more": 1.0,
    ...                      "classification": {"faces": 3, "accuracy": 0.6667, "macro_f1": 0.5}}))
    2 photos, 4 annotated faces
    recall     0.750  (3 of 4 faces found at IoU 0.5; faces of 32 px and more 1.000)
    precision  0.600  (of the detected faces, the share that matches an annotated one)
    accuracy   0.667  (labels of the 3 faces found)
    macro-F1   0.500
    """
    lines = [
        f"{report['images']} photos, {report['faces']} annotated faces",
        f"recall     {report['recall']:.3f}  ({report['matched']} of {report['faces']} faces found at IoU "
        f"{report['iou_threshold']}; faces of 32 px and more {report['recall_32px_and_more']:.3f})",
        f"precision  {report['precision']:.3f}  (of the detected faces, the share that matches an "
        "annotated one)",
    ]
    classification = report.get("classification")
    if classification:
        lines.append(f"accuracy   {classification['accuracy']:.3f}  (labels of the {classification['faces']} "
                     "faces found)")
        lines.append(f"macro-F1   {classification['macro_f1']:.3f}")
    alarms = report.get("false_alarms", {}).get("per_100_photos")
    if alarms:
        called = f", {alarms['uncovered']:.1f} of them called uncovered" if "uncovered" in alarms else ""
        lines.append(f"false alarms {alarms['unmatched']:.1f} boxes a 100 photos match no annotated face"
                     f"{called}")
    if report.get("unmatched_sheet"):
        lines.append(f"those boxes, to look at: {report['unmatched_sheet']}")
    if report.get("missed_sheet"):
        lines.append(f"faces of 32 px and more no box matched, to look at: {report['missed_sheet']}")
    for row in report.get("sweep", []):
        lines.append(f"threshold {row['threshold']}: recall {row['recall']:.3f}, precision "
                     f"{row['precision']:.3f}")
    return "\n".join(lines)


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pairs file")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.replace(",", "\t").split("\t")]
        if not cells[0] or cells[0].startswith("#"):
            continue
        if len(cells) < 2 or not cells[1]:
            raise ValueError(f"{path}:{number}: expected two names, a photo and its copy")
        pairs.append((cells[0], cells[1]))
    if len(pairs) > 1 and not _is_image_name(pairs[0][0]) and _is_image_name(pairs[1][0]):
        pairs = pairs[1:]  # a header (ilc2021_file, andrewmvd_file) names no photo: not a pair
    return pairs


def _is_image_name(name: str) -> bool:
    from maskdetect.images import IMAGE_SUFFIXES

    return Path(name).suffix.lower() in IMAGE_SUFFIXES
