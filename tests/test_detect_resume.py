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
    args = ["detect", *map(str, inputs), "--model", str(checkpoint), "--out", str(out),
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


# --- issue 29: a mistyped path, and what a resumed run says it did ------------------------------------


def test_a_mistyped_path_fails_in_one_line_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from maskdetect.predict import Predictor

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a run with nothing to read")

    monkeypatch.setattr(Predictor, "from_options", no_model)
    monkeypatch.chdir(tmp_path)
    assert main(["detect", "typo.jpg"]) == 2  # before: loaded the model, wrote an empty log, exit 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "maskdetect: error: typo.jpg: no such file or folder"
    assert captured.out == ""
    assert not (tmp_path / "detections").exists()  # nothing written
    assert main(["detect", "typo.jpg", "other.png", "--out", "results"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "typo.jpg: no such file or folder" in err and "other.png" in err
    assert not (tmp_path / "results").exists()


def test_a_missing_path_beside_real_ones_is_a_failed_record_and_the_rest_is_done(
    photos, tmp_path, untrained_checkpoint, capsys
):
    out, log = tmp_path / "out", tmp_path / "out" / "detections.jsonl"
    missing = photos / "typo.jpg"
    assert _detect(untrained_checkpoint, out, photos / "a.jpg", missing, photos / "b.jpg") == 1
    assert f"skipped: {missing}: no such file or folder" in capsys.readouterr().err
    records = {json.loads(line)["path"]: json.loads(line) for line in log.read_text().splitlines()}
    assert records[str(missing)] == {"path": str(missing), "error": f"{missing}: no such file or folder"}
    assert "faces" in records[str(photos / "a.jpg")] and "faces" in records[str(photos / "b.jpg")]
    # Once the file is there, --resume reads it: its failed record is replaced, not doubled.
    Image.new("RGB", (48, 48), (90, 120, 150)).save(missing)
    assert _detect(untrained_checkpoint, out, photos / "a.jpg", missing, photos / "b.jpg", resume=True) == 0
    assert sorted(_paths(log)) == sorted(str(p) for p in (photos / "a.jpg", missing, photos / "b.jpg"))
    assert "error" not in json.loads(log.read_text().splitlines()[-1])


def test_a_resumed_run_says_what_it_did_this_time(photos, tmp_path, untrained_checkpoint, capsys):
    out = tmp_path / "out"
    args = ["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out),
            "--detector", "haar", "--workers", "1"]

    def last_line() -> str:
        return capsys.readouterr().out.strip().splitlines()[-1]

    assert main(args) == 0
    assert last_line() == f"wrote 2 annotated files and detections.jsonl to {out}"
    assert main([*args, "--resume"]) == 0  # before: "wrote 2 annotated files"
    assert last_line() == f"nothing left to do: all 2 inputs were done before; detections.jsonl in {out}"
    Image.new("RGB", (48, 48), (30, 60, 90)).save(photos / "c.jpg")
    assert main([*args, "--resume"]) == 0
    assert last_line() == f"wrote 1 annotated file and detections.jsonl to {out} (2 inputs were done before)"


# --- issue 31: a results file with a bad line ------------------------------------------------------------


def test_resume_goes_on_past_unreadable_lines_and_detects_their_inputs_again(
    photos, tmp_path, untrained_checkpoint, caplog
):
    # A killed run's log with a stray byte in a's line and b's line torn in the middle, then the
    # line it was writing. Before: UnicodeDecodeError, exit 2, and the run could not be resumed.
    out, log = tmp_path / "out", tmp_path / "out" / "detections.jsonl"
    Image.new("RGB", (48, 48), (30, 60, 90)).save(photos / "c.jpg")
    assert _detect(untrained_checkpoint, out, photos) == 0
    a, b, c = log.read_bytes().splitlines()
    part = log.with_name(log.name + ".part")
    part.write_bytes(a[:12] + b"\xff" + a[13:] + b"\n" + b[:20] + b"\n" + c + b"\n" + c[:15])
    log.unlink()
    assert _detect(untrained_checkpoint, out, photos, resume=True) == 0
    assert sorted(_paths(log)) == sorted(str(photos / n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"2 lines of {part} were unreadable")
    assert f"{part}:1: not UTF-8" in warned[0] and f"{part}:2: not JSON" in warned[0]
    assert "resuming: 1 inputs already done, 2 to go" in caplog.text  # c done; a and b again
