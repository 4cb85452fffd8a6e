"""`maskdetect detect / export / evaluate-detect` as a user runs them, bad inputs included."""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from maskdetect.cli import main
from maskdetect.detect.inputs import Job, collect_inputs
from maskdetect.draw import draw_results
from maskdetect.labels import CLASS_COLOURS, CLASSES
from maskdetect.predict import FaceResult


def _huge_png_header(path, side=20_000):
    # A valid PNG whose header claims side x side pixels, with a few bytes of image data.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _write_video(path, frames, fourcc="mp4v"):
    size = (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detect_a_folder_with_bad_files_reports_them_and_goes_on(tmp_path, untrained_checkpoint, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(astronaut()).save(photos / "sub" / "astronaut.png")
    Image.fromarray(astronaut()).resize((256, 256)).save(photos / "small.jpg")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _huge_png_header(photos / "huge.png")
    (photos / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    # --face-threshold 0.6 (no verifier for a bare checkpoint: the detector's score): exactly the
    # astronaut's face (0.94); the accurate detector's default (0.35) also reports two weak look-alikes
    # on her suit (test_faces.test_every_detector_finds_the_astronaut).
    code = main(["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out),
                 "--workers", "2", "--face-threshold", "0.6"])
    assert code == 1  # some inputs failed, the others are done (detect --help: exit status)
    records = {r["path"].split("/")[-1]: r for r in _read_jsonl(out / "detections.jsonl")}
    assert set(records) == {"astronaut.png", "small.jpg", "empty.jpg", "broken.jpg", "huge.png"}
    assert "empty" in records["empty.jpg"]["error"]
    assert "broken.jpg" in records["broken.jpg"]["error"]
    assert "400,000,000 pixels is over the limit" in records["huge.png"]["error"]
    assert len(records["astronaut.png"]["faces"]) == 1
    for name, scale in (("astronaut.png", 1), ("small.jpg", 0.5)):
        best = records[name]["faces"][0]  # best detection first: her face
        centre_x = (best["box"][0] + best["box"][2]) / 2
        assert best["label"] in CLASSES and abs(centre_x - 225 * scale) < 15 * scale
    annotated = Image.open(out / "photos" / "sub" / "astronaut.png")
    assert annotated.size == (512, 512)
    x0, y0 = (round(v) for v in records["astronaut.png"]["faces"][0]["box"][:2])
    label = records["astronaut.png"]["faces"][0]["label"]
    assert annotated.convert("RGB").getpixel((x0, y0 + 20)) == CLASS_COLOURS[label]
    captured = capsys.readouterr()
    assert "faces by class:" in captured.out and "empty.jpg" in captured.err


def test_detect_video_and_a_truncated_video(tmp_path, untrained_checkpoint):
    frames = [np.asarray(Image.fromarray(astronaut()).resize((320, 240))) for _ in range(6)]
    _write_video(tmp_path / "clip.mp4", frames)
    _write_video(tmp_path / "cut.avi", frames * 3, fourcc="MJPG")
    data = (tmp_path / "cut.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])  # ends early: half the frames are gone
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    args = [str(tmp_path / n) for n in ("clip.mp4", "cut.avi", "junk.mp4")]
    assert main(["detect", *args, "--model", str(untrained_checkpoint), "--out", str(out)]) == 1  # junk
    records = _read_jsonl(out / "detections.jsonl")
    clip_frames = [r for r in records if r["path"].endswith("clip.mp4") and "frame" in r]
    assert len(clip_frames) == 6 and all(len(r["faces"]) == 1 for r in clip_frames)
    written = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    assert written.isOpened() and int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    written.release()
    summaries = {r["path"].split("/")[-1]: r for r in records if "frame" not in r}
    assert "junk.mp4" in summaries["junk.mp4"]["error"]
    cut = summaries["cut.avi"]
    assert "error" in cut or ("ended early" in cut["warning"] and cut["frames"] < 18)


def test_missing_camera_is_a_clear_error_and_files_still_run(tmp_path, untrained_checkpoint, capsys):
    Image.fromarray(astronaut()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["--camera", "97", "--model", str(untrained_checkpoint), "--out", str(out),
            "--face-threshold", "0.6"]
    main(["detect", str(tmp_path / "a.png"), *args])
    assert "camera 97 is not there" in capsys.readouterr().err
    assert len(_read_jsonl(out / "detections.jsonl")[0]["faces"]) == 1


def test_detect_without_inputs_or_model_is_a_usage_error(tmp_path, capsys, monkeypatch):
    assert main(["detect", "--model", "x.pt"]) == 2
    assert "INPUT" in capsys.readouterr().err
    monkeypatch.setattr("maskdetect.bundle.DEFAULT_BUNDLE", tmp_path / "default")
    Image.fromarray(astronaut()).save(tmp_path / "a.png")
    assert main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'default'}: no such model" in err
    assert main(["detect", str(tmp_path / "a.png"), "--model", str(tmp_path / "x.pt")]) == 2
    assert f"{tmp_path / 'x.pt'}: no such model" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["detect", "a.jpg"], ["batch", "a.jpg", "--out", "o"], ["serve"],
                                     ["evaluate-detect", "voc"]])
@pytest.mark.parametrize("old", ["--threshold", "--detection-threshold"])
def test_the_old_threshold_options_name_the_two_that_replace_them(command, old, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*command, old, "0.5"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{old} was split in two" in err and "--face-threshold" in err and "--candidate-threshold" in err


def test_checkpoint_is_another_name_for_model():
    from maskdetect.detect.commands import add_model_options, model_options
    from maskdetect.options import ModelOptions

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    old, new = ([name, "m.pt", "--candidate-threshold", "0.2"] for name in ("--checkpoint", "--model"))
    by_old_name = model_options(parser.parse_args(old))
    assert by_old_name == model_options(parser.parse_args(new))
    assert by_old_name == ModelOptions("m.pt", candidate_threshold=0.2)


def test_collect_inputs_keeps_same_named_files_apart(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x.jpg")
    jobs, errors = collect_inputs([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "nope"])
    assert len({j.out_name for j in jobs}) == 2 and errors == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_inputs_that_would_share_an_annotated_name_each_keep_their_own(tmp_path, untrained_checkpoint):
    # a.tif and a.webp are both annotated as JPEG, clip.mp4 and clip.avi both as an mp4: none may
    # overwrite another, nor may A.png and a.png on a file system that ignores case.
    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.fromarray(astronaut()).resize((128, 128))
    for name in ("a.tif", "a.webp", "a.jpg", "A.png", "a.png"):
        face.save(photos / name)
    jobs, _ = collect_inputs([photos])
    names = [str(job.out_name).lower() for job in jobs]
    assert len(set(names)) == 5 and all(n.endswith((".jpg", ".png")) for n in names)
    frames = [np.asarray(face)] * 2
    _write_video(photos / "clip.mp4", frames)
    _write_video(photos / "clip.avi", frames, fourcc="MJPG")
    out = tmp_path / "out"
    assert main(["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out)]) == 0
    records = [r for r in _read_jsonl(out / "detections.jsonl") if "annotated" in r]
    written = {r["path"]: r["annotated"] for r in records}
    assert len(written) == 7 and len(set(written.values())) == 7
    assert all(Path(target).is_file() for target in written.values())


def test_a_killed_folder_run_keeps_its_records_and_resumes(tmp_path, untrained_checkpoint, monkeypatch):
    import maskdetect.detect.media as media

    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.fromarray(astronaut()).resize((128, 128))
    for n in range(5):
        face.save(photos / f"p{n}.jpg")
    (photos / "p5.jpg").write_bytes(b"")  # fails every time: tried again on resume
    out = tmp_path / "out"
    (out / "detections.jsonl").parent.mkdir()
    (out / "detections.jsonl").write_text("an earlier run's finished log\n")
    real, seen = media.annotate_image, []

    def killed_at_the_fourth(predictor, job, out_dir):
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C, or the machine going down
        seen.append(job.path.name)
        return real(predictor, job, out_dir)

    monkeypatch.setattr(media, "annotate_image", killed_at_the_fourth)
    args = ["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out),
            "--workers", "1"]
    assert main(args) == 130  # "maskdetect: interrupted"
    assert (out / "detections.jsonl").read_text() == "an earlier run's finished log\n"  # not replaced
    part = out / "detections.jsonl.part"
    assert [r["path"].split("/")[-1] for r in _read_jsonl(part)] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    part.write_text(part.read_text() + '{"path": "half a line')  # killed mid-write

    seen.clear()
    monkeypatch.setattr(media, "annotate_image",
                        lambda predictor, job, o: seen.append(job.path.name) or real(predictor, job, o))
    assert main([*args, "--resume"]) == 1  # p5.jpg failed again
    assert seen == ["p3.jpg", "p4.jpg", "p5.jpg"]
    records = _read_jsonl(out / "detections.jsonl")
    assert sorted(r["path"].split("/")[-1] for r in records) == [f"p{n}.jpg" for n in range(6)]
    assert "empty" in records[-1]["error"] and not part.exists()
    umask = os.umask(0)
    os.umask(umask)
    for written in (out / "detections.jsonl", out / "photos" / "p0.jpg"):  # the usual mode of a new file
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written


def test_resume_keeps_finished_videos_and_redoes_cut_ones(tmp_path):
    from maskdetect.detect.log import finished_records, part_path

    log = tmp_path / "detections.jsonl"
    lines = [
        {"path": "done.mp4", "frame": 0, "faces": []}, {"path": "done.mp4", "frames": 1},
        {"path": "cut.mp4", "frame": 0, "faces": []},  # killed before its summary
        {"path": "bad.jpg", "error": "bad.jpg: empty file (0 bytes)"},
        {"path": "camera:0", "frame": 0, "faces": []},
    ]
    part_path(log).write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = finished_records(log)
    assert list(done) == ["done.mp4"] and len(done["done.mp4"]) == 2


def test_export_command_writes_onnx(tmp_path, untrained_checkpoint, capsys):
    import onnxruntime as ort

    args = ["--checkpoint", str(untrained_checkpoint), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]
    assert main(["export", *args]) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.run(None, {"input": np.zeros((3, 3, 64, 64), np.float32)})[0].shape == (3, 3)


def _voc_set(root, faces, scale=1.0):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "annotations").mkdir()
    photo = Image.fromarray(astronaut())
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    photo.save(root / "JPEGImages" / "astro.jpg")
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>" for name, b in faces
    )
    xml = f"<annotation><filename>other.jpg</filename>{objects}</annotation>"
    (root / "annotations" / "astro.xml").write_text(xml)


def test_evaluate_detect_counts_found_and_missed_faces(tmp_path, untrained_checkpoint, capsys):
    # The astronaut's face (found) and a made-up small face on her suit (missed).
    _voc_set(tmp_path / "voc", [("without_mask", (180, 80, 270, 190)), ("with_mask", (380, 400, 400, 420))])
    report_path = tmp_path / "report.json"
    checkpoint = str(untrained_checkpoint)
    args = ["evaluate-detect", str(tmp_path / "voc"), "--model", checkpoint, "-o", str(report_path),
            "--face-threshold", "0.6"]  # only the face, not the two weak look-alikes on her suit
    assert main(args) == 0
    report = json.loads(report_path.read_text())
    assert (report["model"], report["face_threshold"]) == (checkpoint, 0.6)
    assert report["candidate_threshold"] is None
    assert "checkpoint" not in report and "threshold" not in report
    assert report["faces"] == 2 and report["matched"] == 1 and report["recall"] == 0.5
    assert report["recall_by_size"]["16-32"] == {"faces": 1, "recall": 0.0}
    assert report["recall_by_size"][">=64"] == {"faces": 1, "recall": 1.0}
    assert report["recall_32px_and_more"] == 1.0 and report["precision"] == 1.0
    assert report["recall_iou_0.3"] == 0.5 and report["box_fit"]["pairs"] == 1
    assert report["classification"]["faces"] == 1
    assert report["classification"]["per_class"]["uncovered"]["support"] == 1
    capsys.readouterr()
    haar = ["evaluate-detect", str(tmp_path / "voc"), "--detection-only", "--detector", "haar"]
    assert main(haar) == 0
    assert json.loads(capsys.readouterr().out)["matched"] == 1
    (tmp_path / "only.txt").write_text("file\nastro.jpg\n")
    assert main([*haar, "--only", str(tmp_path / "only.txt")]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1
    (tmp_path / "only.txt").write_text("someone-else.jpg\n")
    assert main([*haar, "--only", str(tmp_path / "only.txt")]) == 2
    assert "no usable VOC annotations" in capsys.readouterr().err
    assert main(["evaluate-detect", str(tmp_path / "voc"), "--detection-only", "--raw-boxes"]) == 0
    assert json.loads(capsys.readouterr().out)["raw_boxes"] is True
    only = ["evaluate-detect", str(tmp_path / "voc"), "--detection-only"]
    assert main([*only, "--raw-boxes", "--detector", "haar"]) == 2
    assert "--raw-boxes needs a BlazeFace detector" in capsys.readouterr().err


def test_evaluate_detect_writes_a_sheet_of_the_faces_it_missed(tmp_path, capsys):
    # Her face is found; a made-up 40 px "face" on the suit is not: the sheet shows that one alone.
    _voc_set(tmp_path / "voc", [("without_mask", (180, 80, 270, 190)), ("with_mask", (360, 400, 400, 440))])
    sheet = tmp_path / "missed.png"
    args = ["evaluate-detect", str(tmp_path / "voc"), "--detection-only", "--detector", "haar",
            "--missed-sheet", str(sheet)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["missed_sheet"] == str(sheet)
    with open(sheet.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["x0"], r["label"]) for r in rows] == [("360.0", "covered")]
    assert Image.open(sheet).format == "PNG"


def test_evaluate_detect_sweeps_thresholds_from_one_run(tmp_path, capsys):
    # BlazeFace's photo detector finds the astronaut's face (0.94) and weak look-alikes on her suit
    # (0.4-0.5).
    _voc_set(tmp_path / "voc", [("without_mask", (180, 80, 270, 190))])
    only = ["evaluate-detect", str(tmp_path / "voc"), "--detection-only", "--detector", "blazeface"]
    assert main([*only, "--sweep", "0.6,0.3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["face_threshold"] == 0.3  # one run, at the lowest
    assert report["model"] is None  # detection only: no classifier
    low, high = report["sweep"]
    assert low["threshold"] == 0.3 and low["detections"] >= 2 and low["recall"] == 1.0
    assert (high["threshold"], high["detections"], high["recall"], high["precision"]) == (0.6, 1, 1.0, 1.0)
    assert main([*only, "--face-threshold", "0.3"]) == 0  # the same as a run at that threshold
    assert json.loads(capsys.readouterr().out)["precision"] == low["precision"]
    assert main([*only, "--sweep", "0.6", "--face-threshold", "0.5"]) == 2
    assert "leave --face-threshold out" in capsys.readouterr().err
    for bad in ("0.5,high", "0.5,1.5"):
        with pytest.raises(SystemExit):
            main([*only, "--sweep", bad])
        assert "--sweep" in capsys.readouterr().err


def test_evaluate_detect_against_a_second_annotation(tmp_path, capsys):
    # A second annotator labelled a half-size copy: the same face (scaled), another label, a box
    # drawn looser (IoU 0.44 with the first one's), and a face the first one never drew.
    _voc_set(tmp_path / "a", [("without_mask", (180, 80, 270, 190)), ("with_mask", (300, 300, 360, 360))])
    second = [("mask_weared_incorrect", (90, 40, 135, 95)), ("with_mask", (145, 145, 190, 190)),
              ("with_mask", (10, 10, 40, 40))]
    _voc_set(tmp_path / "b", second, scale=0.5)
    (tmp_path / "pairs.tsv").write_text("mine\ttheirs\nastro.jpg\tastro.jpg\n")
    args = ["evaluate-detect", str(tmp_path / "a"), "--against", str(tmp_path / "b"), "--pairs",
            str(tmp_path / "pairs.tsv")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 1 and report["faces"] == 2 and report["matched"] == 1
    assert report["precision"] == round(1 / 3, 4) and report["recall_iou_0.3"] == 1.0
    assert report["classification"]["confusion"]["rows_truth_columns_predicted"][2] == [0, 1, 0]
    assert main(args[:2] + ["--against", str(tmp_path / "b")]) == 2
    assert "--against and --pairs go together" in capsys.readouterr().err
    (tmp_path / "pairs.tsv").write_text("somebody.jpg\tastro.jpg\n")
    assert main(args) == 2
    assert "no pair names a photo of both" in capsys.readouterr().err


def test_evaluate_detect_on_a_folder_that_is_not_voc(tmp_path, capsys):
    assert main(["evaluate-detect", str(tmp_path), "--detection-only"]) == 2
    assert "annotations/" in capsys.readouterr().err


def test_draw_results_colours_each_class():
    faces = [
        FaceResult((10 + 60 * i, 40, 50 + 60 * i, 90), name, 0.9, {name: 0.9}, 1.0)
        for i, name in enumerate(CLASSES)
    ]
    picture = draw_results(Image.new("RGB", (200, 120), "white"), faces)
    for i, name in enumerate(CLASSES):
        assert picture.getpixel((10 + 60 * i, 70)) == CLASS_COLOURS[name]


def _label_height(picture, face):
    # Rows of the label's colour straight above the box's left edge: the label's height.
    x0, y0 = (round(v) for v in face.box[:2])
    colour, rows, y = CLASS_COLOURS[face.label], 0, y0 - 1
    while y >= 0 and picture.getpixel((x0 + 1, y)) == colour:
        rows, y = rows + 1, y - 1
    return rows


def test_labels_follow_the_photo_but_never_bury_a_small_face():
    big_face = FaceResult((400, 400, 800, 900), "covered", 0.9, {"covered": 0.9}, 1.0)
    small_face = FaceResult((2000, 2000, 2024, 2028), "uncovered", 0.9, {"uncovered": 0.9}, 1.0)
    picture = draw_results(Image.new("RGB", (4000, 3000), "white"), [big_face, small_face])
    assert _label_height(picture, big_face) >= 4000 / 60  # readable on the whole photo
    assert _label_height(picture, small_face) <= 28 * 1.2  # no taller than the face it names


def test_a_label_moves_rather_than_cover_its_neighbours_label():
    # Two faces side by side: the left one's label, wider than its face, reaches over the spot above
    # the right one, whose label goes below its box instead of on top of it (tests/test_draw_labels.py
    # checks a crowd).
    left = FaceResult((20, 40, 60, 90), "covered", 0.91, {"covered": 0.91}, 1.0)
    right = FaceResult((64, 40, 104, 90), "uncovered", 0.88, {"uncovered": 0.88}, 1.0)
    picture = draw_results(Image.new("RGB", (200, 120), "white"), [left, right])
    above_right = (66, 32)  # inside the left label's band, over the right face's left edge
    assert picture.getpixel(above_right) == CLASS_COLOURS["covered"]
    assert picture.getpixel((68, 94)) == CLASS_COLOURS["uncovered"]  # the right label, below its box


class FakeCamera:
    """Stands in for cv2.VideoCapture(index): three frames of the astronaut, then nothing."""

    def __init__(self, source):
        self.left = 3 if source == 0 else 0

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return self.left > 0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        frame = np.asarray(Image.fromarray(astronaut()).resize((320, 320)))
        return True, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)

    def release(self):
        self.left = 0

    def get(self, prop):
        return 0.0  # like a camera that reports no frame rate


def test_camera_without_a_display_writes_annotated_frames(tmp_path, untrained_checkpoint, monkeypatch):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out"
    args = ["detect", "--camera", "0", "--model", str(untrained_checkpoint), "--out", str(out)]
    assert main(args) == 0
    frames = sorted((out / "camera").glob("frame_*.jpg"))
    assert [f.name for f in frames] == ["frame_000000.jpg", "frame_000001.jpg", "frame_000002.jpg"]
    *records, last = _read_jsonl(out / "detections.jsonl")
    assert [r["frame"] for r in records] == [0, 1, 2] and all(len(r["faces"]) == 1 for r in records)
    # The camera stopped: the one face is one track, written with a note that says so.
    assert "camera stopped delivering frames after 3 frames" in last["note"]
    assert [r["faces"][0]["track_id"] for r in records] == [-1, 1, 1]  # confirmed on its second frame
    assert _read_jsonl(out / "camera-0.tracks.jsonl")[0]["frames_seen"] == 3


def test_voc_annotation_errors_name_the_file_and_a_bad_coordinate_skips_only_its_face(tmp_path):
    from maskdetect.data.voc_set import load_voc_faces

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    Image.new("RGB", (50, 50)).save(tmp_path / "images" / "a.jpg")

    def write(name: str, objects: list[tuple[str, str]]) -> None:
        body = "".join(
            f"<object><name>{label}</name><bndbox><xmin>{x0}</xmin><ymin>1</ymin><xmax>20</xmax>"
            f"<ymax>20</ymax></bndbox></object>"
            for label, x0 in objects
        )
        xml = f"<annotation><filename>a.jpg</filename>{body}</annotation>"
        (tmp_path / "annotations" / name).write_text(xml)

    write("a.xml", [("with_mask", "two"), ("without_mask", "2")])
    image, faces = load_voc_faces(tmp_path / "annotations" / "a.xml", tmp_path / "images")
    assert image.name == "a.jpg" and faces == [((2.0, 1.0, 20.0, 20.0), "uncovered")]
    write("a.xml", [("no_such_label", "2")])
    with pytest.raises(ValueError, match=r"a\.xml: unknown label 'no_such_label'"):
        load_voc_faces(tmp_path / "annotations" / "a.xml", tmp_path / "images")


def test_a_video_run_that_fails_midway_leaves_no_partial_file(tmp_path):
    from maskdetect.detect.media import annotate_video
    from maskdetect.results import ImageResult

    frames = [np.asarray(Image.fromarray(astronaut()).resize((160, 120))) for _ in range(4)]
    _write_video(tmp_path / "clip.mp4", frames)

    class FailingPredictor:
        calls = 0

        def predict(self, rgb):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("model fault")
            return ImageResult([], rgb.shape[1], rgb.shape[0], image=Image.fromarray(rgb))

    out = tmp_path / "out"
    job = Job(tmp_path / "clip.mp4", Path("clip.mp4"), "video")
    records = annotate_video(FailingPredictor(), job, out)
    with pytest.raises(RuntimeError, match="model fault"):
        list(records)
    assert sorted(p.name for p in out.rglob("*")) == []


def test_a_folder_entry_that_is_no_file_is_reported_with_its_reason(tmp_path, untrained_checkpoint):
    from maskdetect.detect.media import DetectSummary, detect_files
    from maskdetect.predict import Predictor

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut()).resize((128, 128)).save(photos / "a.jpg")
    (photos / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")  # a dangling link
    os.mkfifo(photos / "pipe.png")  # would block a reader forever
    (photos / "folder.jpg").mkdir()
    (photos / "folder.jpg" / "inside.jpg").write_bytes(b"")
    predictor = Predictor(untrained_checkpoint, detector="haar")
    summary = detect_files(predictor, [photos], tmp_path / "out", images=False)
    assert isinstance(summary, DetectSummary)
    reasons = {Path(line.split(": ")[0]).name: line.split(": ", 1)[1] for line in summary.failures}
    assert reasons == {"gone.jpg": "a link to nothing", "pipe.png": "not a regular file",
                       "folder.jpg": "a folder, not a file", "inside.jpg": "empty file (0 bytes)"}
    assert summary.records == 5 and summary.annotated == 0  # each entry left out is a failed record too
    assert summary.jsonl == tmp_path / "out" / "detections.jsonl"
    assert sorted(summary.counts) == sorted(CLASSES)


def test_detect_files_is_the_library_call_and_frames_are_image_results(tmp_path, untrained_checkpoint):
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    face = np.asarray(Image.fromarray(astronaut()).resize((160, 160)))
    _write_video(tmp_path / "clip.mp4", [face] * 3)
    Image.fromarray(face).save(tmp_path / "a.png")
    predictor = Predictor(untrained_checkpoint, face_threshold=0.6)
    video = predictor.with_detector("blazeface-fast", face_threshold=0.6)
    inputs = [tmp_path / "a.png", tmp_path / "clip.mp4"]
    summary = detect_files(predictor, inputs, tmp_path / "out", workers=1, video_predictor=video)
    assert summary.failures == [] and summary.records == 5 and summary.annotated == 2
    assert sum(summary.counts.values()) == 4  # her face in the photo and in each of the 3 frames
    records = _read_jsonl(summary.jsonl)
    photo = predictor.predict(tmp_path / "a.png").to_dict()
    assert records[0] == {**photo, "annotated": str(tmp_path / "out" / "a.png")}
    frame = records[1]
    assert list(frame) == ["path", "frame", "width", "height", "faces"]
    assert (frame["path"], frame["frame"], frame["width"], frame["height"]) == (str(inputs[1]), 0, 160, 160)


def test_evaluate_detection_is_the_library_call_behind_the_command(tmp_path, capsys):
    from maskdetect.evaluation.detection import EvaluateDetectOptions, annotator_agreement, evaluate_detection
    from maskdetect.options import ModelOptions

    _voc_set(tmp_path / "voc", [("without_mask", (180, 80, 270, 190))])
    options = EvaluateDetectOptions(model=ModelOptions(detector="haar"), detection_only=True,
                                    sweep=(0.6, 0.3))
    report = evaluate_detection(tmp_path / "voc", options)
    assert main(["evaluate-detect", str(tmp_path / "voc"), "--detection-only", "--detector", "haar",
                 "--sweep", "0.6,0.3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert report.pop("seconds") >= 0 and printed.pop("seconds") >= 0
    assert list(report) == list(printed) and report == {**printed, "voc_dir": str(tmp_path / "voc")}
    with pytest.raises(ValueError, match="leave --face-threshold out"):
        evaluate_detection(tmp_path / "voc", EvaluateDetectOptions(model=ModelOptions(face_threshold=0.5),
                                                                   sweep=(0.6,)))
    agreement = annotator_agreement(tmp_path / "voc", tmp_path / "voc", [("astro.jpg", "astro.jpg")])
    assert (agreement["recall"], agreement["precision"], agreement["pairs"]) == (1.0, 1.0, 1)
