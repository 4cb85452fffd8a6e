"""Decoding bombs in the shared image reader: a JPEG's scans are counted before it is decoded, so
every interface (detect, the service, training) refuses a scan bomb in milliseconds; an icon hiding a
huge PNG and PNG metadata that inflates past Pillow's limit are refused as bad inputs (issue 31)."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile, PngImagePlugin
from serve_helpers import FakePredictor, load_bench_module, png_claiming_size

from maskdetect.cli import main
from maskdetect.data.manifest import header_size
from maskdetect.images import DEFAULT_MAX_SCANS, ImageError, image_size, jpeg_scan_count, open_image
from maskdetect.serve import create_app

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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_chunk(kind: bytes, payload: bytes, *, after_pixels: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    data = buffer.getvalue()
    at = data.index(b"IEND" if after_pixels else b"IDAT") - 4  # before that chunk's length
    return data[:at] + _chunk(kind, payload) + data[at:]


# Metadata that inflates one byte past Pillow's limit: a 1 KB chunk.
_INFLATING = zlib.compress(b"\0" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), 9)
HOSTILE_PNGS = {
    "ztxt.png": _png_with_chunk(b"zTXt", b"comment\0\0" + _INFLATING),
    "itxt.png": _png_with_chunk(b"iTXt", b"comment\0\1\0en\0\0" + _INFLATING),
    "iccp.png": _png_with_chunk(b"iCCP", b"profile\0\0" + _INFLATING),
    "ztxt-after-pixels.png": _png_with_chunk(b"zTXt", b"comment\0\0" + _INFLATING, after_pixels=True),
}


def icon_hiding_png(side: int = 15000) -> bytes:
    """An ICO whose one entry says 16x16 and holds a side x side 1-bit PNG (issue 31's, 27 KB)."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.compress(
        row * (side % 500)) + packer.flush()
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b""))
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


class _DecodedError(Exception):
    pass


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding by Pillow raises _DecodedError (a header check must never get there)."""

    def decode(self, *args, **kwargs):
        raise _DecodedError(f"{self.format} {self.size} decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)


def test_an_icon_hiding_a_huge_png_is_refused_from_its_header(no_decoding):
    # Image.open of an ICO decodes its largest entry, whatever its header says: ICO (like every
    # format outside IMAGE_FORMATS) is refused before any plugin opens it.
    icon = icon_hiding_png()
    for read in (image_size, open_image):
        with pytest.raises(ImageError, match=r"^x\.ico: ICO is not a format read here \(only JPEG, PNG"):
            read(icon, name="x.ico")


def test_header_sizes_decode_nothing(no_decoding, tmp_path):
    # The manifest's size (EXIF-turned) comes from image_size too; PNG's getexif used to decode.
    (tmp_path / "big.png").write_bytes(png_claiming_size(6000, 5000))
    assert header_size(tmp_path / "big.png") == (6000, 5000)
    assert image_size(tmp_path / "big.png", oriented=True) == (6000, 5000)
    (tmp_path / "x.jpg").write_bytes(icon_hiding_png(64))
    assert header_size(tmp_path / "x.jpg") == (0, 0)  # unreadable, as for any other bad file


@pytest.mark.parametrize("name", HOSTILE_PNGS)
def test_png_metadata_that_inflates_past_the_limit_is_a_named_bad_image(name):
    with pytest.raises(ImageError, match=rf"^{name}: PNG metadata .* inflates past 1,048,576 bytes"):
        open_image(HOSTILE_PNGS[name], name=name)


def test_detect_reports_hostile_pngs_and_icons_and_resume_finishes(tmp_path, untrained_checkpoint, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (320, 240), (120, 120, 120)).save(photos / "plain.jpg")
    for name, data in HOSTILE_PNGS.items():
        (photos / name).write_bytes(data)
    (photos / "icon.png").write_bytes(icon_hiding_png(2000))
    out = tmp_path / "out"
    args = ["detect", str(photos), "--model", str(untrained_checkpoint), "--out", str(out), "--workers", "1"]
    for run in (args, [*args, "--resume"]):
        assert main(run) == 1  # bad inputs, the rest done: not 2, a run that failed
        printed = capsys.readouterr()
        records = {json.loads(line)["path"].split("/")[-1]: json.loads(line)
                   for line in (out / "detections.jsonl").read_text().splitlines()}
        assert "error" not in records["plain.jpg"] and records["plain.jpg"]["width"] == 320
        for name in HOSTILE_PNGS:
            assert "inflates past" in records[name]["error"] and name in printed.out + printed.err
        assert "ICO is not a format read here" in records["icon.png"]["error"]
    assert "1 input was done before" in printed.out  # the resumed run did not redo plain.jpg


def test_the_api_answers_hostile_pngs_and_icons_with_a_short_4xx():
    with TestClient(create_app(FakePredictor())) as client:
        for name, data in [*HOSTILE_PNGS.items(), ("icon.ico", icon_hiding_png())]:
            response = client.post("/v1/detect", files={"image": (name, data, "image/png")})
            assert response.status_code == 422, response.text
            detail = response.json()["detail"]
            assert detail.startswith(f"{name}: ") and ("inflates past" in detail or "ICO is not" in detail)
            assert "Traceback" not in response.text and len(response.text) < 500
