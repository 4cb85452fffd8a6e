"""The JSON Lines log of a `detect` run, written as it goes so that a killed run loses nothing.

Records are appended to `detections.jsonl.part` as each input finishes; the finished run renames it
to `detections.jsonl` in one step, so a good earlier file is never replaced by half a run. With
`--resume`, the inputs that a killed run had finished are read back from the `.part` file (or from a
finished file) and skipped: an image with a record and no error, a video with its closing summary.
A video cut off midway, an input that failed and a half-written last line are done again. The
records of inputs the resumed run was not given are kept as they are, never dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO


def part_path(jsonl: Path) -> Path:
    """Where a run's log grows until the run finishes."""
    return jsonl.with_name(jsonl.name + ".part")


def previous_records(jsonl: Path) -> dict[str, list[dict]]:
    """Every input's records in a previous run's log, by input path (empty when there is none).

    The log is the `.part` file of an interrupted run, else the finished file. An input written
    more than once (a log from before inputs were de-duplicated) keeps only its last attempt.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "detections.jsonl"
    >>> _ = part_path(log).write_text('{"path": "a.jpg", "faces": []}\\n{"path": "a.jpg", "faces": []}\\n')
    >>> previous_records(log)
    {'a.jpg': [{'path': 'a.jpg', 'faces': []}]}
    """
    source = part_path(jsonl) if part_path(jsonl).exists() else jsonl
    if not source.exists():
        return {}
    by_path: dict[str, list[dict]] = {}
    with open(source, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the run was killed
                continue
            if isinstance(record, dict) and isinstance(record.get("path"), str):
                attempt = by_path.setdefault(record["path"], [])
                if attempt and ("frame" not in attempt[-1] or record.get("frame") == 0):
                    attempt.clear()  # the input was done again: its last attempt stands
                attempt.append(record)
    return by_path


def is_finished(records: list[dict]) -> bool:
    """Whether an input's records show it done: an image's one record without an error, a video's
    closing summary (the only record without "frame"); a camera is never done.

    >>> is_finished([{"path": "v.mp4", "frame": 0, "faces": []}, {"path": "v.mp4", "frames": 1}])
    True
    """
    last = records[-1]
    return "error" not in last and "frame" not in last and not last["path"].startswith("camera:")


def finished_records(jsonl: Path) -> dict[str, list[dict]]:
    """The records of every input a previous run finished, by input path (empty when none).

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "detections.jsonl"
    >>> _ = part_path(log).write_text('{"path": "a.jpg", "faces": []}\\n{"path": "b.jpg", "fa')
    >>> list(finished_records(log))
    ['a.jpg']
    """
    return {path: records for path, records in previous_records(jsonl).items() if is_finished(records)}


class RunLog:
    """Append records to the `.part` file, flushed one by one; `finish` publishes it.

    Opening it rewrites the `.part` file with `kept` only (the finished inputs of a resumed run).
    """

    def __init__(self, jsonl: Path, kept: list[dict]):
        self.jsonl, self.part = jsonl, part_path(jsonl)
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = open(self.part, "w", encoding="utf-8")  # noqa: SIM115 - finish/close
        for record in kept:
            self.write(record)

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def finish(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.part, self.jsonl)  # open() made it with the usual mode of a new file

    def close(self) -> None:
        """Stop writing without publishing (the run was interrupted): the `.part` file stays."""
        if not self._handle.closed:
            self._handle.close()
