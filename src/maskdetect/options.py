"""Which model and how: the one options type that `Predictor`, `detect`, `serve`, `batch` and
`evaluate-detect` all take.

Two thresholds, with one meaning each everywhere (Python, CLI, REST, batch):
- `candidate_threshold`: the face detector's score from which a box is a candidate at all.
- `face_threshold`: what decides that a candidate is a face: the face verifier's probability when
  the bundle has a verifier for the detector, else the detector's own score.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

BACKENDS = ("onnx", "torch")
PRECISIONS = ("fp32", "int8")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers narrow).

    >>> usable_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS, Windows


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs, and how.

    Attributes:
        model: a bundle folder, a checkpoint (.pt) or an ONNX export; None: the bundled model.
        detector: the face detector for photos; None: the bundle's photo detector.
        video_detector: the face detector for videos and cameras; None: the bundle's video detector.
        backend: "onnx" (ONNX Runtime) or "torch" (eager).
        precision: "int8" or "fp32"; None: int8 on ONNX Runtime, fp32 on torch.
        candidate_threshold: the detector's candidate score (0-1); None: the value the bundle's
            verifier was fitted on, else the detector's default.
        face_threshold: the face decision (0-1); None: the verifier's own threshold, else the
            detector's default.
        verify: use the bundle's face verifier when it has one for the detector.
        device: torch device for backend "torch".
        classifier_threads: ONNX Runtime threads (None: one per core).

    >>> ModelOptions(face_threshold=0.4).face_threshold
    0.4
    >>> ModelOptions(face_threshold=1.5)
    Traceback (most recent call last):
    ...
    ValueError: face_threshold must lie between 0 and 1 (exclusive), got 1.5
    """

    model: str | None = None
    detector: str | None = None
    video_detector: str | None = None
    backend: str = "onnx"
    precision: str | None = None
    candidate_threshold: float | None = None
    face_threshold: float | None = None
    verify: bool = True
    device: str = "cpu"
    classifier_threads: int | None = None

    def __post_init__(self) -> None:
        from maskdetect.faces.detector import DETECTORS

        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))
        for name in ("detector", "video_detector"):
            value = getattr(self, name)
            if value is not None and value not in DETECTORS:
                raise ValueError(f"unknown face detector {value!r} for {name}; choose one of "
                                 f"{', '.join(DETECTORS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.precision == "int8" and self.backend != "onnx":
            raise ValueError(f"int8 runs on backend 'onnx' only, not {self.backend!r}")
        for name in ("candidate_threshold", "face_threshold"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or not 0 < value < 1):
                raise ValueError(f"{name} must lie between 0 and 1 (exclusive), got {value!r}")
        threads = self.classifier_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"classifier_threads must be a whole number of at least 1, got {threads!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-safe data (worker processes and batch actors read them back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelOptions:
        """Options from `to_dict`'s data; unknown keys are an error that names them.

        >>> ModelOptions.from_dict({"detector": "haar"}).detector
        'haar'
        """
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not set(values) <= known:
            unknown = sorted(set(values) - known) if isinstance(values, dict) else values
            raise ValueError(f"model options: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)
