"""How well tracks follow people: MOT metrics (py-motmetrics), people counted by class, label flips.

`score_clip` compares what a tracker said on each frame of a `SyntheticClip` (the boxes and track
ids of `VideoAnalyzer.process`) with the clip's truth; `combine_scores` adds clips up. The MOT figures
are the CLEAR MOT and identity ones of the field (MOTChallenge): MOTA, IDF1, identity switches, at
IoU 0.5; a box over a face the truth marks `ignore` is neither a hit nor a false alarm. People are
counted by class, and `PeopleErrors` says who was missed, misjudged or counted on no one.
py-motmetrics is the `research` extra (`pip install 'maskdetect[research]'`), imported only when a
clip is scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from maskdetect.evaluation.clips import NOT_LABELLED, SyntheticClip
from maskdetect.faces.nms import iou_matrix
from maskdetect.labels import CLASSES

Box = tuple[float, float, float, float]


class CountRule(Protocol):
    """The tracker's rule of who counts as a person (`maskdetect.detect.tracks.TrackOptions` is one).

    Scoring takes the tracker's own rule, so that the truth counts people the way the tracker does;
    structural, so that evaluation never imports the product pipeline it scores.
    """

    def frames_to_count(self, fps: float) -> int: ...


class ScoredTrack(Protocol):
    """A track as scored here (`maskdetect.detect.tracks.Track` is one)."""

    track_id: int
    frames_seen: int
    verdict: str

    def counted(self, options: Any) -> bool: ...

    def flips(self) -> tuple[int, int]: ...


@dataclass
class PeopleErrors:
    """Where the people counted go wrong, person by person (the count error can hide them: a missed
    covered face and an extra covered track cancel out in `people_found`).

    Attributes:
        missed: per class, people the truth counts whom no counted track followed.
        missed_people: who they are: "<photo> person <n> (<class>)".
        wrong_verdicts: people found whose track (their longest) gave another class.
        wrong_people: who they are: "<photo> person <n> (<class>, judged <verdict>)".
        extra_tracks: counted tracks that followed no person the truth counts.
        extra_track_ids: their track ids (to find and look at them).
        second_tracks: counted tracks beyond the first on one person (an identity lost and found).
    """

    missed: Counter = field(default_factory=Counter)
    missed_people: list[str] = field(default_factory=list)
    wrong_verdicts: int = 0
    wrong_people: list[str] = field(default_factory=list)
    extra_tracks: int = 0
    extra_track_ids: list[int] = field(default_factory=list)
    second_tracks: int = 0


@dataclass
class ClipScore:
    """One clip's tracker output against its truth (`motmetrics.MOTAccumulator` inside)."""

    accumulator: object
    people_true: dict[str, int]
    people_found: dict[str, int]
    flips_tracked: int
    flips_per_frame: int
    tracks: int
    errors: PeopleErrors


def score_clip(clip: SyntheticClip, outputs: Sequence[Sequence[tuple[int, Box]]],
               tracks: Sequence[ScoredTrack], options: CountRule, iou: float = 0.5) -> ClipScore:
    """Score one clip.

    Args:
        clip: the clip and its truth.
        outputs: per frame, each face's (track id, box); id -1 (untracked) is left out.
        tracks: the tracks at the end (verdicts, counted or not, label flips). Those that spent
            most of their frames on faces the truth ignores are left out of the people counted,
            unless the person they followed most (matched at `iou`) is one the truth counts.
        options: the tracker's settings (`min_seconds` decides who counts, in the truth too).
        iou: the least overlap for a box to match a face.
    """
    mm = _motmetrics()

    if len(outputs) != len(clip.truth):
        raise ValueError(f"{clip.photo}: {len(outputs)} frames of output for {len(clip.truth)} of truth")
    accumulator = mm.MOTAccumulator(auto_id=True)
    on_ignored: Counter = Counter()  # frames each track spent on a face the truth ignores
    followed: dict[int, Counter] = {}  # per track, the frames it spent on each person (ignored or not)
    for faces, found in zip(clip.truth, outputs, strict=True):
        found = [(tid, box) for tid, box in found if tid >= 0]
        if faces and found:
            overlap = iou_matrix(np.array([b for _, b in found]), np.array([f.box for f in faces]))
            for (tid, _), row in zip(found, overlap, strict=True):
                if row.max() >= iou:
                    followed.setdefault(tid, Counter())[faces[int(np.argmax(row))].person] += 1
        ignored = [f.box for f in faces if f.ignore]
        if ignored and found:  # boxes on ignored faces drop out
            overlap = iou_matrix(np.array([b for _, b in found]), np.array(ignored))
            on_ignored.update(tid for (tid, _), row in zip(found, overlap, strict=True) if row.max() >= iou)
            found = [f for f, row in zip(found, overlap, strict=True) if row.max() < iou]
        counted = [f for f in faces if not f.ignore]
        distances = _distances([f.box for f in counted], [b for _, b in found], iou)
        accumulator.update([f.person for f in counted], [tid for tid, _ in found], distances)
    true = clip.people(options.frames_to_count(clip.fps))
    people = dict.fromkeys(true, 0)
    # A track that spent most of its frames on ignored faces is neither a person nor a false alarm,
    # unless the person it followed most is one the truth counts: a face the truth ignores in some
    # frames (mostly out of view) and counts in enough others is that person all along.
    persons = clip.persons(options.frames_to_count(clip.fps))

    def person(track: ScoredTrack) -> int | None:
        most = followed.get(track.track_id, Counter()).most_common(1)
        return most[0][0] if most else None

    def kept(track: ScoredTrack) -> bool:
        return on_ignored[track.track_id] * 2 < track.frames_seen or person(track) in persons

    counted_tracks = [t for t in tracks if t.counted(options) and kept(t)]
    for track in counted_tracks:
        # A track on a face the annotations miss (a by-eye audit's) counts in that class.
        people[NOT_LABELLED if persons.get(person(track)) == NOT_LABELLED else track.verdict] += 1
    flips = [t.flips() for t in counted_tracks]
    return ClipScore(accumulator, true, people, sum(f[0] for f in flips), sum(f[1] for f in flips),
                     len(counted_tracks), _errors(clip.photo, counted_tracks, persons, person))


def _errors(photo: str, tracks: Sequence[ScoredTrack], persons: dict[int, str],
            person: Callable[[ScoredTrack], int | None]) -> PeopleErrors:
    # Each counted track against the person it followed most (`person`), and the people left over.
    on_person: dict[int, list[ScoredTrack]] = {}
    errors = PeopleErrors()
    for track in tracks:
        followed = person(track)
        if followed in persons:
            on_person.setdefault(followed, []).append(track)
        else:
            errors.extra_tracks += 1
            errors.extra_track_ids.append(track.track_id)
    missed = {p: label for p, label in persons.items() if p not in on_person}
    errors.missed.update(missed.values())
    errors.missed_people = [f"{photo} person {p} ({label})" for p, label in missed.items()]
    for p, followed_by in on_person.items():
        errors.second_tracks += len(followed_by) - 1
        longest = max(followed_by, key=lambda t: t.frames_seen)
        if persons[p] != NOT_LABELLED and longest.verdict != persons[p]:
            errors.wrong_verdicts += 1
            errors.wrong_people.append(f"{photo} person {p} ({persons[p]}, judged {longest.verdict})")
    return errors


def combine_scores(scores: Sequence[ClipScore]) -> dict:
    """All clips together: MOTA, IDF1, identity switches, people by class against the truth, flips.

    Returns:
        A JSON-ready dict; "count_error" is |found - true| / true per class and overall (the sum of
        the classes' differences over all people); "people_errors" says where those differences
        come from (`PeopleErrors`). With a truth that holds `NOT_LABELLED` people
        (a by-eye audit's), they are a class of their own.
    """
    mm = _motmetrics()

    host = mm.metrics.create()
    names = [f"clip{i}" for i in range(len(scores))]
    table = host.compute_many([s.accumulator for s in scores], names=names, generate_overall=True,
                              metrics=["mota", "idf1", "num_switches", "recall", "precision",
                                       "num_objects", "num_unique_objects", "mostly_tracked"])
    overall = table.loc["OVERALL"]
    classes = list(CLASSES) + ([NOT_LABELLED] if any(NOT_LABELLED in s.people_true for s in scores) else [])
    true = {c: sum(s.people_true.get(c, 0) for s in scores) for c in classes}
    found = {c: sum(s.people_found.get(c, 0) for s in scores) for c in classes}
    tracked, per_frame = sum(s.flips_tracked for s in scores), sum(s.flips_per_frame for s in scores)
    tracks = sum(s.tracks for s in scores)
    missed = sum(abs(found[c] - true[c]) for c in classes)
    errors = [s.errors for s in scores]
    return {
        "clips": len(scores),
        "mota": round(float(overall["mota"]), 4), "idf1": round(float(overall["idf1"]), 4),
        "id_switches": int(overall["num_switches"]), "recall": round(float(overall["recall"]), 4),
        "precision": round(float(overall["precision"]), 4),
        "faces_in_frames": int(overall["num_objects"]), "people": int(overall["num_unique_objects"]),
        "people_true": true, "people_found": found,
        "count_error": {**{c: round(abs(found[c] - true[c]) / true[c], 4) if true[c] else None
                           for c in classes}, "all": round(missed / max(1, sum(true.values())), 4)},
        "tracks_counted": tracks,
        "people_errors": {
            "missed": {c: sum(e.missed[c] for e in errors) for c in classes},
            "missed_people": [who for e in errors for who in e.missed_people],
            "wrong_verdicts": sum(e.wrong_verdicts for e in errors),
            "wrong_people": [who for e in errors for who in e.wrong_people],
            "extra_tracks": sum(e.extra_tracks for e in errors),
            "second_tracks": sum(e.second_tracks for e in errors)},
        "flips_per_track": {"tracked": round(tracked / max(1, tracks), 4),
                            "per_frame": round(per_frame / max(1, tracks), 4),
                            "ratio": round(per_frame / tracked, 2) if tracked else None},
    }


def _motmetrics():
    try:
        import motmetrics
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("scoring tracks needs py-motmetrics: pip install 'maskdetect[research]'",
                                  name="motmetrics") from error
    return motmetrics


def _distances(truth: list[Box], found: list[Box], iou: float) -> np.ndarray:
    # 1 - IoU, NaN (no match) under `iou`: what `motmetrics.distances.iou_matrix` gives, which
    # py-motmetrics 1.4.0 computes with `np.asfarray`, gone in numpy 2.
    if not truth or not found:
        return np.empty((len(truth), len(found)))
    distance = 1.0 - iou_matrix(np.array(truth), np.array(found))
    distance[distance > 1.0 - iou] = np.nan
    return distance
