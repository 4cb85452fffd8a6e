"""The demo: every stage of the research pipeline, through the library functions the commands call.

Each stage calls the function its command calls (`prepare_data`, `train`, `evaluate_checkpoint`,
`explain_folder`, `detect_files`), with the settings a user would give, so the demo cannot drift from the real
tools; the report then reads the files those stages wrote.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.data.manifest import SPLIT_MANIFEST_NAME, manifest_records
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
    """Run data preparation, training, evaluation, explanation, detection in a photo and in a video;
    write the report.

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

    def stage(name: str, run: Callable[[], object]) -> None:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        run()
        timings.append(StageTiming(name, time.perf_counter() - start))

    stage("data", lambda: _prepare_data(sample, paths.tree, settings.seed))
    stage("train", lambda: _train(paths, settings))
    stage("evaluate", lambda: _evaluate(paths))
    _pick_explain_faces(paths.tree / "holdout", paths.explain_input, settings.explain_per_class)
    stage("explain", lambda: _explain(paths))
    photo = pick_holdout_photo(paths.tree / SPLIT_MANIFEST_NAME)
    stage("detect", lambda: _detect(paths, photo))
    stage("video", lambda: _video(paths, sample / "andrewmvd", photo))
    from maskdetect.demo.build_report import build_demo_report

    report = build_demo_report(paths, timings)
    print(f"\nreport: {report.resolve()}")
    return DemoResult(out=out, report=report, timings=timings)


def _prepare_data(sample: Path, tree: Path, seed: int) -> None:
    from maskdetect.data.prepare import PrepareOptions, SourceOptions, SplitOptions, prepare_data

    sources = SourceOptions(voc=(str(sample / "andrewmvd"),), maskedface_net=(str(sample / "synth"),))
    prepare_data(PrepareOptions(sources, SplitOptions(out=str(tree), seed=seed)), echo=print)


def _train(paths: _Paths, settings: DemoSettings) -> None:
    import json

    from maskdetect.train.config import load_train_config
    from maskdetect.train.loop import train

    config = load_train_config({
        "data": str(paths.tree), "out": str(paths.run), "model": "mobilenet_v2", "pretrained": True,
        "input_size": settings.input_size, "epochs": settings.epochs, "patience": 0, "seed": settings.seed,
        "workers": 0,
    })
    summary = train(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))


def _evaluate(paths: _Paths) -> None:
    from maskdetect.train.evaluate import evaluate_checkpoint, format_table

    report = evaluate_checkpoint(paths.checkpoint, paths.tree, paths.evaluation, split="holdout", workers=0)
    print(format_table(report))


def _explain(paths: _Paths) -> None:
    from maskdetect.explain.folder import ExplainOptions, explain_folder
    from maskdetect.explain.runner import Explainer, ExplainSettings

    explainer = Explainer(paths.checkpoint, ExplainSettings())  # whole crops: no detector needed
    explain_folder(explainer, paths.explain_input, paths.explanations, ExplainOptions(detect=False),
                   echo=print)


def _detect(paths: _Paths, photo: Path) -> None:
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    summary = detect_files(Predictor(paths.checkpoint), [photo], paths.detections)
    if summary.failures:
        raise RuntimeError(f"demo detection failed: {'; '.join(summary.failures)}")
    print("faces by class: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items()))


def _video(paths: _Paths, voc_dir: Path, photo: Path) -> None:
    # A clip made by a virtual camera panning over the detection photo (a CC0 sample photo), then
    # `detect` on it as on any video: tracks, people by verdict, the timeline, an H.264 mp4.
    from PIL import Image

    from maskdetect.data.voc_set import load_voc_faces
    from maskdetect.detect.media import detect_files
    from maskdetect.evaluation.clips import ClipSettings, make_clip
    from maskdetect.predict import Predictor

    xml = voc_dir / "annotations" / f"{photo.stem}.xml"
    faces = load_voc_faces(xml, voc_dir / "images")[1] if xml.is_file() else []
    with Image.open(photo) as image:
        clip = make_clip(image, faces, ClipSettings(width=480, height=360, frames=50, drops=0), seed=0,
                         name=photo.name)
    clip.write(paths.video_input)
    predictor = Predictor(paths.checkpoint)
    summary = detect_files(predictor, [paths.video_input], paths.video,
                           video_predictor=predictor.with_detector("blazeface-fast"))
    if summary.failures:
        raise RuntimeError(f"demo video failed: {'; '.join(summary.failures)}")
    print("people by verdict: " + ", ".join(f"{k} {v}" for k, v in summary.people.items()))


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
        self.video_input = out / "video-input" / "pan.mp4"
        self.video = out / "video"
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
    records = manifest_records(split_manifest, ("path", "label", "source", "split"))
    rows = [r for _, r in records if r["split"] == "holdout" and r["source"] == "voc"]
    if not rows:
        raise ValueError(f"{split_manifest}: no holdout photo to run the detector on")
    faces: dict[str, list[str]] = {}
    for row in rows:
        faces.setdefault(row["path"], []).append(row["label"])
    return Path(max(sorted(faces), key=lambda p: (len(set(faces[p])), -abs(len(faces[p]) - 4))))
