"""Downloads end to end against a local HTTP server: resume, retries, checksums, FFHQ index, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time

import pytest
from download_fixtures import FixtureServer, ffhq_index, maskedface_zip

from maskdetect.cli import main
from maskdetect.data.download.datasets import (
    CHECKSUMS_FILE,
    download_all,
    download_ffhq,
    download_maskedface_net,
    ffhq_specs,
    parse_url_args,
)
from maskdetect.data.download.transfer import (
    ChecksumError,
    DownloadError,
    FileSpec,
    NotEnoughSpaceError,
    check_free_space,
    download_file,
)

FAST = {"retries": 3, "backoff": 0.01, "timeout": 5.0}


@pytest.fixture
def server():
    with FixtureServer() as running:
        yield running


def _range_headers(server, path):
    return [headers.get("Range") for seen, headers in server.state.requests if seen == path]


@pytest.mark.parametrize("ignore_range", [False, True])
def test_cut_transfer_resumes_to_same_bytes(server, tmp_path, ignore_range):
    body = maskedface_zip(size=160)
    server.state.files["/CMFD.zip"] = body
    server.state.cut_after["/CMFD.zip"] = len(body) // 3
    server.state.ignore_range = ignore_range
    path = download_file(FileSpec(server.url("/CMFD.zip"), "CMFD.zip"), tmp_path, **FAST)
    assert path.read_bytes() == body
    ranges = _range_headers(server, "/CMFD.zip")
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(body) // 3}-"  # the second request asked to resume
    assert not (tmp_path / "CMFD.zip.part").exists()


def test_flaky_link_that_keeps_cutting_still_finishes(server, tmp_path):
    body = maskedface_zip()
    server.state.files["/f.zip"] = body
    server.state.cut_every["/f.zip"] = 8000
    download_file(FileSpec(server.url("/f.zip"), "f.zip"), tmp_path, retries=1, backoff=0.001)
    assert (tmp_path / "f.zip").read_bytes() == body
    starts = [int(h["Range"][6:-1]) for _, h in server.state.requests if "Range" in h]
    assert starts == list(range(8000, len(body), 8000))  # each try resumed where the last one stopped


def test_part_file_from_earlier_run_is_resumed(server, tmp_path):
    body = maskedface_zip()
    server.state.files["/a.zip"] = body
    (tmp_path / "a.zip.part").write_bytes(body[:1000])
    download_file(FileSpec(server.url("/a.zip"), "a.zip", size=len(body)), tmp_path, **FAST)
    assert (tmp_path / "a.zip").read_bytes() == body
    assert _range_headers(server, "/a.zip") == ["bytes=1000-"]


def test_file_changed_on_server_between_tries_restarts_cleanly(server, tmp_path):
    old, new = b"old version " * 5000, b"new version!" * 5000
    server.state.files["/v.zip"] = old
    server.state.etags["/v.zip"] = '"v1"'
    server.state.cut_after["/v.zip"] = 20_000
    spec = FileSpec(server.url("/v.zip"), "v.zip")
    with pytest.raises(DownloadError):
        download_file(spec, tmp_path, retries=0)
    assert (tmp_path / "v.zip.part").stat().st_size == 20_000
    server.state.files["/v.zip"], server.state.etags["/v.zip"] = new, '"v2"'
    download_file(spec, tmp_path, **FAST)
    assert (tmp_path / "v.zip").read_bytes() == new  # not 20 kB of the old file + the rest of the new
    assert server.state.requests[-1][1]["If-Range"] == '"v1"'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zip"]


def test_interrupt_stops_transfers_and_keeps_part_for_resume(server, tmp_path, monkeypatch):
    body = bytes(range(256)) * 1000
    server.state.files["/big.zip"] = body
    server.state.slow["/big.zip"] = 0.05  # about a second in all
    part = tmp_path / "big.zip.part"

    def interrupted(futures):  # Ctrl-C once the transfer is under way
        deadline = time.monotonic() + 10
        while not (part.exists() and part.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt
        yield  # a generator, as as_completed is

    monkeypatch.setattr("maskdetect.data.download.datasets.as_completed", interrupted)
    spec = FileSpec(server.url("/big.zip"), "big.zip", size=len(body))
    with pytest.raises(KeyboardInterrupt):
        download_all([spec], tmp_path, progress=False, **FAST)
    assert 0 < part.stat().st_size < len(body)  # stopped mid-file, not waited for
    assert not (tmp_path / "big.zip").exists()
    monkeypatch.undo()
    server.state.slow.clear()
    assert download_all([spec], tmp_path, progress=False, **FAST).downloaded == ["big.zip"]
    assert (tmp_path / "big.zip").read_bytes() == body
    assert _range_headers(server, "/big.zip")[-1].startswith("bytes=")


def test_retries_on_503_then_succeeds(server, tmp_path):
    server.state.files["/b.zip"] = b"payload" * 100
    server.state.fail_times["/b.zip"] = 2
    download_file(FileSpec(server.url("/b.zip"), "b.zip"), tmp_path, **FAST)
    assert (tmp_path / "b.zip").read_bytes() == b"payload" * 100
    assert len(server.state.requests) == 3


def test_gives_up_after_retries_and_404_is_not_retried(server, tmp_path):
    server.state.files["/c.zip"] = b"x"
    server.state.fail_times["/c.zip"] = 10
    with pytest.raises(DownloadError, match="gave up after 3 failed tries"):
        download_file(FileSpec(server.url("/c.zip"), "c.zip"), tmp_path, retries=2, backoff=0.01)
    before = len(server.state.requests)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(FileSpec(server.url("/missing.zip"), "m.zip"), tmp_path, **FAST)
    assert len(server.state.requests) == before + 1
    assert not (tmp_path / "c.zip").exists()


def test_md5_mismatch_names_the_file(server, tmp_path):
    index = ffhq_index(server, 3, bad_md5={1})
    (tmp_path / "ffhq.json").write_text(json.dumps(index))
    report = download_ffhq(tmp_path / "out", str(tmp_path / "ffhq.json"), jobs=2, progress=False, **FAST)
    bad = "thumbnails128x128/00000/00001.png"
    assert list(report.failed) == [bad]
    assert "md5 mismatch" in report.failed[bad] and bad in report.failed[bad]
    assert report.downloaded == ["thumbnails128x128/00000/00000.png", "thumbnails128x128/00000/00002.png"]
    assert not (tmp_path / "out" / bad).exists()  # a bad file never sits under its real name
    good = tmp_path / "out/thumbnails128x128/00000/00002.png"
    assert hashlib.md5(good.read_bytes()).hexdigest() == index["2"]["thumbnail"]["file_md5"]


def test_ffhq_index_over_http_with_limit(server, tmp_path):
    index = ffhq_index(server, 5)
    server.state.files["/ffhq-dataset-v2.json"] = json.dumps(index).encode()
    report = download_ffhq(tmp_path, server.url("/ffhq-dataset-v2.json"), limit=2, progress=False, **FAST)
    assert report.downloaded == ["thumbnails128x128/00000/00000.png", "thumbnails128x128/00000/00001.png"]
    assert not report.failed
    assert (tmp_path / "ffhq-dataset-v2.json").is_file()


def test_ffhq_specs_validate_input():
    with pytest.raises(ValueError, match="thumbnails, images"):
        ffhq_specs({}, "thumbs")
    with pytest.raises(ValueError, match="file_md5"):
        ffhq_specs({"0": {"thumbnail": {"file_url": "http://h/x"}}}, "thumbnails")
    unsafe = {"file_url": "u", "file_path": "../../etc/x.png", "file_size": 1, "file_md5": "a"}
    with pytest.raises(ValueError, match="unsafe"):
        ffhq_specs({"0": {"thumbnail": unsafe}}, "thumbnails")


def test_maskedface_net_download_records_sha256_then_detects_change(server, tmp_path):
    body = maskedface_zip()
    server.state.files["/CMFD.zip"] = body
    dest = tmp_path / "mfn"
    report = download_maskedface_net(dest, [(server.url("/CMFD.zip"), "")], progress=False, **FAST)
    assert report.extracted == ["CMFD.zip"] and not report.failed
    assert (dest / "CMFD/00000/00001_Mask.jpg").is_file()
    assert (dest / "IMFD/00000/00001_Mask_Mouth_Chin.jpg").is_file()
    assert (dest / CHECKSUMS_FILE).read_text() == f"{hashlib.sha256(body).hexdigest()}  CMFD.zip\n"
    # A re-run skips the extracted archive without a request.
    requests = len(server.state.requests)
    again = download_maskedface_net(dest, [(server.url("/CMFD.zip"), "")], progress=False, **FAST)
    assert again.extracted == [] and again.skipped == ["CMFD.zip"]
    assert len(server.state.requests) == requests
    with open(dest / "CMFD.zip", "r+b") as archive:  # the kept zip rots on disk
        archive.seek(100)
        archive.write(b"rot")
    checked = download_maskedface_net(dest, [(server.url("/CMFD.zip"), "")], verify=True, progress=False)
    assert "sha256 mismatch" in checked.failed["CMFD.zip"]


def test_free_disk_checked_before_downloading(server, tmp_path, monkeypatch):
    body = maskedface_zip()
    server.state.files["/CMFD.zip"] = body
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("maskdetect.data.download.transfer.shutil.disk_usage",
                        lambda path: usage._replace(free=1000))
    with pytest.raises(NotEnoughSpaceError, match=f"need {len(body):,} bytes .* free 1,000 bytes"):
        download_maskedface_net(tmp_path, [(server.url("/CMFD.zip"), "")], progress=False, **FAST)
    assert _range_headers(server, "/CMFD.zip") == ["bytes=0-0"]  # only the size probe
    assert not (tmp_path / "CMFD.zip").exists() and not (tmp_path / "CMFD.zip.part").exists()


def test_wrong_checksum_is_not_extracted(server, tmp_path):
    server.state.files["/IMFD.zip"] = maskedface_zip()
    dest = tmp_path / "mfn"
    dest.mkdir()
    (dest / CHECKSUMS_FILE).write_text(f"{'ab' * 32}  IMFD.zip\n")
    report = download_maskedface_net(dest, [(server.url("/IMFD.zip"), "")], progress=False, **FAST)
    assert "sha256 mismatch" in report.failed["IMFD.zip"]
    assert not (dest / "IMFD").exists() and not (dest / "IMFD.zip").exists()


def test_damaged_zip_is_not_extracted_nor_recorded(server, tmp_path):
    body = bytearray(maskedface_zip())
    body[len(body) // 4 : len(body) // 4 + 64] = bytes(64)  # inside the first member's data
    server.state.files["/x.zip"] = bytes(body)
    dest = tmp_path / "mfn"
    report = download_maskedface_net(dest, [(server.url("/x.zip"), "")], progress=False, **FAST)
    assert "damaged" in report.failed["x.zip"]
    assert not (dest / "CMFD").exists() and not (dest / "IMFD").exists()
    assert not (dest / CHECKSUMS_FILE).exists()
    assert [p.name for p in dest.iterdir() if p.name.startswith(".extract")] == []


def test_web_page_instead_of_file_is_explained(tmp_path, server):
    server.state.files["/uc"] = b"<html>Google Drive can't scan this file for viruses</html>"
    server.state.content_types["/uc"] = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="web page, not the file"):
        download_file(FileSpec(server.url("/uc"), "CMFD.zip"), tmp_path, **FAST)
    assert not (tmp_path / "CMFD.zip").exists()


def test_google_drive_warning_page_is_followed(server, tmp_path):
    body = maskedface_zip()
    server.state.files["/download"] = body
    form = (f'<html><form id="download-form" action="{server.url("/download")}" method="get">'
            '<input type="submit" value="Download anyway"><input type="hidden" name="id" value="F1">'
            '<input type="hidden" name="confirm" value="t"></form></html>')
    server.state.files["/uc"] = form.encode()
    server.state.content_types["/uc"] = "text/html; charset=utf-8"
    pairs = [(server.url("/uc?id=F1"), "CMFD.zip")]
    report = download_maskedface_net(tmp_path, pairs, progress=False, **FAST)
    assert report.extracted == ["CMFD.zip"] and not report.failed
    assert (tmp_path / "CMFD.zip").read_bytes() == body
    # probe: 1 byte of the page, the whole page, the file; then the download: page, file
    assert [path for path, _ in server.state.requests] == ["/uc", "/uc", "/download", "/uc", "/download"]


def test_size_differing_from_index_is_a_checksum_error(server, tmp_path):
    server.state.files["/t.png"] = b"short"
    with pytest.raises(ChecksumError, match="5 bytes, expected 99"):
        download_file(FileSpec(server.url("/t.png"), "t.png", size=99), tmp_path, **FAST)
    assert len(server.state.requests) == 1  # not retried: a wrong size will not fix itself


def test_url_arguments_and_disk_check(tmp_path):
    links = tmp_path / "links.txt"
    links.write_text("# MaskedFace-Net\nhttps://drive.example/d?id=1 CMFD_0.zip\n\n")
    assert parse_url_args(["IMFD.zip=https://x/y?a=b"], links) == [
        ("https://x/y?a=b", "IMFD.zip"), ("https://drive.example/d?id=1", "CMFD_0.zip")]
    with pytest.raises(ValueError, match="not an http"):
        parse_url_args(["ftp://x/y.zip"])
    with pytest.raises(ValueError, match="same name: a.zip"):
        pairs = [("http://127.0.0.1:9/x", "a.zip"), ("http://127.0.0.1:9/y", "a.zip")]
        download_maskedface_net(tmp_path, pairs, progress=False, retries=0)
    with pytest.raises(NotEnoughSpaceError, match=r"need 1,000,000,000,000,000,000 bytes .* free"):
        check_free_space(tmp_path, 10**18)


def test_cli_lists_catalogue_and_asks_for_links(capsys, tmp_path):
    assert main(["data", "download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "https://github.com/cabani/MaskedFace-Net" in out
    assert "https://github.com/NVlabs/ffhq-dataset" in out
    assert "CC BY-NC-SA 4.0" in out
    assert main(["data", "download", "maskedface-net", str(tmp_path)]) == 2
    assert "https://github.com/cabani/MaskedFace-Net" in capsys.readouterr().err


def test_cli_downloads_ffhq_and_reports_failure(capsys, server, tmp_path):
    (tmp_path / "ffhq.json").write_text(json.dumps(ffhq_index(server, 2, bad_md5={0})))
    code = main(["data", "download", "ffhq", str(tmp_path / "out"), "--json", str(tmp_path / "ffhq.json"),
                 "--no-progress", "--retries", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 files downloaded" in captured.out
    assert "FAILED thumbnails128x128/00000/00000.png" in captured.err


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdetect", *argv], capture_output=True, text=True,
                          timeout=120)


def test_cli_download_of_unreachable_index_is_one_error_line(server, tmp_path):
    # A DownloadError (a RuntimeError) used to escape cli.main as a traceback.
    result = _run_cli("data", "download", "ffhq", str(tmp_path / "out"), "--json", server.url("/gone.json"),
                      "--no-progress", "--retries", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("maskdetect: error: ")]
    assert len(errors) == 1 and "/gone.json" in errors[0] and "HTTP 404" in errors[0]


def test_cli_os_error_is_one_error_line(tmp_path):
    # An OSError outside the old list (here IsADirectoryError) used to escape as a traceback.
    target = tmp_path / "manifest.csv"
    target.mkdir()
    (tmp_path / "voc" / "annotations").mkdir(parents=True)
    (tmp_path / "voc" / "images").mkdir()
    result = _run_cli("data", "manifest", "--voc", str(tmp_path / "voc"), "-o", str(target))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("maskdetect: error: ")


def test_one_archive_cannot_replace_another_of_the_same_download(server, tmp_path):
    # Issue 31.9. Before: CMFD.zip's entry IMFD.zip replaced the downloaded IMFD.zip, whose sha256 was then
    # recorded from the attacker's bytes.
    from download_fixtures import zip_with

    imfd = maskedface_zip()
    server.state.files["/CMFD.zip"] = zip_with([("CMFD/a.jpg", b"fine"), ("IMFD.zip", b"not the archive")])
    server.state.files["/IMFD.zip"] = imfd
    dest = tmp_path / "mfn"
    report = download_maskedface_net(dest, [(server.url("/CMFD.zip"), ""), (server.url("/IMFD.zip"), "")],
                                      progress=False, **FAST)
    assert "named like a control file" in report.failed["CMFD.zip"]
    assert report.extracted == ["IMFD.zip"] and (dest / "IMFD.zip").read_bytes() == imfd
    assert (dest / CHECKSUMS_FILE).read_text() == f"{hashlib.sha256(imfd).hexdigest()}  IMFD.zip\n"
    assert not (dest / "CMFD" / "a.jpg").exists()


def test_a_checksum_file_made_a_folder_by_an_older_version_is_named(server, tmp_path):
    # Issue 31.9: a cache an unsafe archive damaged before the fix says what to move, in one line.
    server.state.files["/CMFD.zip"] = maskedface_zip()
    (tmp_path / CHECKSUMS_FILE / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match=f"{CHECKSUMS_FILE}: not a file .* move it away"):
        download_maskedface_net(tmp_path, [(server.url("/CMFD.zip"), "")], progress=False, **FAST)
