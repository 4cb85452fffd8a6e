"""A video read with the detector one frame ahead (`VideoAnalyzer.process_frames`): the answers of
one frame at a time, a real overlap, and nothing left reading the source after a stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskdetect.detect.video import VideoAnalyzer
from maskdetect.results import FaceResult, ImageResult

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "maskdetect" / "assets" / "sample" / "andrewmvd"


def _panned(name: str, count: int) -> list[np.ndarray]:
    photo = Image.open(SAMPLE / "images" / name).convert("RGB")
    return [np.asarray(photo.crop((4 * i, 0, 4 * i + 320, 240)).resize((640, 480), Image.BILINEAR))
            for i in range(count)]


def _answers(steps) -> list[list[tuple]]:
    return [[(tracked.face.box, tracked.face.label, tracked.face.score, tracked.track_id, tracked.label)
             for tracked in faces] for _, faces in steps]


def test_overlapped_frames_give_the_answers_of_one_frame_at_a_time():
    # The bundled video path on a crowd panned across: every box, label, track and verdict alike.
    from maskdetect.predict import Predictor

    frames = _panned("maksssksksss110.jpg", 16)
    video = Predictor().video_twin()
    alone, ahead = VideoAnalyzer(video, overlap=False), VideoAnalyzer(video)
    one_by_one = _answers(alone.process_frames(frames))
    overlapped = _answers(ahead.process_frames(frames))
    assert sum(map(len, one_by_one)) > 16 * 5  # a crowd, not an empty clip
    assert overlapped == one_by_one
    verdicts = [[(t.track_id, t.verdict) for t in analyzer.tracks()] for analyzer in (alone, ahead)]
    assert verdicts[0] == verdicts[1] and verdicts[0]


class _Handshake:
    """A predictor whose `judge` of frame N waits until `find` has begun frame N + 1: it can only
    finish when the two run at once."""

    def __init__(self, frames: int, find_delay: float = 0.0):
        self.started = [threading.Event() for _ in range(frames + 1)]
        self.found: list[int] = []
        self.find_delay = find_delay
        self.threads: set[str] = set()

    def find(self, rgb: np.ndarray) -> tuple[int, np.ndarray]:
        index = int(rgb[0, 0, 0])
        self.started[index].set()
        self.threads.add(threading.current_thread().name)
        time.sleep(self.find_delay)
        self.found.append(index)
        return index, rgb

    def judge(self, found: tuple[int, np.ndarray]) -> ImageResult:
        index, rgb = found
        last = len(self.started) - 2
        if index < last and not self.started[index + 1].wait(timeout=10):
            raise AssertionError(f"frame {index + 1} was not being found while frame {index} was judged")
        face = FaceResult((10.0, 10.0, 40.0, 40.0), "covered", 0.9,
                          {"covered": 0.9, "incorrect": 0.05, "uncovered": 0.05}, 0.9)
        return ImageResult([face], rgb.shape[1], rgb.shape[0])

    def predict(self, rgb: np.ndarray) -> ImageResult:
        return self.judge(self.find(rgb))


def _numbered(count: int) -> list[np.ndarray]:
    return [np.full((60, 80, 3), index, np.uint8) for index in range(count)]


def test_the_next_frame_is_found_while_this_one_is_classified():
    predictor = _Handshake(6)
    analyzer = VideoAnalyzer(predictor)
    steps = list(analyzer.process_frames(_numbered(6)))
    assert len(steps) == 6 and predictor.found == list(range(6))
    assert all(name.startswith("maskdetect-find") for name in predictor.threads)
    assert [f.track_id for _, faces in steps for f in faces][1:] == [1] * 5  # one track throughout
    with pytest.raises(AssertionError, match="was not being found"):  # one at a time cannot pass
        list(VideoAnalyzer(_Handshake(3), overlap=False).process_frames(_numbered(3)))


def test_stopping_early_waits_for_the_frame_read_ahead():
    predictor = _Handshake(10, find_delay=0.2)
    steps = VideoAnalyzer(predictor).process_frames(_numbered(10))
    next(steps)  # frame 0 judged; frame 1 is being found
    steps.close()
    assert predictor.found == [0, 1]  # frame 1 was finished before close returned, and none after it
    time.sleep(0.3)
    assert predictor.found == [0, 1]


def test_an_error_in_the_frame_read_ahead_reaches_the_caller():
    class Broken(_Handshake):
        def find(self, rgb):
            if rgb[0, 0, 0] == 2:
                self.started[2].set()
                raise ValueError("frame 2 is broken")
            return super().find(rgb)

    steps = VideoAnalyzer(Broken(5)).process_frames(_numbered(5))
    with pytest.raises(ValueError, match="frame 2 is broken"):
        list(steps)


def test_a_video_stopped_by_its_viewer_ends_there_and_is_not_said_to_have_ended_early(tmp_path):
    # `show` returning False (q pressed) ends the run at that frame, though the next was read ahead.
    path = tmp_path / "five.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for frame in _numbered(5):
        writer.write(frame)
    writer.release()

    class Counting(_Handshake):
        def find(self, rgb):
            self.found.append(len(self.found))
            return len(self.found) - 1, rgb

        def judge(self, found):
            rgb = found[1]
            return ImageResult([], rgb.shape[1], rgb.shape[0], image=Image.fromarray(rgb))

    predictor = Counting(5)
    stop_at_2 = lambda drawn, frame: False if frame == 2 else None  # noqa: E731
    records = list(VideoAnalyzer(predictor).run(path, show=stop_at_2))
    *frames, summary = records
    assert [r["frame"] for r in frames] == [0, 1, 2] and summary["frames"] == 3
    assert "warning" not in summary and "note" not in summary
    assert len(predictor.found) == 4  # frame 3 was found ahead, and nothing after the stop


def test_the_video_twin_leaves_the_detector_a_core():
    from maskdetect.options import usable_cores
    from maskdetect.predict import Predictor

    photo = Predictor()
    video = photo.video_twin()
    assert video.options.classifier_threads == max(1, usable_cores() - 1)
    assert video.detector.name == photo.bundle.video_detector
    set_by_user = Predictor(classifier_threads=3)
    assert set_by_user.video_twin().classifier is set_by_user.classifier  # asked for: shared as it is
