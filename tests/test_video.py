"""Videos as a user runs them: tracked people, their files, a browser-playable mp4, a stream URL
served on 127.0.0.1, and inputs that end early."""

from __future__ import annotations

import http.server
import json
import logging
import struct
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from maskdetect.cli import main


def _walking_frames(count: int = 10) -> list[np.ndarray]:
    # The astronaut's face crossing a 320x240 frame: a crop window sliding over the photo.
    photo = np.asarray(Image.fromarray(astronaut()).resize((480, 480)))
    return [np.ascontiguousarray(photo[20:260, 10 + 6 * i: 330 + 6 * i]) for i in range(count)]


def _write_video(path, frames, fourcc="mp4v", fps=10):
    size = (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detect_a_video_tracks_one_person_and_writes_a_browser_mp4(tmp_path, untrained_checkpoint, capsys):
    _write_video(tmp_path / "walk.mp4", _walking_frames(10))
    out = tmp_path / "out"
    args = ["detect", str(tmp_path / "walk.mp4"), "--model", str(untrained_checkpoint), "-o", str(out)]
    assert main(args) == 0
    assert "people in videos by verdict" in capsys.readouterr().out
    *frames, summary = _read_jsonl(out / "detections.jsonl")
    assert [r["frame"] for r in frames] == list(range(10)) and all(len(r["faces"]) == 1 for r in frames)
    assert {r["faces"][0]["track_id"] for r in frames[1:]} == {1}  # one person, one id
    assert summary["people_total"] == 1 and sum(summary["people"].values()) == 1
    assert summary["codec"].startswith("h264")
    (track,) = _read_jsonl(out / "walk.tracks.jsonl")
    assert track["frames_seen"] == 10 and track["counted"] and track["verdict"] in summary["people"]
    assert Image.open(track["thumbnail"]).size[0] > 10
    people = json.loads((out / "walk.summary.json").read_text())
    assert people["people"] == summary["people"] and people["frames"] == 10
    header = (out / "walk.timeline.csv").read_text().splitlines()[0]
    assert header == "second,covered,incorrect,uncovered,total"
    assert Image.open(out / "walk.timeline.png").format == "PNG"
    # Browsers play H.264 (yuv420p) in mp4 with the moov atom first (faststart).
    with av.open(str(out / "walk.annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 10
    data = (out / "walk.annotated.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_no_tracking_labels_frames_alone(tmp_path, untrained_checkpoint):
    _write_video(tmp_path / "walk.mp4", _walking_frames(4))
    out = tmp_path / "out"
    args = ["detect", str(tmp_path / "walk.mp4"), "--model", str(untrained_checkpoint), "-o", str(out),
            "--no-tracking", "--no-images"]
    assert main(args) == 0
    *frames, summary = _read_jsonl(out / "detections.jsonl")
    assert all(face["track_id"] == -1 for r in frames for face in r["faces"])
    assert "people" not in summary and not (out / "walk.tracks.jsonl").exists()


def test_without_h264_the_video_falls_back_to_mp4v_and_says_so(tmp_path, untrained_checkpoint, monkeypatch,
                                                               caplog):
    from maskdetect.detect import video_out
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.predict import Predictor

    monkeypatch.setattr(video_out, "h264_encoder", lambda: None)
    _write_video(tmp_path / "walk.mp4", _walking_frames(3))
    analyzer = VideoAnalyzer(Predictor(untrained_checkpoint).with_detector("blazeface-fast"))
    with caplog.at_level(logging.WARNING):
        report = analyzer.analyze(tmp_path / "walk.mp4", out=tmp_path / "out")
    assert "writing mp4v, which browsers do not play" in caplog.text
    capture = cv2.VideoCapture(report.files["annotated"])
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_the_python_api_gives_the_tracks(tmp_path, untrained_checkpoint):
    import maskdetect

    _write_video(tmp_path / "walk.mp4", _walking_frames(8))
    predictor = maskdetect.Predictor(untrained_checkpoint).with_detector("blazeface-fast")
    report = maskdetect.VideoAnalyzer(predictor).analyze(tmp_path / "walk.mp4")
    assert report.frames == 8 and report.files == {} and report.ended == ""
    (track,) = report.tracks
    assert track.frames_seen == 8 and report.summary["people_total"] == 1
    with pytest.raises(FileNotFoundError, match="nothing.mp4: not a video OpenCV can open"):
        maskdetect.VideoAnalyzer(predictor).analyze(tmp_path / "nothing.mp4")


def test_a_truncated_video_writes_its_tracks_so_far(tmp_path, untrained_checkpoint):
    _write_video(tmp_path / "cut.avi", _walking_frames(12), fourcc="MJPG")
    data = (tmp_path / "cut.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    args = ["detect", str(tmp_path / "cut.avi"), "--model", str(untrained_checkpoint), "--out", str(out)]
    assert main(args) == 1  # ended early: a warning
    summary = _read_jsonl(out / "detections.jsonl")[-1]
    assert "ended early" in summary["warning"] and "the tracks so far are written" in summary["warning"]
    (track,) = _read_jsonl(out / "cut.tracks.jsonl")
    assert track["frames_seen"] == summary["frames"] < 12


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    frames: list[bytes] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpeg in self.frames:  # then the stream stops, as a camera server that goes away
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            self.wfile.write(jpeg + b"\r\n")

    def log_message(self, *args):
        pass


def test_a_stream_url_served_on_localhost_is_tracked_until_it_stops(tmp_path, untrained_checkpoint):
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    _MjpegHandler.frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
                            for f in _walking_frames(12)]  # 0.48 s at 25 frames/s: a person
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg"
        predictor = Predictor(untrained_checkpoint)
        summary = detect_files(predictor, [url], tmp_path / "out", video_predictor=predictor.with_detector(
            "blazeface-fast"))
    finally:
        server.shutdown()
        server.server_close()
    *frames, last = _read_jsonl(summary.jsonl)
    assert len(frames) == 12 and all(r["path"] == url for r in frames)
    assert "the stream stopped after 12 frames; the tracks so far are written" in last["note"]
    assert summary.failures == [] and sum(summary.people.values()) == 1
    assert (tmp_path / "out" / "127.0.0.1_" f"{server.server_address[1]}_cam.mjpg.tracks.jsonl").exists()
    assert (tmp_path / "out" / f"127.0.0.1_{server.server_address[1]}_cam.mjpg.annotated.mp4").exists()


def test_an_unreachable_stream_is_a_clear_error(tmp_path, untrained_checkpoint):
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/none.mjpg"
    summary = detect_files(Predictor(untrained_checkpoint), [url], tmp_path / "out")
    assert summary.failures == [f"{url}: not a video OpenCV can open (missing, corrupt, unknown format, "
                                "unreachable stream)"]


class socket_closed_port:  # noqa: N801 (a context manager named as a phrase)
    """A port on 127.0.0.1 that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_the_first_frame_says_its_faces_are_in_view_before_any_is_counted_as_a_person(tmp_path):
    # Issue 29: the first annotated frame showed "people 0" beside 8 boxed faces. Now it says the 8
    # are in view and too new to count; once their tracks are long enough (0.4 s) they are people,
    # as many as the summary says.
    from maskdetect.detect.timeline import summarise_tracks
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.results import FaceResult, ImageResult

    boxes = [(10 + 38 * i, 60, 40 + 38 * i, 100) for i in range(8)]

    class EightFaces:  # a predictor that finds the same 8 faces in every frame
        def predict(self, rgb):
            probabilities = {"covered": 0.9, "incorrect": 0.05, "uncovered": 0.05}
            faces = [FaceResult(box, "covered", 0.9, probabilities, 0.9) for box in boxes]
            return ImageResult(faces, rgb.shape[1], rgb.shape[0], image=Image.fromarray(rgb))

    analyzer = VideoAnalyzer(EightFaces())
    analyzer.start(10.0)  # 0.4 s: a track counts from its 4th frame
    frame = np.zeros((160, 320, 3), np.uint8)
    texts = []
    for index in range(6):
        result, faces = analyzer.process(frame, index)
        texts.append(analyzer.overlay_text(faces))
        drawn = analyzer.draw(result, faces)
    assert texts[0] == ("in view 8 faces (8 too new to count) | people so far 0: 0 covered, 0 incorrect, "
                        "0 uncovered")
    assert texts[-1] == "in view 8 faces | people so far 8: 8 covered, 0 incorrect, 0 uncovered"
    assert summarise_tracks(analyzer.tracks(), analyzer.options, 6, 10.0)["people_total"] == 8
    drawn.save(tmp_path / "last.png")
    assert drawn.getpixel((1, 1)) == (20, 20, 20)  # the counts' strip, split in two lines on a narrow frame


def _avi_claiming(path, width, height, frames=3):
    # A 16x16 MJPEG AVI whose headers (AVI and each JPEG's) claim width x height: a 6 KB file that
    # OpenCV opens as width x height, as it did the 3 MB AVI of real 16000x16000 frames.
    _write_video(path, [np.full((16, 16, 3), 100, np.uint8)] * frames, fourcc="MJPG")
    data = bytearray(path.read_bytes())
    avih, strf = data.index(b"avih") + 8, data.index(b"strf") + 8
    data[avih + 32: avih + 40] = struct.pack("<II", width, height)
    data[strf + 4: strf + 12] = struct.pack("<ii", width, height)
    at = 0
    while (at := data.find(b"\xff\xc0\x00\x11\x08", at)) >= 0:  # each frame's SOF0: height, width
        data[at + 5: at + 9] = struct.pack(">HH", height, width)
        at += 9
    path.write_bytes(bytes(data))


def test_a_video_of_frames_over_the_pixel_limit_is_refused_before_decoding(tmp_path, untrained_checkpoint):
    # Issue 31: a 3 MB AVI of 16000x16000 MJPEG frames reached 4.4 GB, then exit 2. The declared frame
    # size is checked against the images' pixel limit before the first frame is decoded.
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.predict import Predictor

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    _avi_claiming(inputs / "huge.avi", 16000, 16000)
    Image.new("RGB", (320, 240), (120, 120, 120)).save(inputs / "plain.jpg")
    out = tmp_path / "out"
    assert main(["detect", str(inputs), "--model", str(untrained_checkpoint), "-o", str(out)]) == 1
    records = {r["path"].split("/")[-1]: r for r in _read_jsonl(out / "detections.jsonl")}
    assert records["huge.avi"]["error"].endswith(
        "huge.avi: frames of 16000x16000 = 256,000,000 pixels are over the limit of 250,000,000: "
        "refused before decoding")
    assert "error" not in records["plain.jpg"] and not list(out.glob("*huge*"))
    # The limit is the analyzer's: a real video over a lower one is refused before any frame.
    _write_video(tmp_path / "walk.mp4", _walking_frames(3))
    predictor = Predictor(untrained_checkpoint).with_detector("blazeface-fast")
    analyzer = VideoAnalyzer(predictor, max_pixels=10_000)
    report = analyzer.analyze(tmp_path / "walk.mp4", out=tmp_path / "walk-out")
    assert report.frames == 0 and "320x240 = 76,800 pixels are over the limit of 10,000" in report.ended
    assert not (tmp_path / "walk-out").exists() or not list((tmp_path / "walk-out").iterdir())


def test_frames_of_extreme_sizes_are_written_scaled_to_even_sides(tmp_path, untrained_checkpoint):
    # Issue 31: 65000x1 and 8x65000 frames crashed the H.264 writer (no even side of 0, no side over
    # 16384) and ended the run. They are written at 16384x2 and 2x16384.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for width, height in ((65000, 1), (8, 65000)):
        _write_video(inputs / f"v{width}x{height}.avi", [np.full((height, width, 3), 90, np.uint8)] * 3,
                     fourcc="MJPG")
    out = tmp_path / "out"
    assert main(["detect", str(inputs), "--model", str(untrained_checkpoint), "-o", str(out)]) == 0
    for name, size in (("v65000x1", (16384, 2)), ("v8x65000", (2, 16384))):
        with av.open(str(out / "inputs" / f"{name}.annotated.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and (stream.width, stream.height) == size
            assert sum(1 for _ in container.decode(stream)) == 3


def test_a_size_no_encoder_writes_leaves_the_annotated_video_out_not_the_run(tmp_path, untrained_checkpoint,
                                                                            monkeypatch):
    # Without H.264, mp4v writes no side over 8191: the frames are still detected, the video is a
    # warning (exit 1) and no partial file is left.
    from maskdetect.detect import video_out

    monkeypatch.setattr(video_out, "h264_encoder", lambda: None)
    _write_video(tmp_path / "wide.avi", [np.full((2, 9000, 3), 90, np.uint8)] * 3, fourcc="MJPG")
    out = tmp_path / "out"
    args = ["detect", str(tmp_path / "wide.avi"), "--model", str(untrained_checkpoint), "-o", str(out)]
    assert main(args) == 1
    *frames, summary = _read_jsonl(out / "detections.jsonl")
    assert len(frames) == 3 and summary["frames"] == 3 and "annotated" not in summary
    assert "neither H.264 nor mp4v can be written here at 9000x2" in summary["warning"]
    assert "the annotated video is left out" in summary["warning"]
    assert sorted(p.name for p in out.iterdir() if "mp4" in p.name) == []


def test_when_h264_refuses_a_size_the_writer_says_so_and_tries_mp4v(tmp_path, monkeypatch, caplog):
    from maskdetect.detect import video_out

    monkeypatch.setattr(video_out, "MAX_SIDE", 100_000)  # let 20000x2 reach libx264, which refuses it
    sink = video_out.VideoSink(tmp_path / "x.mp4", 10)
    with caplog.at_level(logging.WARNING), pytest.raises(video_out.VideoWriteError, match="20000x2"):
        sink.write(np.zeros((2, 20000, 3), np.uint8))
    assert "cannot write 20000x2 frames" in caplog.text and sink.codec == "mp4v"
    sink.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_video_whose_tracks_hold_nan_is_one_failed_input_and_the_next_video_is_done(tmp_path):
    # Issue 31.7: a score that is not finite (a model whose weights overflow) refused the tracks'
    # files, which ended the whole run; now that video is a failed input (exit 1) and the next one
    # is tracked and written.
    from maskdetect.detect.inputs import Job
    from maskdetect.detect.media import annotate_video
    from maskdetect.results import FaceResult, ImageResult

    class OneFace:  # the same face in every frame, scored `score`
        def __init__(self, score):
            self.score = score

        def predict(self, rgb):
            probabilities = {"covered": self.score, "incorrect": 0.05, "uncovered": 0.05}
            face = FaceResult((40, 40, 100, 110), "covered", self.score, probabilities, 0.9)
            return ImageResult([face], rgb.shape[1], rgb.shape[0], image=Image.fromarray(rgb))

    frames = _walking_frames(12)
    records = {}
    for name, score in (("bad", float("nan")), ("good", 0.9)):
        _write_video(tmp_path / f"{name}.mp4", frames)
        job = Job(tmp_path / f"{name}.mp4", Path(f"{name}.annotated.mp4"), "video")
        records[name] = list(annotate_video(OneFace(score), job, tmp_path / "out"))[-1]
    assert "not finite" in records["bad"]["error"] and "bad.tracks.jsonl" in records["bad"]["error"]
    assert not (tmp_path / "out" / "bad.tracks.jsonl").exists()
    assert "error" not in records["good"] and (tmp_path / "out" / "good.tracks.jsonl").is_file()


SAMPLE = Path(__file__).resolve().parents[1] / "src" / "maskdetect" / "assets" / "sample" / "andrewmvd"


def test_a_man_walking_in_with_his_mask_under_his_chin_is_judged_by_his_whole_face():
    # maksssksksss250.jpg, its left-most man (annotated incorrect: a black mask pulled under his
    # chin). The camera pans left slowly: for 24 frames the frame's edge cuts his face, and the
    # bundled video path sees no mask (uncovered); in the last 9 he is whole and it sees the mask.
    # Weighing every frame alike, the cut frames outvote the whole ones.
    from maskdetect.detect.tracks import TrackOptions
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.faces.nms import iou_matrix
    from maskdetect.predict import Predictor

    photo = Image.open(SAMPLE / "images" / "maksssksksss250.jpg").convert("RGB")
    lefts = list(range(50, 26, -1)) + list(range(24, -1, -3))
    frames = [np.asarray(photo.crop((x, 20, x + 160, 140)).resize((640, 480), Image.BILINEAR)) for x in lefts]
    video = Predictor().video_twin()

    def verdict(options: TrackOptions) -> str:
        analyzer = VideoAnalyzer(video, options)
        analyzer.start(25.0)
        for index, frame in enumerate(frames):
            _, faces = analyzer.process(frame, index)
        him = np.array([[26 * 4, (42 - 20) * 4, 59 * 4, (85 - 20) * 4]], float)  # in the last frame
        (track_id,) = [f.track_id for f in faces if iou_matrix(him, np.array([f.face.box]))[0, 0] >= 0.3]
        return {t.track_id: t for t in analyzer.tracks()}[track_id].verdict

    assert verdict(TrackOptions()) == "incorrect"
    assert verdict(TrackOptions(edge_weight=1.0)) == "uncovered"
