"""Where the model looks, measured: the share of heat on the nose and mouth, per class, over a data set.

For every face crop of a labelled folder tree (``root/[split/]<class>/image``), the explainer's
heat map and the face mesh's nose-and-mouth region give two numbers: the share of the map's
positive mass inside the region, and the region's share of the crop's area (the chance level).
Averaged per class, their ratio says whether the model looks at the nose and mouth more than a map
spread evenly over the crop would (the seed's claim, eyeballed), or learned a shortcut elsewhere.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskdetect.data.folder import class_folder_images, subfolders
from maskdetect.explain.region import nose_mouth_heat
from maskdetect.explain.runner import Explainer, FaceExplanation
from maskdetect.fileio import atomic_write_text
from maskdetect.images import open_image
from maskdetect.labels import normalise_label

log = logging.getLogger(__name__)

# landmarks(face crop) -> (468 x 2+ points in the crop's pixels, face-presence score)
MeshFn = Callable[[Any], tuple[np.ndarray, float]]


@dataclass
class RegionRecord:
    """One face crop's measurement."""

    path: str
    label: str
    predicted: str
    heat_share: float
    area_share: float
    mesh_score: float


def labelled_images(root: str | Path) -> list[tuple[Path, str]]:
    """Images under `root`'s class folders, or its splits' (any label name `normalise_label` knows).

    Folders that name no class are left out; the class folders are read by
    `maskdetect.data.folder.class_folder_images`.

    Raises:
        FileNotFoundError: `root` is not a folder.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "train" / "with_mask").mkdir(parents=True)
    >>> (root / "train" / "with_mask" / "a.jpg").write_bytes(b"")
    0
    >>> [label for _, label in labelled_images(root)]
    ['covered']
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected root/[split/]<class>/images)")
    folders = subfolders(root)
    if any(_is_label(p.name) for p in folders):  # root/<class>/...
        return class_folder_images(root, unknown_folders="skip")
    return [item for split in folders for item in class_folder_images(split, unknown_folders="skip")]


def _is_label(name: str) -> bool:
    try:
        normalise_label(name)
    except ValueError:
        return False
    return True


def measure_regions(
    explainer: Explainer,
    items: Iterable[tuple[Path, str]],
    landmarks: MeshFn,
    *,
    min_mesh_score: float = 0.5,
    limit_per_class: int | None = None,
    on_face: Callable[[RegionRecord, FaceExplanation, np.ndarray], None] | None = None,
) -> tuple[list[RegionRecord], list[str]]:
    """Explain each crop and measure its nose-and-mouth heat share.

    ``on_face(record, explanation, polygon)`` is called for each measured face (e.g. to draw it).

    Returns:
        (records, skipped): skipped lists "path: reason" for unreadable images and faces the mesh
        did not find (score below ``min_mesh_score``).

    >>> from maskdetect.faces.landmarks import FaceMesh  # doctest: +SKIP
    >>> records, skipped = measure_regions(Explainer("model.pt"), labelled_images("tree"),
    ...                                    FaceMesh().landmarks)  # doctest: +SKIP
    """
    records: list[RegionRecord] = []
    skipped: list[str] = []
    per_class: dict[str, int] = {}
    for path, label in items:
        if limit_per_class is not None and per_class.get(label, 0) >= limit_per_class:
            continue
        try:
            image = open_image(path)
        except ValueError as err:
            skipped.append(f"{path}: {err}")
            continue
        # The mesh runs on the full-resolution crop; its points are scaled to the map's grid.
        points, score = landmarks(image.convert("RGB"))
        if score < min_mesh_score:
            skipped.append(f"{path}: face mesh score {score:.2f} below {min_mesh_score}")
            continue
        explanation = explainer.explain_crop(image)
        region = nose_mouth_heat(explanation.heatmap, points, image.size)
        if math.isnan(region.heat_share):
            skipped.append(f"{path}: heat map has no positive mass")
            continue
        records.append(RegionRecord(str(path), label, explanation.predicted, region.heat_share,
                                    region.area_share, score))
        if on_face is not None:
            on_face(records[-1], explanation, region.polygon)
        per_class[label] = per_class.get(label, 0) + 1
    return records, skipped


def summarise(records: list[RegionRecord]) -> dict[str, dict[str, float]]:
    """Per class and overall: faces, mean heat share, mean area share (chance), their ratio.

    >>> rows = [RegionRecord("a", "covered", "covered", 0.5, 0.25, 0.9)]
    >>> summarise(rows)["covered"]["lift"]
    2.0
    """
    groups: dict[str, list[RegionRecord]] = {}
    for record in records:
        groups.setdefault(record.label, []).append(record)
    groups["all"] = list(records)
    table = {}
    for name, rows in groups.items():
        if not rows:
            continue
        heat = np.array([r.heat_share for r in rows])
        area = np.array([r.area_share for r in rows])
        sem = float(heat.std(ddof=1) / math.sqrt(len(rows))) if len(rows) > 1 else 0.0
        table[name] = {
            "faces": len(rows),
            "heat_share": round(float(heat.mean()), 4),
            "heat_share_sem": round(sem, 4),
            "area_share": round(float(area.mean()), 4),
            "lift": round(float(heat.mean() / area.mean()), 3) if area.mean() > 0 else float("nan"),
            "accuracy": round(float(np.mean([r.predicted == r.label for r in rows])), 4),
        }
    return table


def markdown_table(table: dict[str, dict[str, float]]) -> str:
    """The summary as a markdown table.

    >>> row = {"faces": 2, "heat_share": 0.3, "heat_share_sem": 0.1, "area_share": 0.1, "lift": 3.0,
    ...        "accuracy": 1.0}
    >>> markdown_table({"all": row}).splitlines()[-1]
    '| all | 2 | 0.300 | 0.100 | 0.100 | 3.00 | 1.000 |'
    """
    lines = [
        "| class | faces | heat share on nose+mouth | ± s.e. | area share (chance) | lift | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        lines.append(
            f"| {name} | {row['faces']} | {row['heat_share']:.3f} | {row['heat_share_sem']:.3f} | "
            f"{row['area_share']:.3f} | {row['lift']:.2f} | {row['accuracy']:.3f} |"
        )
    return "\n".join(lines)


def write_report(
    out_dir: str | Path, table: dict, records: list[RegionRecord], skipped: list[str], settings: dict
) -> tuple[Path, Path]:
    """Write summary.json (table, settings, every record, skipped faces) and summary.md.

    >>> import tempfile
    >>> paths = write_report(tempfile.mkdtemp(), {}, [], [], {"method": "occlusion"})
    >>> [p.name for p in paths]
    ['summary.json', 'summary.md']
    """
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    payload = {"settings": settings, "summary": table, "skipped": skipped,
               "records": [asdict(r) for r in records]}
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    text = (
        "# Heat on the nose and mouth\n\n"
        f"Settings: {json.dumps(settings)}\n\n"
        + markdown_table(table)
        + "\n\nheat share: the share of the heat map's positive mass inside the convex hull of the face "
        "mesh's nose and mouth points; area share: that region's share of the crop (what a map "
        "spread evenly would give); lift: their ratio (1 = chance).\n"
        + f"\n{len(skipped)} faces skipped (unreadable, or the face mesh found no face).\n"
    )
    atomic_write_text(md_path, text)
    return json_path, md_path
