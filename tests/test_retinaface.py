"""RetinaFace: priors, decoding by hand, faces of real photos, awkward inputs, the registry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from maskdetect.data.voc_xml import read_annotation
from maskdetect.faces import retinaface
from maskdetect.faces.detector import DETECTORS, create_detector
from maskdetect.faces.nms import iou_matrix
from maskdetect.faces.retinaface import (
    RetinaFaceDetector,
    decode_boxes,
    decode_landmarks,
    load_weights,
    make_priors,
    nms_order,
)

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "maskdetect" / "assets" / "sample" / "andrewmvd"
ASTRONAUT_FACE = (180, 80, 270, 190)  # drawn by hand on skimage.data.astronaut(), as in test_faces.py


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector()


def test_priors_count_layout_and_order():
    priors = make_priors(480, 640)
    assert priors.shape == ((60 * 80 + 30 * 40 + 15 * 20) * 2, 4) == (12600, 4)
    # Stride 8 first, x fastest, two sizes per cell; then stride 16 (64, 128 px), then 32 (256, 512 px).
    np.testing.assert_allclose(priors[:4], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16], [12, 4, 32, 32]])
    np.testing.assert_allclose(priors[2 * 80], [4, 12, 16, 16])  # the second row of stride 8
    np.testing.assert_allclose(priors[9600], [8, 8, 64, 64])
    np.testing.assert_allclose(priors[-1], [632 - 8, 472 - 8, 512, 512])
    # A side that no stride divides rounds its cells up, as the graph does.
    assert make_priors(33, 17).shape == ((5 * 3 + 3 * 2 + 2 * 1) * 2, 4)
    with pytest.raises(ValueError, match="at least 1 x 1"):
        make_priors(0, 10)
    # Made once a size (a video's frames share one) and shared, so nobody may write into them.
    assert make_priors(480, 640) is priors and not priors.flags.writeable


def test_the_graph_gives_one_output_per_prior(detector):
    for height, width in [(64, 96), (480, 640), (96, 32)]:
        loc, conf, marks = detector._session.run(None, {"input": np.zeros((1, 3, height, width), np.float32)})
        assert loc.shape[1] == conf.shape[1] == marks.shape[1] == len(make_priors(height, width))
        assert (loc.shape[2], conf.shape[2], marks.shape[2]) == (4, 2, 10)


def test_box_decoding_by_hand():
    priors = np.array([[4.0, 4.0, 16.0, 16.0], [100.0, 50.0, 64.0, 64.0]])
    loc = np.array([[0.0, 0.0, 0.0, 0.0], [5.0, -2.5, np.log(2) / 0.2, 0.0]])
    # Centre moves by loc * 0.1 * side (64 px: +32, -16); width doubles (exp(0.2 * ln2 / 0.2) = 2).
    np.testing.assert_allclose(decode_boxes(loc, priors), [[-4, -4, 12, 12], [68, 2, 196, 66]])


def test_landmark_decoding_by_hand():
    priors = np.array([[10.0, 20.0, 32.0, 32.0]])
    raw = np.array([[1.0, 0.0, 0.0, 1.0, -1.0, -1.0, 2.5, 0.0, 0.0, 0.0]])
    marks = decode_landmarks(raw, priors)
    assert marks.shape == (1, 5, 2)
    # Each point is the prior's centre moved by raw * 0.1 * 32 px.
    np.testing.assert_allclose(marks[0], [[13.2, 20], [10, 23.2], [6.8, 16.8], [18, 20], [10, 20]])


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40], [0, 0, 10, 12]], float)
    assert nms_order(boxes, np.array([0.6, 0.9, 0.5, 0.8])).tolist() == [1, 2]
    with pytest.raises(ValueError, match="iou_threshold"):
        nms_order(boxes, np.ones(4), 0.0)


class _FakeSession:
    """A graph whose only sure face is one prior, with known offsets: the whole decoding path by hand."""

    def __init__(self, prior: int, loc: list[float], landmarks: list[float]):
        self.prior, self.loc, self.landmarks = prior, loc, landmarks
        self.inputs: list[np.ndarray] = []

    def run(self, names, feeds):
        tensor = feeds["input"]
        self.inputs.append(tensor)
        count = len(make_priors(*tensor.shape[2:]))
        loc, marks = np.zeros((1, count, 4), np.float32), np.zeros((1, count, 10), np.float32)
        conf = np.tile(np.array([0.99, 0.01], np.float32), (1, count, 1))
        loc[0, self.prior], marks[0, self.prior] = self.loc, self.landmarks
        conf[0, self.prior] = [0.1, 0.9]
        return [loc, conf, marks]


def test_candidates_decode_scale_frame_and_keep_landmarks():
    # A 320 x 160 photo at long side 640: scale 2, input 640 x 320 (already multiples of 32).
    # Prior 2 * (3 * 80 + 5) is the stride-8 cell (5, 3): centre (44, 28), 16 px; loc moves it by
    # (+8, -4) px and doubles its width: (36, 16)-(68, 32) in the input, (18, 8)-(34, 16) in the photo.
    session = _FakeSession(2 * (3 * 80 + 5), [5.0, -2.5, np.log(2) / 0.2, 0.0], [0.0] * 9 + [2.5])
    found = RetinaFaceDetector(640, framing=(0.0, 0.25, 0.5, 2.0))
    found._session = session
    result = found.candidates(Image.new("RGB", (320, 160), (200, 10, 30)))
    assert len(result) == 1 and result.scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(result.raw_boxes, [[18, 8, 34, 16]])
    # Framed: centre (26, 12) moves down 0.25 * 8 px, width halves, height doubles.
    np.testing.assert_allclose(result.boxes, [[22, 6, 30, 22]])
    np.testing.assert_allclose(result.landmarks[0, 0], [22, 14])
    np.testing.assert_allclose(result.landmarks[0, 4], [22, 16])  # y moved by 2.5 * 0.1 * 16 px / 2
    # The input is BGR minus the mean.
    tensor = session.inputs[0]
    assert tensor.shape == (1, 3, 320, 640)
    np.testing.assert_allclose(tensor[0, :, 0, 0], np.array([30, 10, 200]) - np.array(retinaface.MEAN_BGR))


def test_candidates_padding_and_photo_edges():
    # A 200 x 100 photo at long side 100: input 100 x 50, padded to 128 x 64. A face decoded in the
    # padding (centre x 116 of the input) is none of the photo's.
    session = _FakeSession(2 * (1 * 16 + 14), [0.0, 0.0, 0.0, 0.0], [0.0] * 10)
    found = RetinaFaceDetector(100)
    found._session = session
    result = found.candidates(Image.new("RGB", (200, 100)))
    assert session.inputs[0].shape == (1, 3, 64, 128)
    assert len(result) == 0 and result.boxes.shape == (0, 4) and result.landmarks.shape == (0, 5, 2)


def test_the_astronaut_and_her_landmarks(detector):
    found = detector.candidates(Image.fromarray(astronaut()))
    assert len(found) == 1 and found.scores[0] > 0.99
    assert iou_matrix(found.boxes, np.array([ASTRONAUT_FACE]))[0, 0] > 0.7
    x0, y0, x1, y1 = found.raw_boxes[0]
    eyes, nose, mouth = found.landmarks[0, :2], found.landmarks[0, 2], found.landmarks[0, 3:]
    assert ((found.landmarks[0, :, 0] > x0) & (found.landmarks[0, :, 0] < x1)).all()
    assert ((found.landmarks[0, :, 1] > y0) & (found.landmarks[0, :, 1] < y1)).all()
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # image-left first
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()


@pytest.mark.parametrize("stem", ["maksssksksss110", "maksssksksss647"])
def test_faces_of_a_sample_photo_match_its_annotation(detector, stem):
    annotation = read_annotation(SAMPLE / "annotations" / f"{stem}.xml")
    truth = np.array([o.box for o in annotation.objects if o.box is not None], float)
    truth = truth[np.sqrt((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])) >= 32]
    boxes, scores = detector.detect(Image.open(SAMPLE / "images" / annotation.filename))
    assert len(truth) >= 9 and len(boxes) == len(scores)
    assert (np.diff(scores) <= 0).all() and ((scores >= 0.5) & (scores <= 1)).all()
    found = (iou_matrix(truth, boxes).max(axis=1) >= 0.5).mean()
    assert found >= 0.9, f"{found:.2f} of {len(truth)} faces found at IoU 0.5"


@pytest.mark.parametrize("image", [
    Image.new("RGB", (1, 1), (128, 128, 128)),
    Image.new("RGB", (5000, 3), (128, 128, 128)),
    Image.new("RGB", (640, 480), (128, 128, 128)),
    Image.new("L", (300, 200), 90),
    Image.new("RGBA", (300, 200), (10, 200, 30, 0)),
], ids=["1x1", "sliver", "grey", "mode-L", "rgba"])
def test_awkward_images_give_empty_well_formed_answers(detector, image):
    found = detector.candidates(image)
    assert found.boxes.shape == (0, 4) and found.scores.shape == (0,) and found.landmarks.shape == (0, 5, 2)


def test_grey_and_rgba_photos_of_a_face_are_found(detector):
    face = Image.fromarray(astronaut())
    for image in [face.convert("L"), face.convert("RGBA")]:
        boxes, _ = detector.detect(image)
        assert len(boxes) == 1 and iou_matrix(boxes, np.array([ASTRONAUT_FACE]))[0, 0] > 0.7


def test_create_detector_builds_each_long_side():
    names = {"retinaface", "retinaface-480", "retinaface-640", "retinaface-960", "retinaface-1280"}
    assert names <= set(DETECTORS)
    default = create_detector("retinaface")
    assert default.name == "retinaface" and default.long_side == retinaface.DEFAULT_LONG_SIDE
    large = create_detector("retinaface-1280", threshold=0.7)
    assert large.name == "retinaface-1280" and large.long_side == 1280 and large.threshold == 0.7
    boxes, scores = large.detect(Image.fromarray(astronaut()))
    assert len(boxes) == 1 and scores[0] > 0.99
    with pytest.raises(ValueError, match="retinaface-960"):
        create_detector("retinaface-800")
    with pytest.raises(ValueError, match="between 0 and 1"):
        create_detector("retinaface", threshold=1.0)
    with pytest.raises(ValueError, match="long_side"):
        RetinaFaceDetector(long_side=8)


def test_the_weights_are_read_without_running_the_package():
    weights = load_weights()
    assert weights[:2] == b"\x08\x06" and len(weights) > 1_000_000  # an ONNX ModelProto, IR version 6
    assert "retinaface" not in sys.modules and "retinaface.weights" not in sys.modules


def test_the_video_path_finds_a_masked_face_under_a_cap_that_blazeface_fast_misses():
    # maksssksksss52.jpg: a man in a cap looking down, his mask on (52 px). BlazeFace's models give no
    # candidate for such turned masked faces; the video path's RetinaFace pass does (issue 30).
    from maskdetect.predict import Predictor

    photo = SAMPLE / "images" / "maksssksksss52.jpg"
    capped = np.array([[303, 147, 352, 203]], float)  # its annotation

    def found(predictor: Predictor) -> list:
        return [f for f in predictor.predict(photo).faces
                if iou_matrix(capped, np.array([f.box], float))[0, 0] >= 0.5]

    video = Predictor().video_twin()
    assert video.detector.name == "retinaface-480" and video.verifier is not None
    faces = found(video)
    assert len(faces) == 1 and faces[0].label == "covered"
    assert found(Predictor().with_detector("blazeface-fast")) == []



def test_mined_candidates_keep_their_landmarks_row_for_row():
    # bundler.candidates.mine_candidates records RetinaFace's landmarks beside each candidate (the
    # landmark verifier study reads them there).
    from maskdetect.bundler.candidates import mine_candidates
    from maskdetect.data.voc_set import voc_items
    from maskdetect.predict import Predictor

    predictor = Predictor(detector="retinaface-960")
    data = mine_candidates(predictor, voc_items(SAMPLE, only=["maksssksksss52", "maksssksksss647"]))
    assert data.landmarks is not None and data.landmarks.shape == (len(data.boxes), 5, 2)
    first = data.photo == data.photo[0]
    photo = Image.open(SAMPLE / "images" / "maksssksksss52.jpg")
    assert np.allclose(data.landmarks[first], predictor.detector.candidates(photo).landmarks)
