"""What a tracked video adds up to: people by verdict, and people present by label each second.

`write_track_files` writes, beside a video's annotated copy (`clip.annotated.mp4`):

- `clip.tracks.jsonl`: one `Track.to_dict()` record per track, with its thumbnail's path;
- `clip.summary.json`: people counted by verdict, tracks too short to count, label changes;
- `clip.timeline.csv` and `clip.timeline.png`: people present each second by their running label;
- `clip.thumbs/track_0001.jpg`: each track's best face, at most `THUMBNAIL_PX` on its longer side.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from maskdetect.detect.tracks import Track, TrackOptions
from maskdetect.fileio import atomic_path, atomic_write_text
from maskdetect.labels import CLASS_COLOURS, CLASSES

THUMBNAIL_PX = 128  # the longer side of a track's thumbnail


def summarise_tracks(tracks: list[Track], options: TrackOptions, frames: int, fps: float) -> dict:
    """People by verdict (tracks seen `options.min_seconds` or more), and how steady labels were.

    >>> summarise_tracks([], TrackOptions(), 0, 25.0)["people"]
    {'covered': 0, 'incorrect': 0, 'uncovered': 0}
    """
    counted = [t for t in tracks if t.counted(options)]
    people = dict.fromkeys(CLASSES, 0)
    for track in counted:
        people[track.verdict] = people.get(track.verdict, 0) + 1
    steady, raw = (sum(t.flips()[i] for t in counted) for i in (0, 1))
    return {
        "frames": frames, "fps": round(fps, 3), "seconds": round(frames / fps, 3) if fps else 0.0,
        "people": people, "people_total": len(counted),
        "tracks_too_short": len(tracks) - len(counted), "min_frames": options.frames_to_count(fps),
        "people_with_label_changes": sum(bool(t.events) for t in counted),
        "label_changes": [{"track_id": t.track_id, **e} for t in counted for e in t.events],
        "label_flips": {"tracked": steady, "per_frame": raw},
    }


def timeline_rows(tracks: list[Track], options: TrackOptions, frames: int, fps: float) -> list[dict]:
    """People present in each second by their running label (a person counts once a second, by the
    label of their last frame in it). Only tracks that count as people are included.

    >>> timeline_rows([], TrackOptions(), 50, 25.0)[1]
    {'second': 1, 'covered': 0, 'incorrect': 0, 'uncovered': 0, 'total': 0}
    """
    seconds = max(1, int(-(-frames // max(fps, 1e-9)))) if frames else 0
    present: list[dict[int, str]] = [{} for _ in range(seconds)]
    for track in (t for t in tracks if t.counted(options)):
        for frame, label in track.labels_per_frame:
            second = min(int(frame / fps), seconds - 1)
            present[second][track.track_id] = label
    rows = []
    for second, labels in enumerate(present):
        row = {"second": second, **dict.fromkeys(CLASSES, 0)}
        for label in labels.values():
            row[label] = row.get(label, 0) + 1
        row["total"] = len(labels)
        rows.append(row)
    return rows


def write_track_files(tracks: list[Track], options: TrackOptions, base: Path, frames: int, fps: float,
                      images: bool = True) -> dict[str, str]:
    """Write the tracks, the summary and the timeline beside `base` (the annotated video's path less
    its `.annotated.mp4`); with `images`, the timeline plot and each track's thumbnail too.

    Returns:
        The files written, by kind ("tracks", "summary", "timeline_csv", "timeline_png", "thumbs").
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    written = {}
    thumbs = base.with_name(base.name + ".thumbs")
    lines = []
    for track in tracks:
        record = track.to_dict(options)
        if images and track.thumbnail is not None:
            target = thumbs / f"track_{track.track_id:04d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            thumbnail = track.thumbnail.copy()
            thumbnail.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            with atomic_path(target) as tmp:
                thumbnail.save(tmp, format="JPEG", quality=90)
            record["thumbnail"] = str(target)
        lines.append(_strict_json(record, base, ".tracks.jsonl"))
    written["tracks"] = _write(base, ".tracks.jsonl", "".join(line + "\n" for line in lines))
    summary = summarise_tracks(tracks, options, frames, fps)
    written["summary"] = _write(base, ".summary.json", _strict_json(summary, base, ".summary.json", indent=2)
                                + "\n")
    rows = timeline_rows(tracks, options, frames, fps)
    text = io.StringIO()
    writer = csv.DictWriter(text, ["second", *CLASSES, "total"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    written["timeline_csv"] = _write(base, ".timeline.csv", text.getvalue())
    if images:
        written["timeline_png"] = str(plot_timeline(rows, base.with_name(base.name + ".timeline.png"),
                                                    title=f"{base.name}: people present by label"))
        if any(t.thumbnail is not None for t in tracks):
            written["thumbs"] = str(thumbs)
    return written


def _strict_json(value: object, base: Path, suffix: str, **options: object) -> str:
    # NaN and infinity are not JSON: refuse them, naming the file, rather than write one no strict
    # reader takes.
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        raise ValueError(f"{base.with_name(base.name + suffix)}: holds a number that is not finite (NaN or "
                         "infinity), so it is not written") from None


def _write(base: Path, suffix: str, text: str) -> str:
    target = base.with_name(base.name + suffix)
    atomic_write_text(target, text)
    return str(target)


def plot_timeline(rows: list[dict], path: Path, title: str = "people present by label") -> Path:
    """A stacked bar per second: people present, coloured by label (the classes' own colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    seconds = [r["second"] for r in rows]
    bottom = [0] * len(rows)
    for name in CLASSES:
        values = [r[name] for r in rows]
        colour = tuple(c / 255 for c in CLASS_COLOURS.get(name, (128, 128, 128)))
        ax.bar(seconds, values, bottom=bottom, color=colour, label=name, width=0.9, align="edge")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("second")
    ax.set_ylabel("people present")
    ax.set_title(title, fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
