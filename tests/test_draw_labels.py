"""Issue 29: on a crowded photo no label hides another, and every label still carries its face number."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image

from maskdetect.data.voc_xml import VocPolicy, photo_index, read_photo
from maskdetect.draw import draw_results, layout_labels, place_labels
from maskdetect.labels import CLASS_COLOURS
from maskdetect.predict import FaceResult

SAMPLE = Path(__file__).resolve().parents[1] / "src/maskdetect/assets/sample/andrewmvd"


def _sample_faces(stem: str) -> tuple[Image.Image, list[FaceResult]]:
    # A shipped sample photo and its annotated faces, as the detector would report them.
    policy = VocPolicy()
    photo = read_photo(SAMPLE / "annotations" / f"{stem}.xml", photo_index(SAMPLE, policy), policy)
    faces = [FaceResult(tuple(face.box), face.label, 0.93, {face.label: 0.93}, 1.0) for face in photo.faces]
    return Image.open(photo.image), faces


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# The sample's three most crowded photos: 61, 53 and 51 faces in about 400x250 pixels each.
@pytest.mark.parametrize("stem", ["maksssksksss240", "maksssksksss260", "maksssksksss52"])
def test_no_label_hides_another_on_a_crowded_photo_and_each_keeps_its_face_number(stem: str) -> None:
    image, faces = _sample_faces(stem)
    assert len(faces) > 50
    labels = layout_labels(image.size, faces)
    assert len(labels) == len(faces)
    for (i, a), (j, b) in itertools.combinations(enumerate(labels), 2):
        assert not _overlap(a.rect, b.rect), f"labels of faces {i + 1} and {j + 1} overlap"
    for number, label in enumerate(labels, 1):
        assert label.text.split()[0] == str(number)
        x0, y0, x1, y1 = label.rect
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
    # And the picture shows them where the layout put them: each label's corner in its face's colour.
    drawn = draw_results(image, faces)
    for face, label in zip(faces, labels, strict=True):
        assert drawn.getpixel(label.rect[:2]) == CLASS_COLOURS[face.label]


def test_a_photo_with_room_keeps_whole_labels_and_a_crowd_gets_the_numbers() -> None:
    image, faces = _sample_faces("maksssksksss104")  # 8 faces
    labels = layout_labels(image.size, faces)
    assert [label.text for label in labels] == [f"{n} {face.label} 93%" for n, face in enumerate(faces, 1)]
    for a, b in itertools.combinations(labels, 2):
        assert not _overlap(a.rect, b.rect)
    image, faces = _sample_faces("maksssksksss110")  # 26 faces: whole labels would hide half of them
    assert [label.text for label in layout_labels(image.size, faces)] == [str(n) for n in range(1, 27)]


def test_labels_go_above_else_below_else_inside_else_to_the_nearest_free_spot() -> None:
    # One face at a time, where the canvas leaves each spot in turn.
    box = (40, 30, 80, 70)
    assert place_labels([box], [(30, 10)], (200, 200)) == [(40, 20, 70, 30)]  # above
    top = (40, 2, 80, 42)  # no room above: below
    assert place_labels([top], [(30, 10)], (200, 200)) == [(40, 42, 70, 52)]
    # A label wider than the canvas allows above and below: inside the box's top.
    full = (0, 0, 200, 200)
    assert place_labels([full], [(30, 10)], (200, 200)) == [(0, 0, 30, 10)]
    # Two faces at one spot: the second label moves to the nearest free place, against its box.
    spots = place_labels([box, box], [(30, 10), (30, 10)], (200, 200))
    assert spots[0] == (40, 20, 70, 30) and not _overlap(*spots)
    # Too far for a whole label: None, and layout_labels falls back to the face numbers.
    crowd = [(x, y, x + 12, y + 12) for x in range(0, 96, 14) for y in range(0, 96, 14)]
    assert None in place_labels(crowd, [(60, 12)] * len(crowd), (100, 100), near=2.0)
    faces = [FaceResult(b, "covered", 0.9, {"covered": 0.9}, 1.0) for b in crowd]
    labels = layout_labels((100, 100), faces)
    assert [label.text for label in labels] == [str(n) for n in range(1, len(faces) + 1)]


def test_a_label_moved_away_from_its_face_is_tied_to_it_by_a_line() -> None:
    # Twenty faces found at one spot of a thin strip: the labels ring the box, the outer ones with a
    # line back to it; none covers another.
    faces = [FaceResult((90, 10, 110, 30), "covered", 0.9, {"covered": 0.9}, 1.0) for _ in range(20)]
    labels = layout_labels((200, 40), faces)
    assert [label.text for label in labels] == [str(n) for n in range(1, 21)]
    assert labels[0].leader is None and labels[-1].leader is not None
    for a, b in itertools.combinations(labels, 2):
        assert not _overlap(a.rect, b.rect)
    x0, y0, x1, y1 = labels[-1].leader
    assert max(abs(x1 - x0), abs(y1 - y0)) <= 10  # a short line, from the label to the box's edge
