"""Tracking on clips with known answers: MOTA, IDF1, identity switches, people by class, label flips.

Builds clips by moving a virtual camera over andrewmvd's CC0 photos (`maskdetect.evaluation.clips`: pan,
zoom, short full occlusions, frame drops), runs the video path's face detector and classifier once
per frame (`Predictor().video_twin()`: the bundle's video detector, as `maskdetect detect` uses for video;
`--detector blazeface` runs the photo detector instead, as `detect --video-detector blazeface` does), then
gives the same faces to each tracker and scores them (`maskdetect.evaluation.track_score`, py-motmetrics).
Trackers: ByteTrack, SORT and OC-SORT of the `trackers` package, and norfair when it can be imported
(its metadata pins numpy<2, so it is not a dependency: install it apart, e.g.
`pip install --no-deps --target /tmp/norfair norfair==2.3.0 filterpy==1.4.5` and `--norfair /tmp/norfair`).
Prints JSON; `seconds_per_1000_frames` is each tracker's own time (association and the per-track
labels), measured in the same run.

"people_errors" says where the people counted go wrong: people missed (by class), verdicts wrong,
extra tracks, second tracks on one person; the people missed and misjudged by name (photo, person,
label and verdict), to look at. `--exclude bench/andrewmvd-verifier-photos.txt` films
only photos the video path's face verifier was not fitted on.

Every tracker's tracks are scored at IoU 0.5 and again at 0.3 (`at_match_iou_0.3`; LOOSE_IOU says why).
`--audit` scores the same tracks a second time ("against_audited_truth"), against the truth with the
faces a by-eye audit found unannotated added as people of class "not labelled"
(bench/audits/tracking-clips-seed0.tsv; the frames are the same either way).

`--second-annotation ../shared/data/ilc2021-dev/near-duplicates-of-andrewmvd.tsv` films only the 96
photos ilc2021-dev's team labelled too, and scores that team's labels as a tracker that never errs
along each clip's camera path ("second_annotation", at both IoUs; their faces under 32 px in the
photo are left out, the truth's rule; `--second-min-face 0` keeps them all): how near a second careful
annotation comes to the count goal, on the same clips as the trackers.

    .venv/bin/python bench/studies/tracking_study.py [--clips 30] [--frames 75] [--seed 0] [--norfair DIR]
        [--audit bench/audits/tracking-clips-seed0.tsv] [--precision fp32] [--no-verifier]
        [--detector blazeface] [--exclude bench/andrewmvd-verifier-photos.txt] [--second-annotation PAIRS]
        [--second-min-face PX] [--model BUNDLE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VOC = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask"
# Boxes match faces at IoU 0.5, MOTChallenge's rule; the same tracks are scored again at 0.3, the
# overlap `maskdetect evaluate-detect --match-iou 0.3` accepts for faces whose boxes are framed
# differently from the annotators' (small faces above all). It decides which tracks lie on faces the
# truth ignores, so it moves the people counted too.
LOOSE_IOU = 0.3
KEPT = ("mota", "idf1", "id_switches", "people_true", "people_found", "count_error", "people_errors")


class NorfairAssociate:
    """norfair's Tracker behind the `update(supervision.Detections)` of the `trackers` package."""

    def __init__(self, fps: float, lost_seconds: float) -> None:
        import norfair

        self._norfair = norfair
        self._tracker = norfair.Tracker(distance_function="iou", distance_threshold=0.9,
                                        hit_counter_max=max(1, round(lost_seconds * fps)),
                                        initialization_delay=0)

    def update(self, detections):
        found = [self._norfair.Detection(points=box.reshape(2, 2), data=int(i))
                 for box, i in zip(detections.xyxy, detections.data.get("index", []), strict=False)]
        ids = np.full(len(detections), -1)
        for obj in self._tracker.update(found):
            if obj.last_detection is not None and obj.last_detection in found and obj.id is not None:
                ids[found.index(obj.last_detection)] = obj.id - 1
        detections.tracker_id = ids
        return detections


def _associates(fps: float, options, norfair: bool) -> dict:
    from trackers import OCSORTTracker, SORTTracker

    from maskdetect.detect.tracks import bytetrack

    buffer = max(1, round(options.lost_seconds * 30))
    made = {
        "bytetrack": lambda: bytetrack(fps, options),
        "sort": lambda: SORTTracker(lost_track_buffer=buffer, frame_rate=fps, track_activation_threshold=0.0,
                                    minimum_consecutive_frames=1, minimum_iou_threshold=options.min_iou),
        "ocsort": lambda: OCSORTTracker(lost_track_buffer=buffer, frame_rate=fps,
                                        minimum_consecutive_frames=1, minimum_iou_threshold=options.min_iou,
                                        high_conf_det_threshold=0.0),
    }
    if norfair:
        made["norfair"] = lambda: NorfairAssociate(fps, options.lost_seconds)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--frames", type=int, default=75, help="frames a clip (25 frames/s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("int8", "fp32"), help="the classifier's (default: int8)")
    parser.add_argument("--no-verifier", dest="verify", action="store_false",
                        help="the detector's scores alone decide what is a face (no face verifier)")
    from maskdetect.faces.detector import DETECTORS

    parser.add_argument("--detector", choices=DETECTORS,
                        help="default: the bundle's video detector, the video path's; any detector, with "
                        "its verifier when the bundle has one")
    parser.add_argument("--voc", type=Path, default=VOC, help="VOC photo set (default andrewmvd-face-mask)")
    parser.add_argument("--model", type=Path, help="a model bundle (default: the bundled one), e.g. a copy "
                                                   "with a verifier fitted otherwise")
    parser.add_argument("--norfair", type=Path, help="a folder holding norfair (installed apart) to compare")
    parser.add_argument("--min-seconds", type=float, default=0.4,
                        help="how long a track must be seen to count as a person (default %(default)s)")
    parser.add_argument("--exclude", type=Path,
                        help="a file of photo names never to film, e.g. bench/andrewmvd-verifier-photos.txt "
                             "(the photos the video path's verifier was fitted on)")
    parser.add_argument("--audit", type=Path,
                        help="a by-eye audit (TSV) whose unlabelled real faces join a second truth")
    parser.add_argument("--extra-sheet", type=Path,
                        help="write a contact sheet (PNG, a CSV beside it) of ByteTrack's counted tracks "
                             "that follow no person the truth counts, each in the middle frame it was in")
    parser.add_argument("--second-annotation", type=Path, metavar="PAIRS",
                        help="film only the photos of this pairs file (e.g. ilc2021-dev/near-duplicates-of-"
                             "andrewmvd.tsv: its photo, then the --voc set's copy) and score, beside the "
                             "trackers, its own set's annotation as a tracker that never errs")
    parser.add_argument("--second-min-face", type=float, default=None, metavar="PX",
                        help="with --second-annotation: leave out its faces narrower than this in the photo "
                             "(default: the truth's own rule, 32 px; 0 keeps them all, and the scorer "
                             "drops those on faces the truth ignores, as it does a tracker's)")
    args = parser.parse_args()
    if not args.voc.is_dir():
        sys.exit(f"photo set not found: {args.voc} (../shared/data must sit beside the project)")
    if args.norfair:
        sys.path.insert(0, str(args.norfair))
    from maskdetect.data.voc_set import excluded_count, read_names
    from maskdetect.detect.tracks import FaceTracker, TrackOptions
    from maskdetect.evaluation.clips import ClipSettings, annotation_along, clips_from_voc, unlabelled_faces
    from maskdetect.evaluation.track_score import combine_scores, score_clip
    from maskdetect.predict import Predictor
    from maskdetect.results import ImageResult

    options = TrackOptions(min_seconds=args.min_seconds)
    predictor = Predictor(args.model, classifier_threads=1, precision=args.precision, verify=args.verify,
                          video_detector=args.detector).video_twin()
    settings = ClipSettings(frames=args.frames)
    associates = _associates(settings.fps, options, args.norfair is not None)
    scores: dict[str, list] = {name: [] for name in associates}
    loose: dict[str, list] = {name: [] for name in associates}  # the same tracks matched at LOOSE_IOU
    audited: dict[str, list] = {name: [] for name in associates}
    unlabelled = unlabelled_faces(args.audit) if args.audit else None
    seconds = dict.fromkeys(associates, 0.0)
    frames_total, faces_per_frame, detect_seconds = 0, 0, 0.0
    extra_tiles: list[tuple[str, list[float], np.ndarray]] = []
    exclude = read_names(args.exclude) if args.exclude else []
    second = _second_annotation(args.second_annotation, args.voc) if args.second_annotation else None
    team: dict[float, list] = {0.5: [], LOOSE_IOU: []}  # the second annotation, scored at each IoU
    second_settings = settings if args.second_min_face is None else dataclasses.replace(
        settings, min_photo_face=args.second_min_face)
    for audited_clip in clips_from_voc(args.voc, args.clips, settings, seed=args.seed, unlabelled=unlabelled,
                                       exclude=exclude, only=list(second) if second is not None else None):
        clip = audited_clip.without_unlabelled()
        if second is not None:
            outputs, tracks = annotation_along(clip, second[Path(clip.photo).stem], second_settings)
            for iou, scored in team.items():
                scored.append(score_clip(clip, outputs, tracks, options, iou=iou))
        start = time.perf_counter()
        results = []
        for frame in clip.frames:
            found = predictor.predict(frame)
            results.append(ImageResult(found.faces, found.width, found.height))  # no image kept
        detect_seconds += time.perf_counter() - start
        frames_total += len(results)
        faces_per_frame += sum(len(r.faces) for r in results)
        for name, make in associates.items():
            tracker = FaceTracker(settings.fps, options, predictor.classes, associate=make())
            start = time.perf_counter()
            outputs = [[(f.track_id, f.box) for f in tracker.update(r, i)] for i, r in enumerate(results)]
            seconds[name] += time.perf_counter() - start
            scores[name].append(score_clip(clip, outputs, tracker.tracks(), options))
            if name == "bytetrack" and args.extra_sheet:
                extra_tiles += _extra_tiles(clip, outputs, scores[name][-1].errors.extra_track_ids)
            loose[name].append(score_clip(clip, outputs, tracker.tracks(), options, iou=LOOSE_IOU))
            if unlabelled is not None:
                audited[name].append(score_clip(audited_clip, outputs, tracker.tracks(), options))
    report = {
        "clips": args.clips, "frames_per_clip": args.frames, "frames": frames_total, "seed": args.seed,
        "clip_size": f"{settings.width}x{settings.height}", "fps": settings.fps,
        "photos": str(args.voc), "photos_excluded": excluded_count(args.voc, exclude),
        "min_seconds_to_count": options.min_seconds,
        "model": str(args.model) if args.model else "bundled",
        "detector": predictor.detector.name, "face_verifier": predictor.verifier is not None,
        "faces_labelled_frame_by_frame": faces_per_frame,
        "detect_and_classify_frames_per_second": round(frames_total / detect_seconds, 1),
        "trackers": {name: {**combine_scores(scores[name]),
                            "seconds_per_1000_frames": round(1000 * seconds[name] / frames_total, 3)}
                     for name in associates},
        f"at_match_iou_{LOOSE_IOU}": {
            name: {k: v for k, v in combine_scores(loose[name]).items() if k in KEPT} for name in associates},
    }
    if unlabelled is not None:
        report["against_audited_truth"] = {
            "audit": str(args.audit), "faces_added": sum(len(v) for v in unlabelled.values()),
            "trackers": {name: {k: v for k, v in combine_scores(audited[name]).items() if k in KEPT}
                         for name in associates}}
    if second is not None:
        report["second_annotation"] = {
            "pairs": str(args.second_annotation), "photos_paired": len(second),
            "its_faces_from_px": second_settings.min_photo_face,
            **{f"at_match_iou_{iou}": {k: v for k, v in combine_scores(scored).items() if k in KEPT}
               for iou, scored in team.items()}}
    if args.extra_sheet:
        report["extra_sheet"] = str(_write_extra_sheet(extra_tiles, args.extra_sheet))
    print(json.dumps(report, indent=2))
    return 0




def _second_annotation(pairs_file: Path, voc: Path) -> dict[str, list]:
    """The faces the pairs file's own set labelled on each paired photo of `voc`, by that photo's stem,
    scaled to its pixels (`evaluation.detection.paired_faces`)."""
    from maskdetect.data.voc_set import voc_items
    from maskdetect.evaluation.commands import read_pairs
    from maskdetect.evaluation.detection import paired_faces

    pairs = [(theirs, mine) for mine, theirs in read_pairs(pairs_file)]  # the --voc photo first
    copies = voc_items(voc, only=[name for name, _ in pairs])
    labelled = voc_items(pairs_file.parent, only=[name for _, name in pairs])
    return {path.stem: other for path, _, other in paired_faces(copies, labelled, pairs)}


def _extra_tiles(clip, outputs: list, track_ids: list[int]) -> list[tuple[str, list[float], np.ndarray]]:
    """(name, box, frame pixels) of each track in the middle frame it was seen in; the name says the
    photo, the frame and the track."""
    tiles = []
    for track_id in track_ids:
        seen = [(i, box) for i, frame in enumerate(outputs) for tid, box in frame if tid == track_id]
        if seen:
            index, box = seen[len(seen) // 2]
            tiles.append((f"{clip.photo} frame {index} track {track_id}", [float(v) for v in box],
                          clip.frames[index]))
    return tiles


def _write_extra_sheet(tiles: list, path: Path) -> Path:
    """The tracks' contact sheet (`evaluation.false_alarms.write_sheet`, the frames from memory): what a
    by-eye audit of the extra tracks looks at; its CSV names each tile's photo, frame and track."""
    from PIL import Image

    from maskdetect.evaluation.false_alarms import write_sheet

    entries = [(name, box, None, float(np.sqrt((box[2] - box[0]) * (box[3] - box[1]))), [])
               for name, box, _ in tiles]
    return write_sheet(entries, path, "size", tile=160, columns=6,
                       images={name: Image.fromarray(pixels) for name, _, pixels in tiles})

if __name__ == "__main__":
    sys.exit(main())
