"""Issue 18.7/18.9 and 21.1: `detect` writes one record per input however it is reached, a resumed
run keeps the records of inputs it was not given, and the exit status says when inputs failed."""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from maskdetect.cli import main
from maskdetect.detect.inputs import collect_inputs
from maskdetect.images import DEFAULT_MAX_PIXELS


def _paths(log):
    return [json.loads(line)["path"] for line in log.read_text().splitlines()]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (48, 48), (90, 120, 150)).save(folder / name)
    return folder


def _detect(checkpoint, out, *inputs, resume=False):
    args = ["detect", *map(str, inputs), "--checkpoint", str(checkpoint), "--out", str(out),
            "--detector", "haar", "--no-images", "--workers", "1"]
    return main([*args, "--resume"] if resume else args)


def test_an_input_reached_twice_is_one_job(photos):
    twice = [photos / "a.jpg", photos / "a.jpg", photos, photos / ".." / "photos" / "b.jpg"]
    jobs, errors = collect_inputs(twice)
    assert errors == [] and [job.path.name for job in jobs] == ["a.jpg", "b.jpg"]


def test_resume_never_writes_a_second_record_for_one_input(photos, tmp_path, untrained_checkpoint):
    out, log = tmp_path / "out", tmp_path / "out" / "detections.jsonl"
    inputs = [photos / "a.jpg", photos / "a.jpg", photos]  # a file twice, and its folder
    counts = []
    for resume in (False, True, True):
        assert _detect(untrained_checkpoint, out, *inputs, resume=resume) == 0
        counts.append(len(_paths(log)))
    assert counts == [2, 2, 2]  # before: 3 -> 6 -> 12 (2 -> 4 -> 8 for a file given twice)
    # Given another way (absolute, or through ..), a finished input is still recognised as done.
    assert _detect(untrained_checkpoint, out, (photos / ".." / "photos").resolve(), resume=True) == 0
    assert len(_paths(log)) == 2


def test_resume_keeps_the_records_of_inputs_it_was_not_given(photos, tmp_path, untrained_checkpoint):
    # The README's two lines: `detect photos/ clip.mp4 --out results/`, then `detect photos/ --resume`.
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (48, 48))
    for _ in range(3):
        writer.write(np.full((48, 48, 3), 100, np.uint8))
    writer.release()
    out, log = tmp_path / "results", tmp_path / "results" / "detections.jsonl"
    assert _detect(untrained_checkpoint, out, photos, clip) == 0
    first = log.read_text().splitlines()
    assert len(first) == 2 + 3 + 1  # two photos, three frames and the clip's summary
    assert _detect(untrained_checkpoint, out, photos, resume=True) == 0
    assert sorted(log.read_text().splitlines()) == sorted(first)  # before: the clip's 4 lines were gone


def test_an_old_log_with_doubled_records_is_repaired_on_resume(photos, tmp_path, untrained_checkpoint):
    out, log = tmp_path / "out", tmp_path / "out" / "detections.jsonl"
    assert _detect(untrained_checkpoint, out, photos) == 0
    log.write_text(log.read_text() * 4)  # what the old resume left: every record four times
    assert _detect(untrained_checkpoint, out, photos, resume=True) == 0
    assert sorted(_paths(log)) == sorted(str(photos / n) for n in ("a.jpg", "b.jpg"))


def _huge_png(path, side):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_some_failed_exits_1_naming_each_with_our_pixel_limit(photos, tmp_path, untrained_checkpoint, capsys):
    _huge_png(photos / "huge.png", 30_000)  # 900 MP: past Pillow's own guard (500 MP) too
    (photos / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")
    assert _detect(untrained_checkpoint, tmp_path / "out", photos) == 1  # before: 0
    err = capsys.readouterr().err
    assert f"huge.png: 900,000,000 pixels is over the limit of {DEFAULT_MAX_PIXELS:,}" in err
    assert "500000000" not in err and "500,000,000" not in err
    assert "gone.jpg: a link to nothing" in err
    (photos / "huge.png").unlink()
    (photos / "gone.jpg").unlink()
    assert _detect(untrained_checkpoint, tmp_path / "out", photos) == 0


def test_the_exit_codes_are_in_detects_help(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "1    some inputs failed" in text and "2    usage error" in text
