from __future__ import annotations

import csv
import re

import pytest

from maskdetect.cli import main
from maskdetect.demo.pipeline import DemoSettings, pick_holdout_photo, run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_one_report(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(DemoSettings(out=out, epochs=1, input_size=64, explain_per_class=1))

    assert [t.name for t in result.timings] == ["data", "train", "evaluate", "explain", "detect", "video"]
    html = result.report.read_text()
    for heading in ("Data: grouped", "Training", "Evaluation on the holdout", "Explanations", "Detection",
                    "Video: people, not frames", "How long"):
        assert heading in html
    # Every figure is inlined: the report opens without a server and without its folder.
    assert "src=\"data:image/png;base64," in html
    assert not re.search(r'src="(?!data:)', html)
    assert "groups found in more than one split: 0." in html

    # The detector ran on a photo the model never trained on.
    rows = list(csv.DictReader((out / "root_data" / "split_manifest.csv").open()))
    photo = pick_holdout_photo(out / "root_data" / "split_manifest.csv")
    assert {r["split"] for r in rows if r["path"] == str(photo)} == {"holdout"}
    assert (out / "detections" / "detections.jsonl").read_text().strip()
    # The video section: the clip made from that photo, tracked, its H.264 mp4 inlined.
    assert 'src="data:video/mp4;base64,' in html
    assert (out / "video" / "pan.tracks.jsonl").exists() and (out / "video" / "pan.timeline.csv").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "was not written by the demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
