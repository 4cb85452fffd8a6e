"""The demo: every stage of the research pipeline, run through the same commands a user types.

Each stage calls `maskdetect.cli.main` with the arguments a user would give, so the demo can
never drift from the real tools; the report then reads the files those commands wrote.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.data.sample import sample_data_dir
from maskdetect.labels import CLASSES

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    """Knobs of the demo; the defaults finish in a few minutes on two CPU cores."""

    out: Path = Path("demo-output")
    epochs: int = 3
    input_size: int = 128
    explain_per_class: int = 2
    seed: int = 0
    overwrite: bool = False


@dataclass
class StageTiming:
    name: str
    seconds: float


@dataclass
class DemoResult:
    out: Path
    report: Path
    timings: list[StageTiming] = field(default_factory=list)


def run_demo(settings: DemoSettings) -> DemoResult:
    """Run data preparation, training, evaluation, explanation and detection; write the report.

    Args:
        settings: where to write and how long to train.

    Returns:
        The output folder, the report's path and how long each stage took.

    Raises:
        FileExistsError: the output folder holds something else and `overwrite` is not set.
    """
    out = settings.out
    _prepare_out(out, settings.overwrite)
    sample = sample_data_dir()
    paths = _Paths(out)
    timings: list[StageTiming] = []

    def stage(name: str, argv: list[str]) -> None:
        from maskdetect.cli import main

        print(f"\n== {name}: maskdetect {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        code = main(argv)
        if code:
            raise RuntimeError(f"demo stage {name!r} failed with exit code {code}")
        timings.append(StageTiming(name, time.perf_counter() - start))

    stage("data", [
        "data", "prepare", "--voc", str(sample / "andrewmvd"), "--maskedface-net", str(sample / "synth"),
        "--out", str(paths.tree), "--seed", str(settings.seed),
    ])
    stage("train", [
        "train", "--data", str(paths.tree), "--out", str(paths.run), "--model", "mobilenet_v2",
        "--pretrained", "--input-size", str(settings.input_size), "--epochs", str(settings.epochs),
        "--patience", "0", "--seed", str(settings.seed), "--workers", "0",
    ])
    stage("evaluate", [
        "evaluate", str(paths.checkpoint), "--data", str(paths.tree), "--split", "holdout",
        "--out", str(paths.evaluation), "--workers", "0",
    ])
    _pick_explain_faces(paths.tree / "holdout", paths.explain_input, settings.explain_per_class)
    stage("explain", [
        "explain", str(paths.explain_input), "--no-detect", "--checkpoint", str(paths.checkpoint),
        "--out", str(paths.explanations),
    ])
    photo = pick_holdout_photo(paths.tree / "split_manifest.csv")
    stage("detect", ["detect", str(photo), "--checkpoint", str(paths.checkpoint),
                     "--out", str(paths.detections)])
    from maskdetect.demo.build_report import build_demo_report

    report = build_demo_report(paths, timings)
    print(f"\nreport: {report.resolve()}")
    return DemoResult(out=out, report=report, timings=timings)


class _Paths:
    """Where each stage writes, under the demo's output folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tree = out / "root_data"
        self.run = out / "run"
        self.checkpoint = self.run / "best.pt"
        self.evaluation = out / "evaluation"
        self.explain_input = out / "explain-input"
        self.explanations = out / "explanations"
        self.detections = out / "detections"
        self.report = out / "report.html"


def _prepare_out(out: Path, overwrite: bool) -> None:
    marker = out / ".maskdetect-demo"
    if out.exists() and any(out.iterdir()):
        if not marker.exists() and not overwrite:
            raise FileExistsError(f"{out} exists and was not written by the demo; choose another --out")
        # A previous demo's results: start over so no stage reuses stale files.
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by maskdetect demo\n")


def _pick_explain_faces(holdout: Path, dest: Path, per_class: int) -> None:
    """Copy the first few holdout faces of each class into one folder for `explain`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CLASSES:
        for path in sorted((holdout / name).glob("*.jpg"))[:per_class]:
            shutil.copyfile(path, dest / f"{name}__{path.name}")


def pick_holdout_photo(split_manifest: Path) -> Path:
    """A photo the model never trained on, showing as many classes as possible in few faces."""
    with split_manifest.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "holdout" and r["source"] == "voc"]
    if not rows:
        raise ValueError(f"{split_manifest}: no holdout photo to run the detector on")
    faces: dict[str, list[str]] = {}
    for row in rows:
        faces.setdefault(row["path"], []).append(row["label"])
    return Path(max(sorted(faces), key=lambda p: (len(set(faces[p])), -abs(len(faces[p]) - 4))))
