"""`maskdetect batch`: detection over millions of photos on Ray Data, written as Parquet, resumable.

The inputs are planned into shards (`detect.batch_inputs`); Ray Data's `map_batches` hands one shard
at a time to a pool of actors (`ShardDetector`), each of which loads the model once and writes its
shard's rows to `OUT/faces/part-NNNNNN.parquet` in one atomic rename. A shard's file is its proof of
being done: a killed run, run again, detects only the shards without one, so nothing is lost and
nothing is written twice. Ray is imported lazily: the base install (no `ray` extra) never needs it.

Every input has at least one row: one per face, one with no label for an image without a face, one
with `error` for an input that could not be read (the rest of the shard goes on).
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskdetect.detect.batch_inputs import read_inputs, read_plan, update_plan
from maskdetect.detect.ray_local import ray_session
from maskdetect.detect.summary import record_rows
from maskdetect.fileio import atomic_path, atomic_write_text
from maskdetect.labels import CLASSES
from maskdetect.options import ModelOptions

if TYPE_CHECKING:
    import pyarrow as pa
    from PIL import Image

    from maskdetect.results import ImageResult

log = logging.getLogger(__name__)

FACES_DIR = "faces"
SETTINGS_NAME = "batch.json"
RAY_MISSING = "the Ray engine needs the `ray` extra: pip install 'maskdetect[ray]'"
# The row of a face: probabilities get one column per class, p_covered, p_incorrect, p_uncovered.
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in CLASSES)


@dataclass
class BatchOptions:
    """How a `run_batch` detects, and on how many actors.

    Attributes:
        out: the output folder: `inputs.parquet` (the plan), `faces/part-*.parquet`, `batch.json`.
        model: which model and how (`ModelOptions`, the Predictor's); on GPU actors the classifier
            runs on torch, fp32, CUDA.
        actors: actors in the pool, each with its own model.
        cpus_per_actor: CPUs Ray reserves for each actor (also its inference threads).
        gpus_per_actor: GPUs for each actor (above 0: the classifier runs with torch on CUDA).
        shard_size: inputs per shard: per output file, and the most a killed actor loses.
        address: a running Ray cluster's address (`ray start --head` prints it); None starts a
            local one (on 127.0.0.1, ended with this process, `detect.ray_local`) unless this
            process has already called `ray.init`.
        path_column: the column of paths in a CSV or Parquet input table.
    """

    out: Path
    model: ModelOptions = field(default_factory=ModelOptions)
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    shard_size: int = 500
    address: str | None = None
    path_column: str = "path"

    def actor_model(self) -> ModelOptions:
        """The model options every actor's `Predictor` is built from."""
        if self.gpus_per_actor > 0:
            return replace(self.model, backend="torch", precision="fp32", device="cuda",
                           classifier_threads=max(1, int(self.cpus_per_actor)))
        return replace(self.model, classifier_threads=max(1, int(self.cpus_per_actor)))


@dataclass
class BatchSummary:
    """What a `run_batch` call did.

    Attributes:
        inputs: inputs in the plan (every run's together).
        shards: shards in the plan; shards_run: those this call detected (the rest were done).
        images_run: inputs this call detected; seconds: its detection time (Ray start included).
        faces: faces per class in the whole output; failed: inputs with an error row there.
        left_out: one line per input that never entered the plan (missing file, a video...).
        actors: per actor (by process id): shards, images, seconds spent detecting (`busy_s`), peak
            resident memory (MB), and its memory after each shard, in order (to see that it stays flat).
    """

    inputs: int = 0
    shards: int = 0
    shards_run: int = 0
    images_run: int = 0
    seconds: float = 0.0
    faces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    failed: int = 0
    left_out: list[str] = field(default_factory=list)
    actors: dict[int, dict] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images_run / self.seconds if self.seconds else 0.0


def shard_path(out: Path, shard: int) -> Path:
    """The output file of one shard.

    >>> shard_path(Path("out"), 7).as_posix()
    'out/faces/part-000007.parquet'
    """
    return out / FACES_DIR / f"part-{shard:06d}.parquet"


def finished_shards(out: Path) -> set[int]:
    """The shards whose output file exists (written whole, by one rename)."""
    folder = out / FACES_DIR
    if not folder.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet")}


def image_rows(path: str, shard: int, result: ImageResult | None = None,
               error: str | None = None) -> list[dict]:
    """The output rows of one input (`summary.record_rows` of its record), each with its shard and,
    when the photo's EXIF has it, the time it was taken (`taken`, "YYYY-MM-DD HH:MM:SS").

    >>> from maskdetect.results import FaceResult, ImageResult
    >>> face = FaceResult((1, 2, 30, 40), "covered", 0.9, {"covered": 0.9}, 0.8)
    >>> [(r["shard"], r["label"], r["width"]) for r in image_rows("a.jpg", 3, ImageResult([face], 64, 48))]
    [(3, 'covered', 64)]
    >>> image_rows("b.jpg", 0, error="b.jpg: empty file (0 bytes)")[0]["error"]
    'b.jpg: empty file (0 bytes)'
    """
    record = {**result.to_dict(), "path": path} if result is not None else {"path": path, "error": error}
    taken = photo_taken(result.image) if result is not None else None
    return [{"shard": shard, **row, "taken": taken} for row in record_rows(record)]


def photo_taken(image: Image.Image | None) -> str | None:
    """When a photo was taken, from its EXIF (DateTimeOriginal, else DateTime), or None.

    >>> from PIL import Image
    >>> exif = Image.Exif()
    >>> exif[306] = "2021:03:04 09:15:00"
    >>> photo_taken(Image.open(_jpeg_with(exif)))
    '2021-03-04 09:15:00'
    """
    if image is None:
        return None
    try:
        exif = image.getexif()
        value = exif.get_ifd(0x8769).get(36867) or exif.get(306)  # Exif IFD DateTimeOriginal; DateTime
    except (OSError, ValueError, SyntaxError):  # a broken EXIF block says nothing about the photo's date
        return None
    if not isinstance(value, str) or len(value) < 19 or value[4] != ":":
        return None
    return f"{value[:4]}-{value[5:7]}-{value[8:10]} {value[11:19]}"


def _jpeg_with(exif: Image.Exif) -> io.BytesIO:
    # A small JPEG carrying `exif`, for the examples.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer


def rows_table(rows: list[dict]) -> pa.Table:
    """The rows as an Arrow table of the one output schema (missing values as nulls)."""
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=output_schema())


def output_schema() -> pa.Schema:
    """The columns of `faces/part-*.parquet`, in order."""
    import pyarrow as pa

    f32 = pa.float32()
    return pa.schema([
        ("shard", pa.int32()), ("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
        ("faces", pa.int32()), ("face", pa.int32()),
        ("x0", f32), ("y0", f32), ("x1", f32), ("y1", f32), ("label", pa.string()), ("score", f32),
        *[(name, f32) for name in PROBABILITY_COLUMNS], ("detection_score", f32), ("error", pa.string()),
        ("taken", pa.string()),
    ])


def _memory_mb() -> tuple[float, float]:
    # (resident now, peak resident) of this process in MB; Linux reports ru_maxrss in KB.
    with open("/proc/self/statm") as handle:
        resident = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resident / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ShardDetector:
    """A Ray Data actor: loads one `Predictor`, then detects whole shards and writes each one's file.

    Called by `map_batches` with a batch of shards (`shard`, `paths` columns); returns one row of
    figures per shard (images, faces, failed, seconds, process id, memory after it).
    """

    def __init__(self, out: str, model: dict[str, Any]):
        import cv2

        from maskdetect.predict import Predictor

        options = ModelOptions.from_dict(model)
        threads = options.classifier_threads or 1
        cv2.setNumThreads(threads)
        if options.backend == "torch":
            import torch

            torch.set_num_threads(threads)
        self.out = Path(out)
        self.predictor = Predictor.from_options(options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        figures: dict[str, list] = {k: [] for k in ("shard", "images", "faces", "failed", "seconds", "pid",
                                                    "rss_mb", "peak_rss_mb")}
        for shard, paths in zip(batch["shard"], batch["paths"], strict=True):
            start = time.perf_counter()
            rows = self.detect_shard(int(shard), [str(p) for p in paths])
            resident, peak = _memory_mb()
            for key, value in (("shard", int(shard)), ("images", len(paths)),
                               ("faces", sum(1 for r in rows if r.get("label"))),
                               ("failed", sum(1 for r in rows if r.get("error"))),
                               ("seconds", time.perf_counter() - start), ("pid", os.getpid()),
                               ("rss_mb", resident), ("peak_rss_mb", peak)):
                figures[key].append(value)
        return figures

    def detect_shard(self, shard: int, paths: list[str]) -> list[dict]:
        """Detect every input of a shard and write its file atomically; returns its rows."""
        import pyarrow.parquet as pq

        rows: list[dict] = []
        for path in paths:
            try:
                rows += image_rows(path, shard, self.predictor.predict(path))
            except Exception as err:  # noqa: BLE001 - one bad input of a million must not stop the job
                # ImageError and OSError carry the path and the reason; anything else is named by type.
                message = str(err) if path in str(err) else f"{path}: {type(err).__name__}: {err}"
                rows += image_rows(path, shard, error=message)
        with atomic_path(shard_path(self.out, shard)) as tmp:
            pq.write_table(rows_table(rows), tmp)
        return rows


def run_batch(inputs: Sequence[str | os.PathLike], options: BatchOptions) -> BatchSummary:
    """Detect faces in every input on a Ray cluster's actors; write one Parquet file per shard.

    Args:
        inputs: files, folders, glob patterns, list files and CSV/Parquet tables of paths (see
            `detect.batch_inputs.read_inputs`); may be empty to finish the plan already in `out`.
        options: the model, the actor pool, the shard size and the output folder.

    Returns:
        What was planned, detected and found (`BatchSummary`).

    Raises:
        ImportError: Ray is not installed (the `ray` extra).
        ValueError: no inputs and no plan; `out` was written with other model settings; bad options.

    >>> summary = run_batch(["photos/"], BatchOptions(Path("out"), actors=4))  # doctest: +SKIP
    >>> summary.faces, summary.images_per_second  # doctest: +SKIP
    ({'covered': 1210, 'incorrect': 88, 'uncovered': 431}, 6.8)
    """
    ray = _import_ray()
    out = Path(options.out)
    if options.actors < 1 or options.cpus_per_actor <= 0 or options.gpus_per_actor < 0:
        raise ValueError(f"need at least 1 actor with CPUs above 0, got actors={options.actors}, "
                         f"cpus_per_actor={options.cpus_per_actor}, gpus_per_actor={options.gpus_per_actor}")
    table, left_out = read_inputs(inputs, options.path_column)
    if table.empty and read_plan(out) is None:
        why = "; ".join(left_out[:5]) if left_out else "give files, folders, patterns or a list"
        raise ValueError(f"no input images: {why}")
    _check_settings(out, options)
    plan = update_plan(out, table, options.shard_size)
    pending = sorted(set(plan["shard"].tolist()) - finished_shards(out))
    for stale in (out / FACES_DIR).glob(".part-*.part"):  # a killed run's half-written shard
        stale.unlink(missing_ok=True)
    summary = BatchSummary(inputs=len(plan), shards=int(plan["shard"].nunique()), left_out=left_out)
    if pending:
        _check_model(options)  # a bad checkpoint or detector fails here, before Ray starts
        start = time.perf_counter()
        with ray_session(ray, options.address):  # a local one: on 127.0.0.1, ended with this process
            for row in _detect_shards(ray, plan, pending, options):
                summary.shards_run += 1
                summary.images_run += int(row["images"])
                actor = summary.actors.setdefault(int(row["pid"]), {"shards": 0, "images": 0, "busy_s": 0.0,
                                                                    "rss_mb": []})
                actor["shards"] += 1
                actor["images"] += int(row["images"])
                actor["busy_s"] = round(actor["busy_s"] + float(row["seconds"]), 2)
                actor["rss_mb"].append(round(float(row["rss_mb"]), 1))
                actor["peak_rss_mb"] = round(float(row["peak_rss_mb"]), 1)
                log.info("shard %d: %d images, %d faces, %d failed, %.1f s", row["shard"], row["images"],
                         row["faces"], row["failed"], row["seconds"])
        summary.seconds = time.perf_counter() - start
    summary.faces, summary.failed = _output_counts(out)
    atomic_write_text(out / "last_run.json", json.dumps({**asdict(summary),
                                                         "images_per_second": summary.images_per_second},
                                                        indent=2) + "\n")
    return summary


def _detect_shards(ray: Any, plan: Any, pending: list[int], options: BatchOptions) -> Any:
    # One dataset row per shard, one block per row, so the pool spreads shards over its actors.
    chosen = plan[plan["shard"].isin(pending)]
    items = [{"shard": int(shard), "paths": group["path"].tolist()}
             for shard, group in chosen.groupby("shard")]
    if not log.isEnabledFor(logging.DEBUG):  # Ray Data's plan and progress lines only with -v
        for handler in logging.getLogger("ray.data").handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(max(handler.level, logging.WARNING))
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    detected = dataset.map_batches(
        ShardDetector, batch_size=1, compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor or None,
        fn_constructor_kwargs={"out": str(options.out), "model": options.actor_model().to_dict()},
    )
    return detected.iter_rows()


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - map_batches and the actor pool live here
    except ImportError as err:
        raise ImportError(f"{RAY_MISSING} ({err})") from err
    return ray


def _check_model(options: BatchOptions) -> None:
    from maskdetect.predict import Predictor

    # Also exports and caches the ONNX model once, before the actors load it.
    Predictor.from_options(replace(options.actor_model(), device="cpu"))


def _check_settings(out: Path, options: BatchOptions) -> None:
    # The shards of one output folder must all come from one model: a rerun with another is refused.
    model = options.model
    settings = {"model": None if model.model is None else str(Path(model.model).resolve()),
                "detector": model.detector, "candidate_threshold": model.candidate_threshold,
                "face_threshold": model.face_threshold, "verify": model.verify}
    path = out / SETTINGS_NAME
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed and finished_shards(out):
            raise ValueError(f"{out} holds detections made with other settings ({changed}: was, now); "
                             "give another --out or the same settings")
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def _output_counts(out: Path) -> tuple[dict[str, int], int]:
    import pyarrow.dataset as pads

    counts = dict.fromkeys(CLASSES, 0)
    if not finished_shards(out):
        return counts, 0
    table = pads.dataset(out / FACES_DIR, format="parquet").to_table(columns=["label", "error"]).to_pandas()
    for label, n in table["label"].value_counts().items():
        counts[str(label)] = int(n)
    return counts, int(table["error"].notna().sum())
