"""A model bundle: one folder holding everything a Predictor needs, described by its manifest.

    default/
      bundle.json                       the manifest: each part's file and sha256, the detectors,
                                        thresholds and provenance (data, licences, the command)
      classifier.pt                     the classifier checkpoint (or an ONNX export)
      verifiers/blazeface.int8.json     a face verifier per detector and precision

Opening a bundle reads it and writes nothing beside it: what is made from it (the ONNX export, the
int8 twin) goes to the per-user cache, keyed by content hash (`fileio.user_cache_dir`). A plain
checkpoint or ONNX export opens as a bundle of one part, with no verifier: its detector alone decides
what is a face, and the Predictor says so once. `maskdetect bundle` makes a bundle from a training
run and `maskdetect fit-verifier` adds verifiers to it (`maskdetect.bundler`).
"""

from __future__ import annotations

import json
import logging
import os
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maskdetect.fileio import atomic_write_text, file_digest
from maskdetect.options import PRECISIONS

log = logging.getLogger(__name__)

FORMAT = "maskdetect-bundle-1"
MANIFEST = "bundle.json"
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "assets" / "models" / "default"
_MAX_MANIFEST_BYTES = 1 << 20


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class VerifierEntry:
    """One face verifier of a bundle: for which detector's candidates and which classifier precision.

    Attributes:
        candidate_threshold: the detector's candidate score the verifier was fitted on (None: the
            detector's own default); the Predictor asks the detector for candidates from there.
    """

    detector: str
    precision: str
    path: Path
    candidate_threshold: float | None = None


@dataclass(frozen=True)
class ModelBundle:
    """What `open_bundle` read: the classifier file, the detectors, the verifiers and provenance.

    Attributes:
        classifier: the checkpoint (.pt) or ONNX export the classifier runs from.
        root: the bundle folder (None for a bare checkpoint or export).
        photo_detector, video_detector: the detectors the bundle was fitted with, used unless the
            options name another.
        verifiers: one entry per (detector, precision).
        provenance: free-form: data, licences, the commands that made each part.
    """

    classifier: Path
    root: Path | None = None
    name: str = ""
    photo_detector: str = "retinaface-960"
    video_detector: str = "blazeface-fast"
    verifiers: tuple[VerifierEntry, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def verifier_entry(self, detector: str, precision: str) -> VerifierEntry | None:
        """The verifier for a detector's candidates at a classifier precision; for int8 without its
        own file, the fp32 one (with a warning: it was fitted on float32 features)."""
        found = {(v.detector, v.precision): v for v in self.verifiers}
        entry = found.get((detector, precision))
        if entry is None and precision != "fp32" and (detector, "fp32") in found:
            log.warning("%s has no %s verifier for %s: using the fp32 one (refit it with "
                        "`maskdetect fit-verifier --precision %s`)", self.label, precision, detector,
                        precision)
            entry = found[(detector, "fp32")]
        return entry

    @property
    def label(self) -> str:
        """How messages name the bundle."""
        return str(self.root if self.root is not None else self.classifier)

    def describe(self) -> dict[str, Any]:
        """The manifest as a client may see it: file names relative to the bundle, no machine path.

        >>> ModelBundle(Path("/x/model.pt")).describe()["classifier"]
        'model.pt'
        """
        return {
            "name": self.name or self.classifier.stem, "classifier": self.classifier.name,
            "photo_detector": self.photo_detector, "video_detector": self.video_detector,
            "verifiers": [{"detector": v.detector, "precision": v.precision,
                           "candidate_threshold": v.candidate_threshold} for v in self.verifiers],
        }


def open_bundle(path: str | os.PathLike | None = None) -> ModelBundle:
    """Read a bundle folder (or its `bundle.json`), or take a checkpoint / ONNX file as a bundle of
    one part; None opens the bundled default model. Nothing is written.

    Raises:
        FileNotFoundError: the path does not exist, or a file the manifest names is missing.
        BundleError: a manifest that is not JSON, of another format, naming a file outside the
            bundle, a wrong sha256, an unknown detector or precision, or a threshold outside (0, 1).

    >>> bundle = open_bundle()
    >>> bundle.classifier.name, bundle.photo_detector
    ('classifier.pt', 'retinaface-960')
    """
    target = Path(DEFAULT_BUNDLE if path is None else path)
    if target.is_dir():
        return _read_manifest(target / MANIFEST)
    if target.name == MANIFEST and target.is_file():
        return _read_manifest(target)
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such model (expected a bundle folder, a checkpoint .pt or "
                                "an ONNX export)")
    return ModelBundle(classifier=target)


def _read_manifest(manifest: Path) -> ModelBundle:
    root = manifest.parent
    if not manifest.is_file():
        raise FileNotFoundError(f"{root}: a folder without {MANIFEST}, so not a model bundle (make one "
                                "with `maskdetect bundle CHECKPOINT --out FOLDER`)")
    if manifest.stat().st_size > _MAX_MANIFEST_BYTES:
        raise BundleError(f"{manifest}: {manifest.stat().st_size:,} bytes, more than a manifest can be")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    # ValueError: JSON's own errors, and an integer of more digits than Python converts
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BundleError(f"{manifest}: not a readable bundle manifest ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{manifest}: not a model bundle manifest (expected format {FORMAT!r})")
    from maskdetect.faces.detector import DETECTORS

    classifier = _part(manifest, data.get("classifier"), "classifier")
    detectors = data.get("detectors", {})
    if not isinstance(detectors, dict):
        raise BundleError(f"{manifest}: 'detectors' must be an object like {{'photo': 'blazeface'}}")
    chosen = {role: detectors.get(role, default) for role, default in
              (("photo", "retinaface-960"), ("video", "blazeface-fast"))}
    for role, name in chosen.items():
        if name not in DETECTORS:
            raise BundleError(f"{manifest}: detectors.{role} is {name!r}; choose one of "
                              f"{', '.join(DETECTORS)}")
    entries = data.get("verifiers", [])
    if not isinstance(entries, list):
        raise BundleError(f"{manifest}: 'verifiers' must be a list")
    verifiers = []
    for index, entry in enumerate(entries):
        where = f"verifiers[{index}]"
        path = _part(manifest, entry, where)
        detector, precision = entry.get("detector"), entry.get("precision")
        if detector not in DETECTORS:
            raise BundleError(f"{manifest}: {where}.detector is {detector!r}; choose one of "
                              f"{', '.join(DETECTORS)}")
        if precision not in PRECISIONS:
            raise BundleError(f"{manifest}: {where}.precision is {precision!r}; choose one of "
                              f"{', '.join(PRECISIONS)}")
        verifiers.append(VerifierEntry(detector, precision, path,
                                       _threshold(manifest, entry.get("candidate_threshold"), where)))
    provenance = data.get("provenance", {})
    name = data.get("name", root.name)
    return ModelBundle(classifier, root, name if isinstance(name, str) else root.name, chosen["photo"],
                       chosen["video"], tuple(verifiers), provenance if isinstance(provenance, dict) else {})


def _part(manifest: Path, entry: object, where: str) -> Path:
    # A file the manifest names: relative, inside the bundle, present, with the sha256 it states.
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise BundleError(f"{manifest}: {where} must be an object with a 'file'")
    relative = PurePosixPath(entry["file"])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise BundleError(f"{manifest}: {where}.file {entry['file']!r} must be a path inside the bundle")
    path = manifest.parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"{manifest}: {where}.file {entry['file']} is missing")
    expected = entry.get("sha256")
    if expected is not None and expected != file_digest(path):
        raise BundleError(f"{manifest}: {where}.file {entry['file']} does not have the sha256 the manifest "
                          "states (changed or damaged since the bundle was made)")
    return path


def _threshold(manifest: Path, value: object, where: str) -> float | None:
    if value is None:
        return None
    # 0 < value < 1 turns down NaN and infinity; math.isfinite would overflow on a huge integer
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise BundleError(f"{manifest}: {where}.candidate_threshold must lie between 0 and 1, got "
                          f"{reprlib.repr(value)}")
    return float(value)


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write a bundle's manifest atomically (each part's sha256 filled in from its file).

    Raises:
        FileNotFoundError: a part the manifest names is not in the folder.
    """
    root = Path(root)
    manifest = {**manifest, "format": FORMAT}
    parts = [manifest["classifier"], *manifest.get("verifiers", [])]
    for part in parts:
        part["sha256"] = file_digest(root / part["file"])
    path = root / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    open_bundle(root)  # what was written must read back
    return path


def read_manifest_dict(root: str | os.PathLike) -> dict[str, Any]:
    """The raw manifest of a bundle folder, checked by `open_bundle` first, to extend and write back."""
    open_bundle(root)
    return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
