"""Videos as a user runs them: tracked people, their files, a browser-playable mp4, a stream URL
served on 127.0.0.1, and inputs that end early."""

from __future__ import annotations

import http.server
import json
import logging
import threading

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
