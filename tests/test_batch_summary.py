"""Issue 20: the inputs and plan of `maskdetect batch`, and the summary by folder or day (no Ray needed)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from PIL import Image

from maskdetect.cli import main
from maskdetect.detect.batch_inputs import read_inputs, update_plan
from maskdetect.detect.summary import load_detections, summarize


@pytest.fixture
def photos(tmp_path):
    for name in ("cam1/a.jpg", "cam1/b.png", "cam2/c.jpg", "cam2/clip.mp4"):
        path = tmp_path / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".mp4":
            path.write_bytes(b"not really a video")
        else:
            Image.new("RGB", (32, 24)).save(path)
    return tmp_path / "photos"


def test_inputs_from_folders_patterns_lists_and_tables(photos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nphotos/cam1/a.jpg\n/elsewhere/x.jpg\n")
    table = tmp_path / "table.csv"
    pd.DataFrame({"file": ["photos/cam2/c.jpg", "photos/cam2/d.jpg"], "date": ["2021-03-04", "2021-03-05"]}
                 ).to_csv(table, index=False)
    given = [photos / "cam1", str(photos / "**" / "c.jpg"), listing, table, "nothing/*.jpg"]
    inputs, errors = read_inputs(given, path_column="file")
    names = [p.replace(str(tmp_path), "") for p in inputs["path"]]
    # A path reached twice is one input; list and table paths are relative to their file, kept unchecked.
    assert names == ["/photos/cam1/a.jpg", "/photos/cam1/b.png", "/photos/cam2/c.jpg", "/elsewhere/x.jpg",
                     "/photos/cam2/d.jpg"]
    dates = inputs.set_index("path")["date"].dropna().to_dict()
    assert dates == {str(photos / "cam2" / "d.jpg"): "2021-03-05"}
    assert errors == ["nothing/*.jpg: the pattern matches no file"]
    with pytest.raises(ValueError, match=r"table.csv: no column 'path'.*--path-column"):
        read_inputs([table])
    _, errors = read_inputs([photos])
    assert errors == [f"{photos / 'cam2' / 'clip.mp4'}: a video; `maskdetect detect` reads videos"]


def test_an_input_keeps_its_shard_when_the_plan_grows(tmp_path):
    first = update_plan(tmp_path, pd.DataFrame({"path": list("abcde")}), 2)
    again = update_plan(tmp_path, pd.DataFrame({"path": list("edcbafg")}), 3)
    assert first["shard"].tolist() == [0, 0, 1, 1, 2]
    assert dict(zip(again["path"], again["shard"], strict=True)) == {
        "a": 0, "b": 0, "c": 1, "d": 1, "e": 2, "f": 3, "g": 3}
    with pytest.raises(ValueError, match="shard size must be at least 1, got 0"):
        update_plan(tmp_path / "new", pd.DataFrame({"path": ["a"]}), 0)


def _record(path, *labels):
    faces = [{"box": [0, 0, 10, 10], "label": label, "score": 0.9, "probabilities": {label: 0.9},
              "detection_score": 0.8} for label in labels]
    return {"path": path, "width": 64, "height": 48, "faces": faces}


def test_summary_of_the_threaded_detect_log_by_folder_writes_csv_and_png(tmp_path, capsys):
    log = tmp_path / "detections.jsonl"
    records = [_record("/p/cam1/a.jpg", "covered", "uncovered"), _record("/p/cam1/b.jpg"),
               _record("/p/cam2/c.jpg", "incorrect"), {"path": "/p/cam2/bad.jpg", "error": "corrupt"},
               {"path": "/p/v.mp4", "frame": 0, "width": 8, "height": 8, "faces": []},
               {"path": "/p/v.mp4", "frames": 1, "expected_frames": 1}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["summarize", str(log), "--by", "part:-2"]) == 0
    table = pd.read_csv(tmp_path / "summary.csv")
    columns = ["part:-2", "images", "failed", "faces", "covered", "incorrect", "uncovered"]
    assert table[columns].values.tolist() == [
        ["cam1", 2, 0, 2, 1, 0, 1], ["cam2", 2, 1, 1, 0, 1, 0], ["p", 1, 0, 0, 0, 0, 0]]
    assert table["covered_share"].tolist()[0] == 0.5
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


def test_summary_by_a_date_column_per_day():
    rows = pd.DataFrame({"path": ["/a.jpg", "/a.jpg", "/b.jpg", "/c.jpg"],
                         "label": ["covered", "uncovered", "covered", None], "error": [None] * 4,
                         "taken": ["2021-03-04 09:00", "2021-03-04 09:00", "2021-03-04 18:30", "bad"]})
    table = summarize(rows, ["taken:day"])
    assert table[["taken:day", "images", "faces", "covered", "uncovered"]].values.tolist() == [
        ["2021-03-04", 2, 3, 2, 1], ["no date", 1, 0, 0, 0]]
    with pytest.raises(ValueError, match="no column 'day'"):
        summarize(rows, ["day"])
    with pytest.raises(ValueError, match="unknown date unit 'fortnight'"):
        summarize(rows, ["taken:fortnight"])


def test_summarize_names_what_it_could_not_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="no batch output"):
        load_detections(tmp_path)


def test_without_the_ray_extra_batch_says_how_to_get_it(monkeypatch, tmp_path):
    import sys

    from maskdetect.detect.ray_batch import BatchOptions, run_batch

    monkeypatch.setitem(sys.modules, "ray", None)  # as in the base install, where ray is missing
    with pytest.raises(ImportError, match=r"pip install 'maskdetect\[ray\]'"):
        run_batch([tmp_path], BatchOptions(tmp_path / "out"))


def test_the_summary_reads_detects_log_as_detect_does(tmp_path):
    # A log cut by a killed run, with an input done twice: the cut line is skipped and the input's
    # last attempt alone counts (detect.log.previous_records, detect's own reader).
    face = {"box": [0, 0, 10, 10], "label": "covered", "score": 0.9, "detection_score": 0.9,
            "probabilities": {"covered": 0.9, "incorrect": 0.05, "uncovered": 0.05}}
    lines = [json.dumps({"path": "a/1.jpg", "width": 20, "height": 20, "faces": [face]}),
             json.dumps({"path": "a/1.jpg", "width": 20, "height": 20, "faces": [face]}),
             json.dumps({"path": "a/2.jpg", "width": 20, "height": 20, "faces": [face, face]}),
             '{"path": "a/3.jpg", "fa']
    (tmp_path / "detections.jsonl").write_text("\n".join(lines))
    table = load_detections(tmp_path)
    assert sorted(table["path"]) == ["a/1.jpg", "a/2.jpg", "a/2.jpg"]


# --- issue 31: hostile file names and results files ----------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_left_out_by_name_and_the_rest_is_planned(photos, tmp_path):
    # A Latin-1 name from an old share: Parquet holds UTF-8 only (before: UnicodeEncodeError, exit 2,
    # the file not named, nothing planned). The walk is detect's, so `detect` still reads it.
    odd = os.fsencode(photos / "cam1") + b"/caf\xe9.jpg"
    Image.new("RGB", (32, 24)).save(odd)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"photos/cam2/c.jpg\nphotos/cam1/caf\xe9.jpg\n")
    inputs, errors = read_inputs([photos / "cam1", listing])
    names = [p.replace(str(photos), "") for p in inputs["path"]]
    assert names == ["/cam1/a.jpg", "/cam1/b.png", "/cam2/c.jpg"]
    shown = f"{photos / 'cam1'}/caf\\xe9.jpg: the file name is not UTF-8"
    assert [line[:len(shown)] for line in errors] == [shown, shown]
    assert all(line.encode("utf-8") for line in errors)  # printable as they are
    assert update_plan(tmp_path / "out", inputs, 2)["shard"].tolist() == [0, 0, 1]


def _faces_log(path, records, corrupt=None):
    # detect's JSON Lines of `records`, with lines replaced by the bytes given in `corrupt` {index: bytes}.
    lines = [json.dumps(r).encode() for r in records]
    for index, raw in (corrupt or {}).items():
        lines[index] = raw
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_summarize_names_and_counts_unreadable_lines_and_exits_1(tmp_path, capsys):
    # 25 faces on 10 photos; 3 lines spoilt in the middle, one killed-run line at the end. Before: a
    # stray byte stopped it (UnicodeDecodeError, exit 2); bad JSON lost faces in silence, exit 0.
    records = [_record(f"/p/cam{i % 2}/{i}.jpg", *["covered"] * n) for i, n in enumerate([1, 2, 3, 4, 1, 2,
                                                                                            3, 4, 3, 2])]
    log = tmp_path / "detections.jsonl"
    line = [json.dumps(r).encode() for r in records]
    _faces_log(log, records, {1: line[1][:40] + b"\xff" + line[1][41:], 3: line[3][:30],
                              6: json.dumps({"path": "/p/cam0/6.jpg", "faces": 3}).encode()})
    with open(log, "ab") as handle:
        handle.write(b'{"path": "/p/cam1/killed.jpg", "fa')  # the line a killed run was writing
    assert main(["summarize", str(log), "--by", "part:-2"]) == 1
    captured = capsys.readouterr()
    table = pd.read_csv(tmp_path / "summary.csv")  # the summary is still written, and printed
    assert table["faces"].sum() == 25 - 2 - 4 - 3 and "wrote" in captured.out  # lines 2, 4 and 7 lost
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and warning[0].startswith(f"warning: 3 lines of {log} were unreadable")
    assert f"{log}:2: not UTF-8 (byte 0xff at column 41)" in warning[0]
    assert f"{log}:4: not JSON" in warning[0] and "/p/cam0/6.jpg lacks its fields" in warning[0]
    assert "killed.jpg" not in captured.err
    # A log whose only flaw is the cut last line is read in silence, exit 0.
    _faces_log(log, records)
    with open(log, "ab") as handle:
        handle.write(b'{"path": "/p/cam1/killed.jpg", "fa')
    assert main(["summarize", str(log), "--by", "part:-2"]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["summarize", "--help"])
    assert "1    the summary was written, but some lines" in capsys.readouterr().out
