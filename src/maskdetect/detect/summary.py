"""The aggregate: faces by class per folder, per path component or per day, as CSV and a PNG chart.

It reads either output of detection into one table of rows (`record_rows`): a `batch` folder (its
`faces/*.parquet`, joined by path to the extra columns of its input table, e.g. a date) or the JSON
Lines of the threaded `detect`. Every input has at least one row: a face, an image without a face
(`label` empty), or a failed input (`error`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from maskdetect.fileio import atomic_path
from maskdetect.labels import CLASS_COLOURS, CLASSES

DATE_FORMATS: dict[str, str] = {"year": "%Y", "month": "%Y-%m", "week": "%G-W%V", "day": "%Y-%m-%d",
                                "hour": "%Y-%m-%d %H:00"}
CHART_GROUPS = 40  # the chart shows this many groups, those with the most faces


def record_rows(record: dict) -> list[dict]:
    """The table rows of one `ImageResult.to_dict()` record (or a failed input's {"path", "error"}).

    >>> rows = record_rows({"path": "a.jpg", "width": 64, "height": 48, "faces": [{"box": [1, 2, 30, 40],
    ...     "label": "covered", "score": 0.9, "probabilities": {"covered": 0.9, "incorrect": 0.06,
    ...     "uncovered": 0.04}, "detection_score": 0.8}]})
    >>> rows[0]["label"], rows[0]["x1"], rows[0]["p_incorrect"], rows[0]["faces"]
    ('covered', 30.0, 0.06, 1)
    >>> record_rows({"path": "b.jpg", "error": "b.jpg: empty file (0 bytes)"})
    [{'path': 'b.jpg', 'error': 'b.jpg: empty file (0 bytes)'}]
    """
    base = {"path": record["path"]}
    if "error" in record:
        return [{**base, "error": record["error"]}]
    base.update(width=record["width"], height=record["height"], faces=len(record["faces"]))
    if not record["faces"]:
        return [base]
    rows = []
    for index, face in enumerate(record["faces"]):
        x0, y0, x1, y1 = (float(v) for v in face["box"])
        rows.append({**base, "face": index, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": face["label"],
                     "score": float(face["score"]),
                     **{f"p_{name}": float(face["probabilities"].get(name, 0.0)) for name in CLASSES},
                     "detection_score": float(face["detection_score"])})
    return rows


def load_detections(source: str | os.PathLike) -> pd.DataFrame:
    """The rows of a `batch` output folder, or of `detect`'s JSON Lines (a file, or its folder).

    The JSON Lines are read by `detect.log.read_log`, the reader `--resume` uses: a line cut by a
    killed run is left out quietly, an input done twice counts its last attempt, and each line that
    cannot be read (not UTF-8, not JSON, a record without its fields) is left out and named in
    `table.attrs["unreadable"]` ("FILE:LINE: why"), with the one-line note for a user in
    `table.attrs["unreadable_note"]`: a summary without them would be short without saying so.

    Raises:
        FileNotFoundError: neither `faces/*.parquet` nor a JSON Lines file is there.
    """
    source = Path(source)
    if (source / "faces").is_dir():
        from maskdetect.detect.batch_inputs import read_plan

        table = pd.read_parquet(source / "faces")
        plan = read_plan(source)
        extras = [c for c in plan.columns if c not in table.columns] if plan is not None else []
        return table.merge(plan[["path", *extras]], on="path", how="left") if extras else table
    jsonl = source / "detections.jsonl" if source.is_dir() else source
    if not jsonl.is_file():
        raise FileNotFoundError(f"{source}: no batch output (faces/*.parquet) and no detect JSON Lines here")
    from maskdetect.detect.log import read_log

    found = read_log(jsonl)
    rows = []
    for path, records in found.records.items():
        for record in records:
            if "faces" in record or ("error" in record and "frames" not in record):
                try:  # a video's closing record counts no face of its own
                    rows += record_rows(record)
                except (KeyError, TypeError, ValueError, AttributeError) as err:  # a hand-edited record
                    why = f"{type(err).__name__}: {err}"
                    found.unreadable.append(f"{found.source}: the record of {path} lacks its fields ({why})")
    table = pd.DataFrame(rows)
    for column in ("path", "label", "error"):
        if column not in table.columns:
            table[column] = None
    table.attrs.update(unreadable=found.unreadable, unreadable_note=found.unreadable_note())
    return table


def group_key(table: pd.DataFrame, spec: str) -> pd.Series:
    """The group of every row by one key: `folder`, `part:N` (the Nth path component, -2 the folder's
    name), a column (`camera`), or a date column by `day`, `week`, `month`, `year` or `hour` (`date:day`).

    Raises:
        ValueError: an unknown column or unit, a bad part number.

    >>> rows = pd.DataFrame({"path": ["/d/cam1/a.jpg", "/d/cam2/b.jpg"], "date": ["2021-03-04 10:00", "x"]})
    >>> group_key(rows, "part:-2").tolist(), group_key(rows, "date:month").tolist()
    (['cam1', 'cam2'], ['2021-03', 'no date'])
    """
    paths = table["path"].astype(str)
    if spec == "folder":
        return paths.map(lambda p: str(Path(p).parent))
    if spec.startswith("part:"):
        try:
            index = int(spec[5:])
        except ValueError:
            raise ValueError(f"{spec!r}: part:N needs a whole number N (-1 the file name, -2 its "
                             "folder)") from None
        return paths.map(lambda p: _part(p, index))
    column, _, unit = spec.partition(":")
    if column not in table.columns:
        raise ValueError(f"no column {column!r} to group by; keys: folder, part:N, or one of the columns "
                         f"{', '.join(map(str, table.columns))}")
    if not unit:
        return table[column].astype(str)
    if unit not in DATE_FORMATS:
        raise ValueError(f"{spec!r}: unknown date unit {unit!r}; choose from {', '.join(DATE_FORMATS)}")
    dates = pd.to_datetime(table[column], errors="coerce", format="mixed")
    return dates.dt.strftime(DATE_FORMATS[unit]).fillna("no date")


def _part(path: str, index: int) -> str:
    parts = Path(path).parts
    return parts[index] if -len(parts) <= index < len(parts) else ""


def summarize(table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Images, failed inputs, faces and faces per class (counts and shares) for every group.

    Args:
        table: `load_detections` rows.
        by: one or more `group_key` specs, e.g. ["part:-2", "date:day"].

    >>> rows = pd.DataFrame({"path": ["/a/x.jpg", "/a/x.jpg", "/b/y.jpg", "/b/z.jpg"],
    ...                      "label": ["covered", "uncovered", None, None],
    ...                      "error": [None, None, None, "bad"]})
    >>> columns = ["part:-2", "images", "failed", "faces", "covered", "uncovered"]
    >>> summarize(rows, ["part:-2"])[columns].values.tolist()
    [['a', 1, 0, 2, 1, 1], ['b', 2, 1, 0, 0, 0]]
    """
    if not by:
        raise ValueError("give at least one key to group by (folder, part:N, a column, column:day)")
    keys = pd.DataFrame({spec: group_key(table, spec) for spec in by}, index=table.index)
    frame = pd.concat([keys, table[["path"]].astype(str)], axis=1)
    frame["_label"] = table["label"] if "label" in table.columns else None
    frame["_failed"] = table["error"].notna() if "error" in table.columns else False
    grouped = frame.groupby(list(by), sort=True, dropna=False)
    result = grouped["path"].nunique().rename("images").to_frame()
    result["failed"] = frame[frame["_failed"]].groupby(list(by), dropna=False)["path"].nunique()
    labelled = frame[frame["_label"].notna()]
    counts = labelled.groupby([*by, "_label"], dropna=False).size().unstack(fill_value=0)
    result["faces"] = counts.sum(axis=1) if len(counts.columns) else 0
    for name in CLASSES:
        result[name] = counts[name] if name in counts.columns else 0
    result = result.fillna(0)
    for column in ("failed", "faces", *CLASSES):
        result[column] = result[column].astype(int)
    for name in CLASSES:
        result[f"{name}_share"] = (result[name] / result["faces"].where(result["faces"] > 0)).round(4)
    return result.reset_index()


def write_summary(summary: pd.DataFrame, by: Sequence[str], prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write the summary as `PREFIX.csv` and a stacked bar chart of faces by class as `PREFIX.png`.

    Returns:
        The CSV and PNG paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = Path(prefix)
    csv, png = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".png")
    with atomic_path(csv) as tmp:
        summary.to_csv(tmp, index=False)
    shown = summary.nlargest(CHART_GROUPS, "faces", keep="first").sort_values(list(by))
    labels = [" / ".join(str(row[k]) for k in by) for _, row in shown.iterrows()]
    figure, axes = plt.subplots(figsize=(9, 1.2 + 0.28 * max(1, len(shown))))
    left = pd.Series(0, index=shown.index)
    for name in CLASSES:
        colour = tuple(c / 255 for c in CLASS_COLOURS[name])
        axes.barh(labels, shown[name], left=left, color=colour, label=name)
        left = left + shown[name]
    axes.invert_yaxis()
    axes.set_xlabel("faces")
    more = f" (the {CHART_GROUPS} with most faces of {len(summary)})" if len(summary) > len(shown) else ""
    axes.set_title(f"faces by class per {' / '.join(by)}{more}")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    figure.tight_layout()
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return csv, png
