"""Explaining a photo, a folder of images, or a labelled folder's nose-and-mouth heat, to files.

What `maskdetect explain` and the demo run: each face's heat map (`.npy`), its overlay (`.png`) and an
`index.json`; for a folder also a contact sheet; for a labelled folder `summary.json`/`summary.md`.
Text lines about what was written go through `echo` (the log by default; the command passes `print`).
One `index.json` per output folder lists every map in it, from this run and earlier ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.fileio import atomic_path, atomic_write_text, unused_name
from maskdetect.images import IMAGE_SUFFIXES, ImageError, find_images, open_image

if TYPE_CHECKING:
    from maskdetect.explain.runner import BoxDetector, Explainer, FaceExplanation

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
CONTACT_SHEET_FACES = 120  # more panels make an unreadable sheet
REGION_PANELS = 48
COLOUR_LABELS = {
    "occlusion": "drop in P({target}) when occluded",
    "gradcam": "Grad-CAM for {target}",
}


@dataclass(frozen=True)
class ExplainOptions:
    """How images are explained to files.

    Attributes:
        detect: find faces in each photo (False: each image is one face crop).
        raw_probability: also write the target's probability map with each pixel occluded.
        limit: at most this many images of a folder (per class for `summarise_regions`).
        min_mesh_score: `summarise_regions` skips crops where the face mesh's score is lower.
    """

    detect: bool = True
    raw_probability: bool = False
    limit: int | None = None
    min_mesh_score: float = 0.5


@dataclass
class ExplainFolderResult:
    """What explaining a folder wrote: the index entries, the images skipped, the contact sheet."""

    index: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    contact_sheet: Path | None = None


@dataclass
class RegionSummaryResult:
    """The nose-and-mouth heat table per class and the report files."""

    table: dict[str, dict[str, float]]
    measured: int
    skipped: list[str]
    json_path: Path
    markdown_path: Path


def write_json(path: Path, data: object) -> None:
    """`data` as indented JSON at `path`, atomically.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "index.json"
    >>> write_json(path, [1]); path.read_text()
    '[\\n  1\\n]\\n'
    """
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_face_explanations(
    faces: list[FaceExplanation], stem: str, out: Path, *, raw_probability: bool = False,
    echo: Echo = log.info,
) -> list[dict]:
    """Write each face's map and overlay as `out/STEM[_faceN]_METHOD.{npy,png}`; their index entries.

    >>> write_face_explanations([], "photo", Path("/tmp"))
    []
    """
    from maskdetect.explain.overlay import save_overlay

    entries = []
    for number, face in enumerate(faces):
        name = stem if face.box is None else f"{stem}_face{number}"
        name = f"{name}_{face.method}"
        npy, png = out / f"{name}.npy", out / f"{name}.png"
        _save_array(npy, face.heatmap)
        title = f"{face.predicted} {face.probabilities[face.predicted]:.2f} · explaining {face.target}"
        save_overlay(face.crop, face.heatmap, png, title=title, symmetric=face.method == "occlusion",
                     colour_label=COLOUR_LABELS[face.method].format(target=face.target))
        entry = {**face.summary(), "map": str(npy), "overlay": str(png)}
        if raw_probability and face.probability_map is not None:
            prob = out / f"{name}_probability.npy"
            _save_array(prob, face.probability_map)
            entry["probability_map"] = str(prob)
        entries.append(entry)
        box = "" if face.box is None else " box " + ",".join(f"{v:.0f}" for v in face.box)
        echo(f"{name}:{box} {face.predicted} ({face.probabilities[face.predicted]:.2f}), "
             f"explaining {face.target} -> {png}")
    return entries


def _save_array(path: Path, values: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, values.astype(np.float32))


def explain_image(
    explainer: Explainer, path: Path, out: Path, options: ExplainOptions = ExplainOptions(), *,
    echo: Echo = log.info,
) -> list[dict]:
    """Explain every face of one photo (or the image as one crop) into `out`; its `index.json` entries.

    Raises:
        FileNotFoundError: no such image. ImageError: not a readable image.

    >>> explain_image(None, Path("/no/such.jpg"), Path("/tmp"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such.jpg: no such image or folder
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image or folder")
    faces = explainer.explain_photo(open_image(path), detect=options.detect)
    if not faces:
        echo(f"{path}: no face found (use --no-detect to explain the whole image as one crop)")
    entries = write_face_explanations(faces, path.stem, out, raw_probability=options.raw_probability,
                                      echo=echo)
    index = [{"image": str(path), **e} for e in entries]
    update_index(out, index)
    echo(_wrote(entries, out))
    return index


def explain_folder(
    explainer: Explainer, folder: Path, out: Path, options: ExplainOptions = ExplainOptions(), *,
    echo: Echo = log.info, on_skip: Echo = log.warning,
) -> ExplainFolderResult:
    """Explain every image under `folder` into `out`, with `index.json` and a contact sheet.

    A corrupt image is passed to `on_skip` and left out; two images that would write the same file
    names (a.tif beside a.webp) get numbered names.

    Raises:
        FileNotFoundError: `folder` holds no images.

    >>> import tempfile
    >>> explain_folder(None, Path(tempfile.mkdtemp()), Path("/tmp"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: /...: no images (.jpg, ...) in this folder
    """
    from maskdetect.explain.overlay import Panel, save_contact_sheet

    images = find_images(folder)
    if options.limit is not None:
        images = images[: options.limit]
    if not images:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    result, panels, used = ExplainFolderResult(), [], set()
    for path in images:
        try:
            photo = open_image(path)
        except ImageError as err:
            on_skip(str(err))
            result.skipped.append(str(err))
            continue
        faces = explainer.explain_photo(photo, detect=options.detect)
        if not faces:
            echo(f"{path}: no face found (--no-detect explains whole images as crops)")
        rel = path.relative_to(folder)
        # a.tif beside a.webp (or A.png beside a.png) would write the same maps: the later is numbered.
        stem = unused_name(str, rel.with_suffix("").as_posix().replace("/", "__"), used)
        entries = write_face_explanations(faces, stem, out, raw_probability=options.raw_probability,
                                          echo=echo)
        result.index.extend({"image": str(path), **e} for e in entries)
        for face in faces:
            caption = f"{stem}\n{face.predicted} {face.probabilities[face.predicted]:.2f}"  # wrapped, not cut
            panels.append(Panel(face.crop, face.heatmap, caption, symmetric=face.method == "occlusion"))
    update_index(out, result.index)
    if panels:
        result.contact_sheet = out / "contact_sheet.png"
        save_contact_sheet(panels[:CONTACT_SHEET_FACES], result.contact_sheet)
        echo(f"contact sheet of {min(len(panels), CONTACT_SHEET_FACES)} faces: {result.contact_sheet}")
    echo(_wrote(result.index, out, extra=1 if panels else 0))
    return result


def update_index(out: Path, entries: list[dict]) -> list[dict]:
    """Add `entries` to `out/index.json`, which then lists every map in `out`, old runs' included.

    An entry whose map was written again (the same name) is replaced; one whose map is gone is dropped,
    so the index always describes the files beside it.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> for name in ("a.npy", "b.npy"):
    ...     _ = (out / name).write_bytes(b"")
    >>> _ = update_index(out, [{"map": str(out / "a.npy"), "run": 1}])
    >>> [e["run"] for e in update_index(out, [{"map": str(out / "b.npy"), "run": 2}])]
    [1, 2]
    """
    path, new = out / "index.json", {entry["map"] for entry in entries}
    old: list[dict] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s: not valid JSON; starting a new index", path)
        if not isinstance(old, list):
            old = []
    kept = [e for e in old
            if isinstance(e, dict) and e.get("map") not in new and Path(str(e.get("map"))).is_file()]
    index = kept + entries
    write_json(path, index)
    return index


def _wrote(entries: list[dict], out: Path, extra: int = 0) -> str:
    # Each entry is a map and its overlay (and perhaps a probability map); index.json; a contact sheet.
    files = sum(2 + ("probability_map" in e) for e in entries) + 1 + extra
    return f"wrote {files} files to {out} ({len(entries)} maps; index.json lists every map there)"


def summarise_regions(
    explainer: Explainer, root: Path, out: Path, options: ExplainOptions = ExplainOptions(), *,
    echo: Echo = log.info,
) -> RegionSummaryResult:
    """Measure the heat on the nose and mouth over a labelled folder `root/[split/]<class>/...`.

    Writes `summary.json`, `summary.md` and a `regions.png` sheet of the first faces into `out`.

    Raises:
        FileNotFoundError: no images in class folders. ValueError: no face could be measured.

    >>> import tempfile
    >>> summarise_regions(None, Path(tempfile.mkdtemp()), Path("/tmp"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: /...: no images in class folders (covered, incorrect, uncovered)
    """
    from maskdetect.explain import summary

    items = summary.labelled_images(root)
    if not items:
        raise FileNotFoundError(f"{root}: no images in class folders (covered, incorrect, uncovered)")
    from maskdetect.explain.overlay import Panel, save_contact_sheet
    from maskdetect.faces.landmarks import FaceMesh

    mesh = FaceMesh()
    panels: list[Panel] = []

    def keep_panel(record: summary.RegionRecord, explanation: FaceExplanation, polygon: np.ndarray) -> None:
        if len(panels) < REGION_PANELS:
            caption = f"{record.label}\nheat on region {record.heat_share:.2f}"
            panels.append(Panel(explanation.crop, explanation.heatmap, caption,
                                symmetric=explanation.method == "occlusion", polygon=polygon))

    records, skipped = summary.measure_regions(
        explainer, items, mesh.landmarks, min_mesh_score=options.min_mesh_score,
        limit_per_class=options.limit, on_face=keep_panel,
    )
    if not records:
        raise ValueError(f"{root}: no face could be measured ({len(skipped)} skipped)")
    table = summary.summarise(records)
    s = explainer.settings
    settings = {"checkpoint": explainer.source, "method": s.method, "target": s.target, "patch": s.patch,
                "stride": s.stride, "fill": s.fill, "mode": s.mode, "data": str(root)}
    json_path, md_path = summary.write_report(out, table, records, skipped, settings)
    if panels:
        save_contact_sheet(panels, out / "regions.png")
    echo(summary.markdown_table(table))
    echo(f"{len(records)} faces measured, {len(skipped)} skipped; report: {md_path}, {json_path}")
    return RegionSummaryResult(table, len(records), skipped, json_path, md_path)


def boxes_by(name: str) -> BoxDetector:
    """Face boxes from the detector `name` of `maskdetect.faces.detector`, built on first use.

    Raises:
        ValueError: an unknown detector; the message lists the known ones.

    >>> boxes_by("sonar")
    Traceback (most recent call last):
    ...
    ValueError: unknown face detector 'sonar'; allowed: ...
    """
    from maskdetect.faces.detector import DETECTORS

    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; allowed: {', '.join(DETECTORS)}")
    built: list = []

    def detect(image: object) -> list[tuple[float, ...]]:
        if not built:  # the detector loads a model: only when a photo needs it
            from maskdetect.faces.detector import create_detector

            built.append(create_detector(name))
        return [tuple(map(float, box)) for box in built[0].detect(image)[0]]

    return detect
