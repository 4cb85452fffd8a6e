"""Face tracks: ids through gaps, one verdict per person, a steady running label with change events,
the summary and timeline files, clips with known answers and the MOT scores of them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from data_fixtures import make_voc
from PIL import Image

from maskdetect.detect.timeline import summarise_tracks, timeline_rows, write_track_files
from maskdetect.detect.tracks import FaceTracker, TrackOptions
from maskdetect.evaluation.clips import ClipSettings, clips_from_voc, make_clip
from maskdetect.evaluation.track_score import combine_scores, score_clip
from maskdetect.results import FaceResult, ImageResult


def _face(box, probs, det=0.9):
    probs = dict(zip(("covered", "incorrect", "uncovered"), probs, strict=True))
    label = max(probs, key=probs.get)
    return FaceResult(tuple(float(v) for v in box), label, probs[label], probs, det)


def _frame(*faces):
    return ImageResult(list(faces), 320, 240, image=Image.new("RGB", (320, 240), (90, 90, 90)))


def test_a_flickering_face_gets_one_verdict_and_a_steady_label_a_pulled_down_mask_an_event():
    tracker = FaceTracker(fps=25.0)
    labels = []
    for i in range(60):
        box = (40 + i, 50, 100 + i, 120)
        # Half-turned for 30 frames (covered and incorrect swap, covered a little ahead), then the
        # mask comes down.
        flicker = (0.4, 0.6, 0.0) if i % 3 == 2 else (0.6, 0.4, 0.0)
        probs = flicker if i < 30 else (0.05, 0.05, 0.9)
        (face,) = tracker.update(_frame(_face(box, probs)), i)
        labels.append(face.label)
    (track,) = tracker.tracks()
    tracked, raw = track.flips()
    assert raw == 20 and tracked == 1  # the frames' own labels flip 20 times; the running one once
    assert labels[:30] == ["covered"] * 30 and labels[-1] == "uncovered"
    (event,) = track.events
    assert event["from"] == "covered" and event["to"] == "uncovered" and 30 <= event["frame"] <= 42  # 0.5 s
    assert track.frames_seen == 60 and track.first_frame == 0 and track.last_frame == 59
    assert track.verdict == "uncovered"  # 30 frames of clear uncovered outweigh 30 unsure covered ones
    assert abs(sum(track.probabilities.values()) - 1) < 1e-9


def test_a_track_keeps_its_id_through_a_short_gap_and_two_people_get_two():
    tracker = FaceTracker(fps=25.0, options=TrackOptions(lost_seconds=1.0))
    ids = []
    for i in range(40):
        a = _face((20 + 2 * i, 40, 80 + 2 * i, 110), (0.9, 0.05, 0.05))
        b = _face((250, 100, 300, 160), (0.05, 0.05, 0.9))
        faces = [b] if 10 <= i < 20 else [a, b]  # a is hidden for 0.4 s
        ids.append([f.track_id for f in tracker.update(_frame(*faces), i)])
    assert ids[0] == [-1, -1]  # a track is confirmed on its second frame
    a_ids = {row[0] for i, row in enumerate(ids[1:], 1) if not 10 <= i < 20}
    b_ids = {row[-1] for row in ids[1:]}
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids
    verdicts = {t.track_id: (t.verdict, t.frames_seen) for t in tracker.tracks()}
    assert verdicts == {a_ids.pop(): ("covered", 30), b_ids.pop(): ("uncovered", 40)}


def test_a_face_cut_by_the_frame_edge_weighs_little_in_the_verdict():
    # A man with his mask pulled under the chin walks in from the left: while the frame's edge cuts
    # off his chin the classifier sees no mask (uncovered), once whole it sees the mask (incorrect).
    # Every frame weighing by size alone, the cut frames outvote the whole ones.
    def verdict(options: TrackOptions) -> str:
        tracker = FaceTracker(fps=25.0, options=options)
        for i in range(30):
            x0 = -60 + 3 * i  # the face is 70 px wide; the detector's box is clipped to the frame
            box = (max(0, x0), 50, x0 + 70, 120)
            probs = (0.02, 0.03, 0.95) if x0 < 0 else (0.1, 0.75, 0.15)
            tracker.update(_frame(_face(box, probs)), i)
        (track,) = tracker.tracks()
        return track.verdict

    assert verdict(TrackOptions()) == "incorrect"
    assert verdict(TrackOptions(edge_weight=1.0)) == "uncovered"
    with pytest.raises(ValueError, match="edge_weight"):
        TrackOptions(edge_weight=0)


def test_weights_favour_large_sure_faces():
    tracker = FaceTracker(fps=25.0, options=TrackOptions(full_weight_px=100))
    for i in range(10):  # two large sure covered frames, then 8 small unsure uncovered ones, same person
        big = i < 2
        box = (50, 50, 150, 150) if big else (65, 65, 125, 125)
        probs, det = ((0.9, 0.05, 0.05), 0.95) if big else ((0.3, 0.1, 0.6), 0.5)
        tracker.update(_frame(_face(box, probs, det)), i)
    (track,) = tracker.tracks()
    # Unweighted, the mean says uncovered (4.9 against 4.2); a small frame weighs 0.6 x 0.5.
    assert track.verdict == "covered"
    assert track.best_frame == 0 and track.thumbnail.size == (140, 140)  # the face and a fifth around it


def test_summary_timeline_and_files(tmp_path):
    options = TrackOptions(min_seconds=1.5)  # 3 frames at 2 frames/s
    tracker = FaceTracker(fps=2.0, options=options)
    for i in range(6):
        faces = [_face((20, 20, 80, 90), (0.9, 0.05, 0.05))]
        if i >= 2:
            faces.append(_face((200, 20, 260, 90), (0.1, 0.8, 0.1)))
        if i >= 4:
            faces.append(_face((120, 150, 170, 200), (0.1, 0.1, 0.8)))  # two frames only: no person
        tracker.update(_frame(*faces), i)
    tracks = tracker.tracks()
    summary = summarise_tracks(tracks, options, frames=6, fps=2.0)
    assert summary["people"] == {"covered": 1, "incorrect": 1, "uncovered": 0}
    assert summary["tracks_too_short"] == 1 and summary["seconds"] == 3.0
    rows = timeline_rows(tracks, options, frames=6, fps=2.0)
    assert [(r["second"], r["covered"], r["incorrect"], r["total"]) for r in rows] == [
        (0, 1, 0, 1), (1, 1, 1, 2), (2, 1, 1, 2)]
    written = write_track_files(tracks, options, tmp_path / "clip", frames=6, fps=2.0)
    assert set(written) == {"tracks", "summary", "timeline_csv", "timeline_png", "thumbs"}
    records = [json.loads(line) for line in (tmp_path / "clip.tracks.jsonl").read_text().splitlines()]
    assert [(r["verdict"], r["counted"], r["frames_seen"]) for r in records] == [
        ("covered", True, 6), ("incorrect", True, 4), ("uncovered", False, 2)]
    assert all(max(Image.open(r["thumbnail"]).size) <= 128 for r in records)
    assert records[0]["first_time"] == 0.0 and records[0]["last_time"] == 2.5
    with open(tmp_path / "clip.timeline.csv") as handle:
        assert list(csv.DictReader(handle))[1] == {"second": "1", "covered": "1", "incorrect": "1",
                                                   "uncovered": "0", "total": "2"}
    assert Image.open(tmp_path / "clip.timeline.png").format == "PNG"
    assert json.loads((tmp_path / "clip.summary.json").read_text())["people_total"] == 2


def test_bad_track_options_name_the_value():
    with pytest.raises(ValueError, match="min_seconds must not be negative, got -1"):
        TrackOptions(min_seconds=-1)
    with pytest.raises(ValueError, match="fps must be positive"):
        FaceTracker(fps=0)


def test_a_clip_knows_where_every_face_is_and_hides_the_occluded_ones(tmp_path):
    photo = Image.new("RGB", (400, 300), (30, 30, 30))
    faces = [((100, 100, 150, 160), "covered"), ((250, 120, 300, 180), "incorrect"),
             ((10, 10, 14, 14), "covered")]
    settings = ClipSettings(width=160, height=120, frames=12, occlusions=1, occlusion_frames=(3, 3), drops=1,
                            min_face=8, min_photo_face=8)
    clip = make_clip(photo, faces, settings, seed=3)
    open_view = make_clip(photo, faces, ClipSettings(**{**settings.__dict__, "occlusions": 0}), seed=3)
    assert len(clip.frames) == len(clip.truth) == 12
    # The tiny face is marked ignore wherever it is in view; the card hides a face for up to 3 frames
    # (fewer where the face leaves the view), and those frames lose it from the truth.
    assert all(f.ignore for frame in clip.truth for f in frame if f.person == 2)
    hidden = sum(len(a) - len(b) for a, b in zip(open_view.truth, clip.truth, strict=True))
    assert 1 <= hidden <= 3 and open_view.frames[0].shape == (120, 160, 3)
    assert not np.array_equal(np.stack(open_view.frames), np.stack(clip.frames))  # the card is drawn
    assert clip.people(min_frames=3) == {"covered": 1, "incorrect": 1, "uncovered": 0}
    path = clip.write(tmp_path / "clip.mp4")
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    assert len(truth["frames"]) == 12 and truth["frames"][0][0]["label"] in ("covered", "incorrect")
    import cv2

    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()


def test_a_clip_rejects_an_unknown_label():
    with pytest.raises(ValueError, match="'mask' is not one of"):
        make_clip(Image.new("RGB", (100, 100)), [((1, 1, 20, 20), "mask")])


def test_scores_of_a_perfect_tracker_and_of_one_that_swaps_ids():
    photo = Image.new("RGB", (400, 300))
    faces = [((100, 100, 150, 160), "covered"), ((250, 120, 300, 180), "uncovered")]
    settings = ClipSettings(width=160, height=120, frames=10, occlusions=0, drops=0, min_face=8,
                            min_photo_face=8, start_scale=(1.0, 1.0), zoom=(1.0, 1.0))
    clip = make_clip(photo, faces, settings, seed=1)
    options = TrackOptions(min_seconds=2 / 25)
    perfect = [[(f.person + 1, f.box) for f in frame] for frame in clip.truth]
    tracker = FaceTracker(25.0, options)
    for i, frame in enumerate(clip.truth):
        probs = {"covered": (0.9, 0.05, 0.05), "uncovered": (0.05, 0.05, 0.9)}
        tracker.update(ImageResult([_face(f.box, probs[f.label]) for f in frame], 160, 120), i)
    score = combine_scores([score_clip(clip, perfect, tracker.tracks(), options)])
    assert score["mota"] == 1.0 and score["idf1"] == 1.0 and score["id_switches"] == 0
    assert score["people_true"] == score["people_found"] == {"covered": 1, "incorrect": 0, "uncovered": 1}
    assert score["count_error"]["all"] == 0.0
    swapped = [[((f.person + i // 5) % 2 + 1, f.box) for f in frame] for i, frame in enumerate(clip.truth)]
    score = combine_scores([score_clip(clip, swapped, tracker.tracks(), options)])
    assert score["id_switches"] == 2 and score["idf1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="9 frames of output for 10 of truth"):
        score_clip(clip, perfect[:9], [], options)


def test_no_faces_no_tracks():
    tracker = FaceTracker(fps=25.0)
    assert tracker.update(_frame(), 0) == [] and tracker.tracks() == []
    assert np.isclose(tracker.fps, 25.0)


def test_a_track_on_a_counted_person_who_walks_out_of_view_counts_and_one_on_an_ignored_face_does_not():
    # Person 0 is in full view for 4 frames, then mostly out of the frame (ignored) for 6: the truth
    # counts them (2 frames are enough here) and a track that followed them all along is that person,
    # though most of its frames are on the ignored face. Person 1 is ignored throughout: a track on
    # them is neither a person nor a false alarm.
    from maskdetect.evaluation.clips import SyntheticClip, TruthFace

    a, b = (10.0, 10, 60, 60), (100.0, 10, 150, 60)
    truth = [[TruthFace(0, a, "covered", ignore=i >= 4), TruthFace(1, b, "uncovered", ignore=True)]
             for i in range(10)]
    clip = SyntheticClip("p.jpg", 25.0, [], truth)
    options = TrackOptions(min_seconds=2 / 25)
    tracker = FaceTracker(25.0, options)
    outputs = []
    for i in range(10):
        result = ImageResult([_face(a, (0.9, 0.05, 0.05)), _face(b, (0.05, 0.05, 0.9))], 320, 240)
        faces = tracker.update(result, i)
        outputs.append([(f.track_id, f.box) for f in faces])
    assert clip.persons(2) == {0: "covered"}
    score = score_clip(clip, outputs, tracker.tracks(), options)
    assert score.people_true == score.people_found == {"covered": 1, "incorrect": 0, "uncovered": 0}


def test_people_errors_say_who_was_missed_misjudged_or_counted_twice_where_the_counts_cancel():
    # Person 0 is tracked right; person 1 (uncovered) is judged covered and lost for 3 frames, so a
    # second track picks them up; person 2 is never found; a fourth track follows no one. The counts
    # by class are off by 1 + 2 + 1 only, and "people_errors" names each mistake.
    from maskdetect.evaluation.clips import SyntheticClip, TruthFace

    a, b, c, nobody = (10.0, 10, 60, 60), (100.0, 10, 150, 60), (10.0, 100, 60, 150), (200.0, 10, 250, 60)
    truth = [[TruthFace(0, a, "covered"), TruthFace(1, b, "uncovered"), TruthFace(2, c, "incorrect")]
             for _ in range(12)]
    clip = SyntheticClip("p.jpg", 25.0, [], truth)
    options = TrackOptions(min_seconds=2 / 25, lost_seconds=0.04)
    tracker = FaceTracker(25.0, options)
    outputs = []
    for i in range(12):
        faces = [_face(a, (0.9, 0.05, 0.05)), _face(nobody, (0.9, 0.05, 0.05))]
        if not 4 <= i < 8:
            faces.append(_face(b, (0.8, 0.1, 0.1)))
        outputs.append([(f.track_id, f.box) for f in tracker.update(ImageResult(faces, 320, 240), i)])
    clip_score = score_clip(clip, outputs, tracker.tracks(), options)
    on_nobody = {tid for frame in outputs for tid, box in frame if tuple(box) == nobody and tid >= 0}
    assert len(on_nobody) == 1 and clip_score.errors.extra_track_ids == sorted(on_nobody)
    score = combine_scores([clip_score])
    assert score["people_true"] == {"covered": 1, "incorrect": 1, "uncovered": 1}
    assert score["people_found"] == {"covered": 4, "incorrect": 0, "uncovered": 0}
    assert score["people_errors"] == {"missed": {"covered": 0, "incorrect": 1, "uncovered": 0},
                                      "missed_people": ["p.jpg person 2 (incorrect)"],
                                      "wrong_verdicts": 1,
                                      "wrong_people": ["p.jpg person 1 (uncovered, judged covered)"],
                                      "extra_tracks": 1, "second_tracks": 1}


def test_a_track_on_an_ignored_face_framed_unlike_the_annotation_drops_out_at_the_looser_match():
    # A small face the truth ignores, boxed by the tool larger than its annotation (IoU 0.44): at
    # MOTChallenge's 0.5 the track is not "on" the ignored face, so it counts as an extra person; at
    # 0.3, the overlap evaluate-detect accepts, it is that face and drops out (bench/studies/tracking_study.py
    # reports both).
    from maskdetect.evaluation.clips import SyntheticClip, TruthFace
    from maskdetect.faces.nms import iou_matrix

    annotated, found = (100.0, 100, 130, 130), (95.0, 95, 140, 140)
    assert 0.3 < iou_matrix(np.array([found]), np.array([annotated]))[0, 0] < 0.5
    clip = SyntheticClip("p.jpg", 25.0, [], [[TruthFace(0, annotated, "covered", ignore=True)]] * 10)
    options = TrackOptions(min_seconds=2 / 25)
    tracker = FaceTracker(25.0, options)
    outputs = []
    for i in range(10):
        faces = tracker.update(ImageResult([_face(found, (0.9, 0.05, 0.05))], 320, 240), i)
        outputs.append([(f.track_id, f.box) for f in faces])
    strict = score_clip(clip, outputs, tracker.tracks(), options)
    loose = score_clip(clip, outputs, tracker.tracks(), options, iou=0.3)
    assert strict.people_true == loose.people_true == {"covered": 0, "incorrect": 0, "uncovered": 0}
    assert strict.people_found["covered"] == 1 and loose.people_found["covered"] == 0


def test_an_audit_adds_unannotated_faces_to_the_truth_as_not_labelled_people(tmp_path):
    # A face the annotations miss, found by eye, joins a second truth as a "not labelled" person:
    # the frames stay the same, and a track on it counts there instead of as a false person.
    from maskdetect.evaluation.clips import NOT_LABELLED, unlabelled_faces

    audit = tmp_path / "audit.tsv"
    audit.write_text("# by eye\nclip\tphoto\tbox\tverdict\n"
                     "0\tp.jpg\t250 120 300 180\tan unlabelled real face\n"
                     "0\tp.jpg\t10 10 20 20\ta false face\n")
    assert unlabelled_faces(audit) == {"p.jpg": [(250.0, 120.0, 300.0, 180.0)]}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
    settings = ClipSettings(width=160, height=120, frames=10, occlusions=1, drops=0, min_face=8,
                            min_photo_face=8, start_scale=(1.0, 1.0), zoom=(1.0, 1.0))
    labelled = [((100, 100, 150, 160), "covered")]
    plain = make_clip(photo, labelled, settings, seed=1)
    audited = make_clip(photo, labelled, settings, seed=1, unlabelled=unlabelled_faces(audit)["p.jpg"])
    assert all(np.array_equal(a, b) for a, b in zip(plain.frames, audited.frames, strict=True))
    assert audited.without_unlabelled().truth == plain.truth and len(audited.windows) == 10
    assert audited.people() == {"covered": 1, "incorrect": 0, "uncovered": 0, NOT_LABELLED: 1}
    options = TrackOptions(min_seconds=2 / 25)
    tracker = FaceTracker(25.0, options)
    outputs = []
    for i, frame in enumerate(audited.truth):
        faces = tracker.update(ImageResult([_face(f.box, (0.9, 0.05, 0.05)) for f in frame], 160, 120), i)
        outputs.append([(f.track_id, f.box) for f in faces])
    against_plain = combine_scores([score_clip(plain, outputs, tracker.tracks(), options)])
    against_audit = combine_scores([score_clip(audited, outputs, tracker.tracks(), options)])
    assert against_plain["people_found"] == {"covered": 2, "incorrect": 0, "uncovered": 0}
    assert against_audit["people_found"] == against_audit["people_true"] == {
        "covered": 1, "incorrect": 0, "uncovered": 0, NOT_LABELLED: 1}
    bad = tmp_path / "bad.tsv"
    bad.write_text("photo\tbox\tverdict\np.jpg\t1 2 3\tan unlabelled real face\n")
    with pytest.raises(ValueError, match="line 2 box '1 2 3' is not four numbers"):
        unlabelled_faces(bad)


def test_clips_are_never_made_of_the_photos_left_out(tmp_path):
    # tracking_study --exclude: clips of photos a face verifier was fitted on would flatter it.
    names = [f"p{i}.png" for i in range(4)]
    voc = make_voc(tmp_path / "voc", {n: [("with_mask", (20, 20, 80, 80))] for n in names})
    settings = ClipSettings(width=80, height=60, frames=2, occlusions=0, drops=0)
    assert sorted(c.photo for c in clips_from_voc(voc, 10, settings)) == names
    kept = [c.photo for c in clips_from_voc(voc, 10, settings, exclude=["p1.png", "p3"])]
    assert sorted(kept) == ["p0.png", "p2.png"]
    # tracking_study --second-annotation: only the photos a second team labelled too.
    paired = [c.photo for c in clips_from_voc(voc, 10, settings, only=["p2", "p3.png"])]
    assert sorted(paired) == ["p2.png", "p3.png"]


def test_a_second_annotation_scored_as_a_tracker_differs_only_where_the_teams_do():
    # tracking_study --second-annotation: another team's boxes followed without fault along the
    # clip's camera path, scored like any tracker. The same faces: no error. A face labelled
    # otherwise: a wrong verdict; a face it left out: missed; one under 32 px: not counted by it.
    from maskdetect.evaluation.clips import annotation_along

    photo = Image.new("RGB", (400, 300))
    faces = [((100, 100, 150, 160), "covered"), ((250, 120, 300, 180), "uncovered"),
             ((320, 40, 370, 100), "covered")]
    settings = ClipSettings(width=160, height=120, frames=12, occlusions=0, drops=0, min_face=8,
                            start_scale=(1.0, 1.0), zoom=(1.0, 1.0))
    clip = make_clip(photo, faces, settings, seed=1)
    options = TrackOptions(min_seconds=2 / 25)
    outputs, tracks = annotation_along(clip, faces, settings)
    same = combine_scores([score_clip(clip, outputs, tracks, options)])
    assert same["count_error"]["all"] == 0.0 and same["mota"] == 1.0
    other = [((101, 99, 151, 161), "incorrect"), faces[1], ((320, 40, 345, 70), "covered")]
    outputs, tracks = annotation_along(clip, other, settings)
    assert [t.verdict for t in tracks] == ["incorrect", "uncovered"]  # the 25 px face is left out
    score = combine_scores([score_clip(clip, outputs, tracks, options)])
    errors = score["people_errors"]
    assert [p.strip() for p in errors["wrong_people"]] == ["person 0 (covered, judged incorrect)"]
    assert [p.strip() for p in errors["missed_people"]] == ["person 2 (covered)"]
    assert score["people_found"] == {"covered": 0, "incorrect": 1, "uncovered": 1}


def test_a_track_holding_nan_is_refused_naming_its_file_and_nothing_is_written(tmp_path):
    # Issue 31.7: json.dumps wrote "NaN", which no strict JSON reader takes.
    tracker = FaceTracker(fps=2.0, options=TrackOptions(min_seconds=0.5))
    for i in range(3):
        tracker.update(_frame(_face((20, 20, 80, 90), (float("nan"),) * 3)), i)
    with pytest.raises(ValueError, match=r"clip.tracks.jsonl: holds a number that is not finite"):
        write_track_files(tracker.tracks(), tracker.options, tmp_path / "clip", frames=3, fps=2.0,
                          images=False)
    assert not list(tmp_path.iterdir())
