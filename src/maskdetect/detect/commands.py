"""`maskdetect detect`, `batch`, `summarize` and `export`: argv in, one library call (`detect_files`,
`run_batch`, `summarize`, `export_onnx`), its result printed. `evaluate-detect` is in
`maskdetect.evaluation.commands`; it shares `add_model_options`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from maskdetect.faces.detector import DETECTORS
from maskdetect.options import BACKENDS, PRECISIONS, ModelOptions

log = logging.getLogger(__name__)

DETECT_EXIT_CODES = """exit status:
  0    every input was read and detected
  1    some inputs failed or were skipped (each named on stderr and in the JSON Lines); the others are done
  2    usage error: bad arguments, no inputs (or none of them exists), an unusable checkpoint
  130  interrupted (Ctrl-C); --resume continues the run"""
SUMMARIZE_EXIT_CODES = """exit status:
  0    every record was read and summarized
  1    the summary was written, but some lines of the JSON Lines could not be read (not UTF-8, not
       JSON, a record without its fields): they are named on stderr and left out of the counts
  2    usage error: bad arguments, no results there, an unknown key"""


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
    add_model_options(detect, video=True)
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
    add_model_options(batch)
    batch.set_defaults(func=run_batch)

    summarize = subparsers.add_parser(
        "summarize", help="faces by class per folder, path component or day: CSV and a PNG chart",
        description="Reads a `batch` output folder or `detect`'s JSON Lines.",
        epilog=SUMMARIZE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
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


class _Renamed(argparse.Action):
    """An option that was split in two: using it says which of the two to use instead."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option: str | None = None) -> None:
        parser.error(f"{option} was split in two: --face-threshold (what decides that a candidate is a "
                     "face: the verifier's probability, or the detector's score without one) and "
                     "--candidate-threshold (the detector's score from which a box is a candidate)")


def add_model_options(parser: argparse.ArgumentParser, video: bool = False) -> None:
    """The options that pick the model and how it runs (`maskdetect.ModelOptions`), shared by every
    command that detects; `model_options(args)` reads them back."""
    parser.add_argument("--model", "--checkpoint", dest="model", metavar="MODEL",
                        help="a model bundle folder, a checkpoint (.pt) or an ONNX export (`maskdetect "
                        "export`); default: the bundled model")
    parser.add_argument("--detector", choices=DETECTORS,
                        help="face detector for photos (default: the bundle's; retinaface-960 for the "
                        "bundled model)")
    if video:
        parser.add_argument("--video-detector", choices=DETECTORS,
                            help="face detector for video and camera frames (default: the bundle's, "
                            "retinaface-480 for the bundled model)")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx", help="classifier runtime")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="the classifier's arithmetic: int8 (the default on onnx: about 2.3x faster, "
                        "made once per model and cached) or fp32 (the default on torch)")
    parser.add_argument("--candidate-threshold", type=float, metavar="SCORE",
                        help="the detector's score (0-1) from which a box is a candidate (default: the one "
                        "the bundle's verifier was fitted on, else the detector's)")
    parser.add_argument("--face-threshold", type=float, metavar="SCORE",
                        help="what decides that a candidate is a face (0-1): the face verifier's probability "
                        "when the bundle has one for the detector, else the detector's score (default: "
                        "the verifier's own, else the detector's)")
    parser.add_argument("--threshold", "--detection-threshold", action=_Renamed, help=argparse.SUPPRESS)
    parser.add_argument("--no-verifier", dest="verify", action="store_false",
                        help="let the detector's scores alone decide what is a face (no face verifier)")


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The `ModelOptions` of parsed arguments (those `add_model_options` added).

    >>> parser = argparse.ArgumentParser(); add_model_options(parser)
    >>> model_options(parser.parse_args(["--face-threshold", "0.4"])).face_threshold
    0.4
    """
    return ModelOptions(
        model=args.model, detector=args.detector, video_detector=getattr(args, "video_detector", None),
        backend=args.backend, precision=args.precision, candidate_threshold=args.candidate_threshold,
        face_threshold=args.face_threshold, verify=args.verify,
    )


def run_export(args: argparse.Namespace) -> int:
    from maskdetect.checkpoint import load_checkpoint
    from maskdetect.export import export_onnx

    start = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint)
    # One step of 8-16 s with nothing to count: say it started, then what it wrote.
    print(f"exporting {args.checkpoint} to ONNX (about 10 s)...", file=sys.stderr, flush=True)
    path = export_onnx(checkpoint, args.output, source=str(args.checkpoint))
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s; run it with "
          f"`maskdetect detect PHOTO --model {path}` or `Predictor({str(path)!r})`")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from maskdetect.detect.media import check_inputs, detect_files
    from maskdetect.predict import Predictor

    if not args.inputs and args.camera is None:
        raise ValueError("give INPUT files/folders/videos or --camera INDEX")
    check_inputs(args.inputs, args.camera)  # every input missing: one line, before a model is loaded
    predictor = Predictor.from_options(model_options(args))
    summary = detect_files(
        predictor, args.inputs, args.out, workers=args.workers, resume=args.resume,
        images=not args.no_images, jsonl=args.jsonl, camera=args.camera, frames=args.frames,
        video_predictor=predictor.video_twin(), tracking=args.tracking,
    )
    print("faces by class: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items()))
    if sum(summary.people.values()):
        print("people in videos by verdict (one per face track): "
              + ", ".join(f"{k} {v}" for k, v in summary.people.items()))
    for failure in summary.failures:
        print(f"skipped: {failure}", file=sys.stderr)
    print(_written(summary.annotated_now, summary.jsonl, args.out, resumed=summary.resumed,
                   detected=summary.detected))
    return 1 if summary.failures else 0  # DETECT_EXIT_CODES


def run_batch(args: argparse.Namespace) -> int:
    from maskdetect.detect.ray_batch import BatchOptions, run_batch

    options = BatchOptions(
        args.out, model=model_options(args), actors=args.actors, cpus_per_actor=args.cpus_per_actor,
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

    detections = load_detections(args.results)
    table = summarize(detections, args.by)
    prefix = args.out or (args.results if args.results.is_dir() else args.results.parent) / "summary"
    csv, png = write_summary(table, args.by, prefix)
    print(table.to_string(index=False, max_rows=40))
    print(f"wrote {csv} and {png}")
    if detections.attrs.get("unreadable"):  # the summary stands, but a script must see it is short
        print(f"warning: {detections.attrs['unreadable_note']}; the summary leaves them out", file=sys.stderr)
        return 1
    return 0  # SUMMARIZE_EXIT_CODES


def _written(annotated: int, jsonl: Path, out: Path, *, resumed: int = 0, detected: int = 1) -> str:
    """The last line of `detect`: what this run wrote, and where; after --resume, what was done before.

    >>> _written(3, Path("out/detections.jsonl"), Path("out"))
    'wrote 3 annotated files and detections.jsonl to out'
    >>> _written(0, Path("log.jsonl"), Path("out"))
    'wrote log.jsonl'
    >>> _written(3, Path("out/detections.jsonl"), Path("out"), resumed=47, detected=3)
    'wrote 3 annotated files and detections.jsonl to out (47 inputs were done before)'
    >>> _written(0, Path("out/detections.jsonl"), Path("out"), resumed=50, detected=0)
    'nothing left to do: all 50 inputs were done before; detections.jsonl in out'
    """
    if resumed and not detected:
        where = f"{jsonl.name} in {out}" if jsonl.parent == out else str(jsonl)
        done = "the one input was" if resumed == 1 else f"all {resumed} inputs were"
        return f"nothing left to do: {done} done before; {where}"
    before = f" ({resumed} input{' was' if resumed == 1 else 's were'} done before)" if resumed else ""
    files = f"{annotated} annotated file{'' if annotated == 1 else 's'}"
    if jsonl.parent == out:
        return f"wrote {files} and {jsonl.name} to {out}{before}"
    return (f"wrote {files} to {out} and {jsonl}" if annotated else f"wrote {jsonl}") + before

