"""What a prediction returns: a `FaceResult` per face, an `ImageResult` per image.

Every interface writes these, and only these: `detect`'s JSON Lines, the REST API's answer and the web
page all come from `ImageResult.to_dict()`, and every annotated picture from `ImageResult.draw()`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from maskdetect.fileio import atomic_path
from maskdetect.labels import CLASSES


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, what it is, and how sure each stage was.

    Attributes:
        box: (x0, y0, x1, y1) pixels in the EXIF-rotated image.
        label: the most probable class, one of CLASSES.
        score: the probability of `label`.
        probabilities: every class's probability.
        detection_score: the face detector's confidence (1.0 for boxes given by the caller).

    >>> FaceResult((1, 2, 3, 4), "covered", 0.9, {"covered": 0.9}, 0.8).to_dict()["box"]
    [1.0, 2.0, 3.0, 4.0]
    """

    box: tuple[float, float, float, float]
    label: str
    score: float
    probabilities: dict[str, float]
    detection_score: float

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "label": self.label,
            "score": round(float(self.score), 5),
            "probabilities": {k: round(float(v), 5) for k, v in self.probabilities.items()},
            "detection_score": round(float(self.detection_score), 5),
        }


@dataclass
class ImageResult:
    """Every face found in one image, with the image's size (and its path when it came from a file).

    Attributes:
        faces: one `FaceResult` per face, in the detector's order.
        width, height: the size of the EXIF-rotated image the boxes refer to.
        path: the file the image came from, or None for bytes, arrays and PIL images.
        image: the decoded photo, kept for `draw()` and `save()`; never serialised.

    >>> face = FaceResult((10, 10, 50, 60), "covered", 0.93, {"covered": 0.93}, 0.9)
    >>> result = ImageResult([face], 100, 80, path="a.jpg", image=Image.new("RGB", (100, 80)))
    >>> result.counts()
    {'covered': 1, 'incorrect': 0, 'uncovered': 0}
    >>> result.to_dict()["faces"][0]["label"], result.draw().size
    ('covered', (100, 80))
    """

    faces: list[FaceResult]
    width: int
    height: int
    path: str | None = None
    image: Image.Image | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[FaceResult]:
        return iter(self.faces)

    def counts(self) -> dict[str, int]:
        """Faces per class, every class present (zero where none was found)."""
        found = Counter(face.label for face in self.faces)
        return {name: found.get(name, 0) for name in (*CLASSES, *sorted(set(found) - set(CLASSES)))}

    def to_dict(self) -> dict:
        """The JSON record: path (when known), width, height and every face's `FaceResult.to_dict()`."""
        record: dict = {} if self.path is None else {"path": self.path}
        record.update(width=self.width, height=self.height, faces=[face.to_dict() for face in self.faces])
        return record

    def draw(self, image: Image.Image | None = None) -> Image.Image:
        """A copy of the photo with each face's box, number, label and confidence drawn on it (in a
        crowd, the numbers alone: `maskdetect.draw.layout_labels` keeps every label clear of the others).

        Args:
            image: the photo to draw on; by default the one the result was computed on.

        Raises:
            ValueError: no image given and none kept (a result rebuilt from its record).
        """
        from maskdetect.draw import draw_results

        image = image if image is not None else self.image
        if image is None:
            raise ValueError("this result keeps no image to draw on: pass the photo, result.draw(photo)")
        return draw_results(image, self.faces)

    def save(self, path: str | os.PathLike, *, quality: int = 90) -> Path:
        """Write the annotated photo (JPEG, or PNG by the suffix), atomically; returns the path."""
        target = Path(path)
        kind = "PNG" if target.suffix.lower() == ".png" else "JPEG"
        drawn = self.draw()
        with atomic_path(target) as tmp:
            drawn.save(tmp, format=kind, quality=quality)
        return target
