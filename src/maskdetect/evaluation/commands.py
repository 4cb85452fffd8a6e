"""`maskdetect evaluate-detect`: argv in, one library call (`evaluate_detection`, or
`annotator_agreement` with --against), its JSON report printed and a few lines of summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskdetect.detect.commands import add_model_options, model_options
from maskdetect.fileio import atomic_write_text


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate-detect", help="end-to-end evaluation on a Pascal VOC photo set (recall, precision, F1)",
        description="Prints the full report as JSON on stdout (and to --output), then a few lines of "
        "summary on stderr: recall, precision, and accuracy and macro-F1 of the faces found.",
    )
    evaluate.add_argument("voc_dir", type=Path, metavar="VOC_DIR", help="folder with annotations/ and images")
    add_model_options(evaluate)
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


def run_evaluate(args: argparse.Namespace) -> int:
    from maskdetect.data.voc_set import read_names
    from maskdetect.evaluation.detection import EvaluateDetectOptions, annotator_agreement, evaluate_detection

    if (args.against is None) != (args.pairs is None):
        raise ValueError("--against and --pairs go together")
    exclude = read_names(args.exclude) if args.exclude else []
    only = read_names(args.only) if args.only else None
    if args.against is not None:
        report = annotator_agreement(args.voc_dir, args.against, read_pairs(args.pairs), exclude=exclude,
                                     only=only, limit=args.limit, match_iou=args.match_iou)
    else:
        options = EvaluateDetectOptions(
            model=model_options(args), detection_only=args.detection_only, raw_boxes=args.raw_boxes,
            match_iou=args.match_iou, exclude=exclude, only=only, limit=args.limit,
            sweep=args.sweep or (), workers=args.workers, unmatched_sheet=args.unmatched_sheet,
            missed_sheet=args.missed_sheet, sheet_count=args.sheet_count,
        )
        report = evaluate_detection(args.voc_dir, options)
    _emit(report, args.output)
    return 0


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


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(photo, its copy) names from a pairs file (`evaluate-detect --pairs`): two tab- or comma-separated
    names a line; empty lines, lines starting with # and a header line that names no photo are skipped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line with fewer than two names (the message gives FILE:LINE).
    """
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
