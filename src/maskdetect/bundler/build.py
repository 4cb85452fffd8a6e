"""Make a model bundle from a training run, and give it face verifiers: the library calls behind
`maskdetect bundle` and `maskdetect fit-verifier`.

>>> bundle = create_bundle("run/best.pt", "my-model")  # doctest: +SKIP
>>> fit_bundle_verifier("my-model", FitOptions(photos="my-labelled-photos"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.bundle import MANIFEST, ModelBundle, open_bundle, read_manifest_dict, write_manifest
from maskdetect.fileio import atomic_path, file_digest
from maskdetect.options import PRECISIONS, ModelOptions

log = logging.getLogger(__name__)


def create_bundle(
    classifier: str | os.PathLike, out: str | os.PathLike, *, photo_detector: str = "retinaface-960",
    video_detector: str = "blazeface-fast", data: str = "", licence: str = "",
) -> ModelBundle:
    """A bundle folder holding a copy of a checkpoint (or ONNX export), with no verifier yet.

    Args:
        classifier: a checkpoint written by `maskdetect train`, or an ONNX export.
        out: the folder to make (it must not hold a bundle already).
        photo_detector, video_detector: the detectors the bundle runs by default.
        data, licence: what the classifier learned from and under which licence (provenance).

    Raises:
        FileExistsError: `out` already holds a bundle.
        ValueError: the classifier is neither a checkpoint nor an ONNX export (the loader's message).
    """
    from maskdetect.runtime import load_classifier

    source, out = Path(classifier), Path(out)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out} already holds a model bundle; give another folder")
    load_classifier(source, "onnx" if source.suffix.lower() == ".onnx" else "torch")  # a clear error first
    name = "classifier.onnx" if source.suffix.lower() == ".onnx" else "classifier.pt"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / name) as tmp:
        shutil.copyfile(source, tmp)
    write_manifest(out, {
        "name": out.name,
        "classifier": {"file": name, "data": data, "licence": licence, "source": source.name,
                       "made_by": _command()},
        "detectors": {"photo": photo_detector, "video": video_detector},
        "verifiers": [],
    })
    return open_bundle(out)


@dataclass(frozen=True)
class FitOptions:
    """How `fit_bundle_verifier` fits a verifier.

    Attributes:
        photos: a Pascal VOC folder of labelled photos (annotations/ + images/ or JPEGImages/).
        detector: the detector whose candidates it weighs; None: the bundle's photo detector.
        precision: the classifier precision it runs beside ("int8" or "fp32").
        recall_target: two stages, threshold at this recall of faces of 32 px and more.
        precision_target: one stage, threshold at this precision (for detectors without second looks).
        candidate_threshold: the detector's candidate score; None: the detector's default.
        only, exclude: photo names to keep / leave out (as `evaluate-detect` takes them).
        limit: at most this many photos.
        trust_precision: with precision_target, for a detector without second looks: trust its own
            score from where its candidates alone reach this precision (None: no floor).
    """

    photos: str | os.PathLike
    detector: str | None = None
    precision: str = "int8"
    recall_target: float | None = 0.95
    precision_target: float | None = None
    candidate_threshold: float | None = None
    only: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = field(default_factory=tuple)
    limit: int | None = None
    trust_precision: float | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")


def fit_bundle_verifier(bundle: str | os.PathLike, options: FitOptions) -> dict[str, object]:
    """Mine the detector's candidates on labelled photos, fit a verifier and add it to the bundle
    (replacing one for the same detector and precision). Returns the out-of-fold operating point.

    Raises:
        FileNotFoundError: no bundle there, or no usable annotations in `options.photos`.
        ValueError: the detector gives no candidates, or no threshold reaches the target.
    """
    from maskdetect.bundler.candidates import mine_candidates
    from maskdetect.bundler.fit import fit_verifier
    from maskdetect.data.voc_set import voc_items
    from maskdetect.predict import Predictor

    root = Path(bundle)
    opened = open_bundle(root)
    if opened.root is None:
        raise FileNotFoundError(f"{root}: not a bundle folder; make one with `maskdetect bundle {root} "
                                "--out DIR`")
    detector = options.detector or opened.photo_detector
    predictor = Predictor.from_options(ModelOptions(
        model=str(root), detector=detector, precision=options.precision, verify=False,
        candidate_threshold=options.candidate_threshold))
    items = voc_items(options.photos, options.exclude, options.limit, options.only)
    log.info("mining %s candidates on %d photos", detector, len(items))
    data = mine_candidates(predictor, items)
    verifier, point = fit_verifier(data, file_digest(opened.classifier), options.recall_target,
                                   options.precision_target, options.trust_precision)
    described = f"{Path(options.photos).name}: {data.photos} photos, {int((data.kind != 1).sum())} candidates"
    # The new verifier gets a file of its own, named by its content, and the manifest's one atomic
    # rewrite switches to it: a run killed at any point leaves the bundle as it was, or as it is now.
    manifest = read_manifest_dict(root)
    staged = root / "verifiers" / f".{detector}.{options.precision}.new.json"
    verifier.save(staged, data=described, fitted_by=_command(), out_of_fold=point)
    relative = f"verifiers/{detector}.{options.precision}.{file_digest(staged)[:12]}.json"
    staged.replace(root / relative)
    replaced = [v for v in manifest.get("verifiers", [])
                if (v.get("detector"), v.get("precision")) == (detector, options.precision)]
    manifest["verifiers"] = [v for v in manifest.get("verifiers", []) if v not in replaced]
    manifest["verifiers"].append({
        "detector": detector, "precision": options.precision, "file": relative,
        "candidate_threshold": predictor.candidate_threshold, "data": described, "made_by": _command(),
    })
    write_manifest(root, manifest)
    still_named = {v["file"] for v in manifest["verifiers"]}
    for old in replaced:
        if old["file"] not in still_named:
            (root / old["file"]).unlink(missing_ok=True)
    return {"detector": detector, "precision": options.precision, "file": relative, "out_of_fold": point}


def _command() -> str:
    # The command that made a part, for its provenance: this process's own arguments.
    arguments = sys.argv[1:]
    return "maskdetect " + " ".join(shlex.quote(arg) for arg in arguments) if arguments else "python API"
