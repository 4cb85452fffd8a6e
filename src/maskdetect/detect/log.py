"""The JSON Lines log of a `detect` run, written as it goes so that a killed run loses nothing.

Records are appended to `detections.jsonl.part` as each input finishes; the finished run renames it
to `detections.jsonl` in one step, so a good earlier file is never replaced by half a run. With
`--resume`, the inputs that a killed run had finished are read back from the `.part` file (or from a
finished file) and skipped: an image with a record and no error, a video with its closing summary.
A video cut off midway, an input that failed and a half-written last line are done again. The
records of inputs the resumed run was not given are kept as they are, never dropped. `read_log` is
the one reader of the log, for `--resume` and `summarize`: a line that cannot be read costs that
line only, and is named (FILE:LINE); its input, having no record, is done again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def part_path(jsonl: Path) -> Path:
    """Where a run's log grows until the run finishes."""
    return jsonl.with_name(jsonl.name + ".part")


@dataclass
class LogContents:
    """What `read_log` found in a run's log.

    Attributes:
        source: the file read (the `.part` file of an interrupted run, else the finished one), or None.
        records: every input's records, by input path; an input written more than once keeps only its
            last attempt.
        unreadable: "FILE:LINE: why" for each line that is no record (not UTF-8, not JSON, no path),
            in file order; a cut last line is not among them.
        cut: the last line was cut off (the one being written when a run was killed).
    """

    source: Path | None = None
    records: dict[str, list[dict]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    cut: bool = False

    def unreadable_note(self, shown: int = 3) -> str:
        """One line naming the unreadable lines (the first `shown` of them), or "" when there are none.

        >>> LogContents(Path("d.jsonl"), unreadable=["d.jsonl:2: not JSON"]).unreadable_note()
        '1 line of d.jsonl was unreadable (d.jsonl:2: not JSON)'
        """
        count = len(self.unreadable)
        if not count:
            return ""
        more = f" and {count - shown} more" if count > shown else ""
        was = "line of {} was" if count == 1 else "lines of {} were"
        return f"{count} {was.format(self.source)} unreadable ({'; '.join(self.unreadable[:shown])}{more})"


def read_log(jsonl: Path) -> LogContents:
    """The one reader of `detect`'s JSON Lines, for `--resume` and `summarize`: every line is decoded
    on its own, so a bad line (a stray byte, a torn write, a hand edit) costs that line only.

    The log is the `.part` file of an interrupted run, else the finished file. A last line without
    its newline that does not parse is a killed run's (`cut`), not an error.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "detections.jsonl"
    >>> _ = part_path(log).write_bytes(b'{"path": "a.jpg", "faces": []}\\n\\xff\\n{"path": "b.jpg", "fa')
    >>> found = read_log(log)
    >>> list(found.records), found.unreadable[0].split(":", 1)[1], found.cut
    (['a.jpg'], '2: not UTF-8 (byte 0xff at column 1)', True)
    """
    source = part_path(jsonl) if part_path(jsonl).exists() else jsonl
    if not source.exists():
        return LogContents()
    found = LogContents(source)
    with open(source, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            record, why = _parse_line(raw)
            if why and not raw.endswith(b"\n"):
                found.cut = True  # the line being written when the run was killed
            elif why:
                found.unreadable.append(f"{source}:{number}: {why}")
            elif record is not None:
                attempt = found.records.setdefault(record["path"], [])
                if attempt and ("frame" not in attempt[-1] or record.get("frame") == 0):
                    attempt.clear()  # the input was done again: its last attempt stands
                attempt.append(record)
    return found


def _parse_line(raw: bytes) -> tuple[dict | None, str]:
    # (the record, "") or (None, why it is none); a blank line is neither.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
    if not text.strip():
        return None, ""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not JSON ({err.msg} at column {err.colno})"
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return None, "not a record (a JSON object with a \"path\")"
    return record, ""


def previous_records(jsonl: Path) -> dict[str, list[dict]]:
    """Every input's records in a previous run's log, by input path (empty when there is none): what
    `--resume` goes on from. Unreadable lines are named in a warning; their inputs have no record, so
    a resumed run detects them again.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "detections.jsonl"
    >>> _ = part_path(log).write_text('{"path": "a.jpg", "faces": []}\\n{"path": "a.jpg", "faces": []}\\n')
    >>> previous_records(log)
    {'a.jpg': [{'path': 'a.jpg', 'faces': []}]}
    """
    found = read_log(jsonl)
    if found.unreadable:
        log.warning("%s: skipped; the inputs they recorded are not done and are detected again when given",
                    found.unreadable_note())
    if found.cut:
        log.info("%s: its last line was cut off by a killed run; that input is not done", found.source)
    return found.records


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

    def write(self, record: dict) -> dict:
        """Append one record, flushed; returns the record written.

        A record holding a number JSON has no word for (NaN, infinity) is written as an error naming
        its input instead: a line of the log is always JSON, and the input counts as failed.

        >>> import tempfile
        >>> run = RunLog(Path(tempfile.mkdtemp()) / "detections.jsonl", [])
        >>> run.write({"path": "a.jpg", "faces": [{"score": float("nan")}]})["error"][:40]
        'a.jpg: the result holds a number that is'
        >>> run.close()
        """
        try:
            line = json.dumps(record, allow_nan=False)
        except ValueError:
            where = {key: record[key] for key in ("path", "frame") if key in record}
            record = {**where, "error": f"{record.get('path')}: the result holds a number that is not finite "
                                        "(NaN or infinity), so it is not written"}
            line = json.dumps(record)
        self._handle.write(line + "\n")
        self._handle.flush()
        return record

    def finish(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.part, self.jsonl)  # open() made it with the usual mode of a new file

    def close(self) -> None:
        """Stop writing without publishing (the run was interrupted): the `.part` file stays."""
        if not self._handle.closed:
            self._handle.close()
