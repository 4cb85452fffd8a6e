"""Gather what the demo's stages wrote into one HTML report."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from maskdetect.data.manifest import SPLIT_MANIFEST_NAME, manifest_records
from maskdetect.data.split import SPLITS
from maskdetect.demo.report import ReportSection, write_report
from maskdetect.labels import CLASSES
from maskdetect.train.plots import plot_learning_curves

if TYPE_CHECKING:
    from maskdetect.demo.pipeline import StageTiming, _Paths


def build_demo_report(paths: _Paths, timings: list[StageTiming]) -> Path:
    """Write `paths.report` from the files under `paths.out`; returns its path."""
    sections = [
        _data_section(paths.tree / SPLIT_MANIFEST_NAME),
        _training_section(paths.run / "metrics.jsonl", paths.out / "learning_curves.png"),
        _evaluation_section(paths.evaluation),
        _explain_section(paths.explanations),
        _detect_section(paths.detections),
        _video_section(paths.video),
        _timing_section(timings),
    ]
    return write_report(paths.report, "maskdetect demo", sections)


def _data_section(split_manifest: Path) -> ReportSection:
    section = ReportSection("Data: grouped, stratified split")
    rows = [r for _, r in manifest_records(split_manifest, ("split", "label", "split_group"))]
    counts = Counter((row["split"], row["label"]) for row in rows)
    table = [[split, *(counts[split, c] for c in CLASSES), sum(counts[split, c] for c in CLASSES)]
             for split in SPLITS]
    table.append(["total", *(sum(counts[s, c] for s in SPLITS) for c in CLASSES), len(rows)])
    section.paragraph(
        "Faces cut from the shipped CC0 photos by the crop policy inference uses, plus masks synthesised "
        "on some of their uncovered faces. Every photo (and every face identity) sits in one split only."
    )
    section.table(["split", *CLASSES, "total"], table)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of_group[row["split_group"]].add(row["split"])
    crossing = sum(1 for splits in splits_of_group.values() if len(splits) > 1)
    section.paragraph(f"{len(splits_of_group)} groups; groups found in more than one split: {crossing}.")
    return section


def _training_section(metrics_jsonl: Path, plot_path: Path) -> ReportSection:
    section = ReportSection("Training: ImageNet MobileNetV2, fine-tuned")
    epochs = read_jsonl(metrics_jsonl)
    plot_learning_curves(epochs, plot_path)
    section.figure(plot_path, "loss and accuracy per epoch", width=720)
    section.table(
        ["epoch", "train loss", "train accuracy", "validation loss", "validation accuracy", "seconds"],
        [[e["epoch"], e["train_loss"], e["train_accuracy"], e["val_loss"], e["val_accuracy"], e["seconds"]]
         for e in epochs],
    )
    return section


def _evaluation_section(folder: Path) -> ReportSection:
    section = ReportSection("Evaluation on the holdout split")
    metrics = json.loads((folder / "metrics.json").read_text())
    section.paragraph(
        f"{metrics['count']} faces: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
        f"expected calibration error {metrics['ece']:.3f}. A few epochs on a few hundred faces: this shows "
        "the pipeline, not the shipped model's quality (see docs/model-card.md)."
    )
    section.table(
        ["class", "precision", "recall", "F1", "faces"],
        [[c, m["precision"], m["recall"], m["f1"], m["support"]] for c, m in metrics["per_class"].items()],
    )
    for name, caption in [("confusion_matrix.png", "confusion matrix"), ("reliability.png", "reliability"),
                          ("mistakes.png", "most confident mistakes")]:
        if (folder / name).exists():
            section.figure(folder / name, caption, width=420 if name != "mistakes.png" else 860)
    return section


def _explain_section(folder: Path) -> ReportSection:
    section = ReportSection("Explanations: occlusion maps")
    section.paragraph(
        "A grey patch slides over each face; red marks where hiding the pixels lowers the predicted "
        "class's probability (what the model relies on), blue where it raises it."
    )
    for png in sorted(folder.glob("*.png")):
        if png.name != "contact_sheet.png":
            section.figure(png, f"true class: {png.stem.split('__')[0]}", width=260)
    return section


def _detect_section(folder: Path) -> ReportSection:
    section = ReportSection("Detection on a photo")
    lines = read_jsonl(folder / "detections.jsonl")
    faces = [face for line in lines for face in line.get("faces", [])]
    counts = Counter(face["label"] for face in faces)
    section.paragraph(
        f"{len(faces)} faces found: " + ", ".join(f"{counts[c]} {c}" for c in CLASSES) + "."
    )
    for image in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
        section.figure(image, image.name, width=640)
    return section


def _video_section(folder: Path) -> ReportSection:
    section = ReportSection("Video: people, not frames")
    summary = json.loads((folder / "pan.summary.json").read_text())
    faces = sum(len(r.get("faces", [])) for r in read_jsonl(folder / "detections.jsonl"))
    section.paragraph(
        f"A {summary['seconds']:.0f}-second clip made by a virtual camera panning over the photo above. "
        f"Labelled frame by frame it holds {faces} faces; tracked, {summary['people_total']} people, "
        "each with one verdict from all its frames: "
        + ", ".join(f"{n} {c}" for c, n in summary["people"].items()) + ". Label changes along the "
        f"tracks: {summary['label_flips']['tracked']} (the frames' own labels: "
        f"{summary['label_flips']['per_frame']})."
    )
    tracks = read_jsonl(folder / "pan.tracks.jsonl")
    section.table(["track", "verdict", "frames seen", "first second", "last second", "counted"],
                  [[t["track_id"], t["verdict"], t["frames_seen"], t["first_time"], t["last_time"],
                    "yes" if t["counted"] else "no"] for t in tracks])
    section.video(folder / "pan.annotated.mp4", "the annotated clip (H.264): track ids and running counts")
    section.figure(folder / "pan.timeline.png", "people present each second, by label", width=640)
    for track in tracks:
        if track["counted"] and track.get("thumbnail"):
            section.figure(track["thumbnail"], f"#{track['track_id']} {track['verdict']}", width=110)
    return section


def _timing_section(timings: list[StageTiming]) -> ReportSection:
    section = ReportSection("How long each stage took")
    section.table(["stage", "seconds"], [[t.name, f"{t.seconds:.1f}"] for t in timings]
                  + [["total", f"{sum(t.seconds for t in timings):.1f}"]])
    return section


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON Lines file (the training metrics, the detections)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
