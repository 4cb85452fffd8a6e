"""What a `batch` run reads, and its plan: every input path with the shard it belongs to.

Inputs are image files, folders (walked by `maskdetect.images.find_files` through
`detect.inputs.collect_inputs`), glob patterns, a text file listing one path a line (`.txt`, `.lst`),
or a table of paths (`.csv`, `.parquet`) with a `path` column; a table's other columns (a date, a
camera, a source) are kept in the plan and joined to the detections by `detect.summary`.

The plan (`OUT/inputs.parquet`) is written before
any detection; a run given the same output folder again adds only the inputs the plan lacks, in new
shards, so an input keeps its shard for good and a shard's output file is its proof of being done.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from maskdetect.detect.inputs import collect_inputs
from maskdetect.fileio import atomic_path

log = logging.getLogger(__name__)

LIST_SUFFIXES: tuple[str, ...] = (".txt", ".lst")
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
PLAN_NAME = "inputs.parquet"


def read_inputs(inputs: Sequence[str | Path], path_column: str = "path") -> tuple[pd.DataFrame, list[str]]:
    """Every input image as one row (column `path`, plus a table's other columns), in the order given.

    Files, folders and glob patterns are checked here (a missing one is an error line); the paths a
    list or a table names are taken as they are, not looked at one by one (a million `stat` calls on
    network storage take long): a missing file there becomes that input's error row in the output.
    A path reached twice is one input, the first way it was reached. Relative paths are made absolute
    (the actors of a cluster do not share this process's working folder).

    Args:
        inputs: files, folders, glob patterns (`photos/**/*.jpg`), list files and tables of paths.
        path_column: the column of a CSV or Parquet table that holds the paths.

    Returns:
        The inputs, and one line per input left out (missing, a video, a link to nothing, a name that
        is not UTF-8, which Parquet cannot hold: shown with its odd bytes as `\\xNN`).

    Raises:
        ValueError: a table without `path_column`.

    >>> read_inputs(["/no/such/folder"])[1]
    ['/no/such/folder: no such file or folder']
    """
    frames: list[pd.DataFrame] = []
    errors: list[str] = []
    for raw in map(str, inputs):
        suffix = Path(raw).suffix.lower()
        if suffix in TABLE_SUFFIXES and Path(raw).is_file():
            frames.append(_read_table(Path(raw), path_column))
        elif suffix in LIST_SUFFIXES and Path(raw).is_file():
            frames.append(pd.DataFrame({"path": _utf8_names(_read_list(Path(raw)), errors)}))
        else:
            named = sorted(glob.glob(raw, recursive=True)) if glob.has_magic(raw) else [raw]
            if not named:
                errors.append(f"{raw}: the pattern matches no file")
            jobs, missing = collect_inputs(named)
            errors += missing
            errors += [f"{job.path}: a video; `maskdetect detect` reads videos" for job in jobs
                       if job.kind != "image"]
            images = [os.path.abspath(job.path) for job in jobs if job.kind == "image"]
            frames.append(pd.DataFrame({"path": _utf8_names(images, errors)}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"path": []})
    table["path"] = table["path"].astype(str)
    return table.drop_duplicates("path", ignore_index=True), [printable_name(line) for line in errors]


def printable_name(text: str) -> str:
    """A path (or a line naming one) as printable UTF-8: the bytes of a name that is not UTF-8 (which
    Python holds as surrogates) shown as `\\xNN`, as `ls -b` does.

    >>> printable_name(os.fsdecode(b"/photos/caf\\xe9.jpg"))
    '/photos/caf\\\\xe9.jpg'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8_names(paths: list[str], errors: list[str]) -> list[str]:
    # The plan and the rows are Parquet, whose text is UTF-8 only: a file name in another encoding
    # (Latin-1 from an old camera or share) is left out with its name shown, and the rest goes on.
    kept = []
    for path in paths:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            errors.append(f"{path}: the file name is not UTF-8, which the plan (Parquet) cannot hold; "
                          "rename it, or read it with `maskdetect detect`")
            continue
        kept.append(path)
    return kept


def _read_table(path: Path, column: str) -> pd.DataFrame:
    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if column not in table.columns:
        columns = ", ".join(map(str, table.columns))
        raise ValueError(f"{path}: no column {column!r} of image paths (columns: {columns}); "
                         "name it with --path-column")
    table = table.rename(columns={column: "path"}) if column != "path" else table
    table = table[table["path"].notna()].copy()
    table["path"] = [_beside(path, p) for p in table["path"].astype(str)]
    return table


def _read_list(path: Path) -> list[str]:
    # A name in the list that is not UTF-8 is kept as Python keeps such names, to be left out by name.
    lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines())
    return [_beside(path, line) for line in lines if line and not line.startswith("#")]


def _beside(listing: Path, name: str) -> str:
    # A relative path in a list or table is relative to the folder of that list (as a playlist's is).
    # Paths are made absolute: the actors of a cluster do not share the driver's working folder;
    # a URL-like name (s3://...) is left alone for the reader to refuse with its own message.
    return name if Path(name).is_absolute() or "://" in name else os.path.abspath(listing.parent / name)


def update_plan(out: Path, inputs: pd.DataFrame, shard_size: int) -> pd.DataFrame:
    """The run's plan: the inputs already planned in `out` keep their shards, new ones get new shards.

    Args:
        out: the output folder (its plan is `out/inputs.parquet`).
        inputs: `read_inputs`' table (may be empty when the plan only continues).
        shard_size: inputs a shard holds (one output file each).

    Returns:
        The whole plan: column `shard` beside the inputs' columns, every input once.

    Raises:
        ValueError: shard_size below 1.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> update_plan(out, pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"]}), 2)["shard"].tolist()
    [0, 0, 1]
    >>> update_plan(out, pd.DataFrame({"path": ["c.jpg", "d.jpg"]}), 2)["shard"].tolist()
    [0, 0, 1, 2]
    """
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    plan = read_plan(out)
    known = set(plan["path"]) if plan is not None else set()
    new = inputs[~inputs["path"].isin(known)].reset_index(drop=True)
    if plan is not None and new.empty:
        return plan
    first = int(plan["shard"].max()) + 1 if plan is not None and len(plan) else 0
    new.insert(1, "shard", [first + i // shard_size for i in range(len(new))])
    plan = new if plan is None else pd.concat([plan, new], ignore_index=True)
    _write_plan(out, plan)
    if known:
        log.warning("%s: %d inputs added to the plan of %d", out, len(new), len(known))
    return plan


def read_plan(out: Path) -> pd.DataFrame | None:
    """The plan in an output folder, or None when there is none yet."""
    return pd.read_parquet(out / PLAN_NAME) if (out / PLAN_NAME).is_file() else None


def _write_plan(out: Path, plan: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / PLAN_NAME) as tmp:
        plan.to_parquet(tmp, index=False)
