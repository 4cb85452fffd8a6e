"""Decoding bombs in the shared image reader: a JPEG's scans are counted before it is decoded, so
every interface (detect, the service, training) refuses a scan bomb in milliseconds."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from serve_helpers import load_bench_module

from maskdetect.cli import main
from maskdetect.images import DEFAULT_MAX_SCANS, ImageError, jpeg_scan_count, open_image

bench = load_bench_module()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bench.scan_bomb_jpeg(side=2000, repeats=500)


def test_scan_counts_of_ordinary_jpegs():
    baseline, progressive = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(baseline, "JPEG")
    Image.new("RGB", (64, 48), (10, 200, 30)).save(progressive, "JPEG", progressive=True)
    assert jpeg_scan_count(baseline.getvalue()) == 1
    assert 1 < jpeg_scan_count(progressive.getvalue()) <= 20
    assert open_image(progressive.getvalue()).size == (64, 48)


def test_a_scan_bomb_is_refused_before_decoding(bomb):
    assert jpeg_scan_count(bomb) > 500
    assert jpeg_scan_count(bomb, stop_after=DEFAULT_MAX_SCANS) == DEFAULT_MAX_SCANS + 1  # stops early
    with pytest.raises(ImageError, match=r"bomb\.jpg: JPEG with more than 100 scans.*limit is 100"):
        open_image(bomb, name="bomb.jpg")
    assert open_image(bomb, max_scans=1000).size == (2000, 2000)  # the caller may allow more


def test_detect_reports_a_scan_bomb_and_goes_on(tmp_path, bomb, untrained_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "bomb.jpg").write_bytes(bomb)
    Image.new("RGB", (320, 240), (120, 120, 120)).save(photos / "plain.jpg")
    out = tmp_path / "out"
    main(["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out)])
    records = {json.loads(line)["path"].split("/")[-1]: json.loads(line)
               for line in (out / "detections.jsonl").read_text().splitlines()}
    assert "more than 100 scans" in records["bomb.jpg"]["error"]
    assert "error" not in records["plain.jpg"]
