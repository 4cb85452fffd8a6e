"""Safe zip extraction: escapes, symlinks, bombs, damaged data, markers, and half-extracted archives."""

from __future__ import annotations

import io
import zipfile

import pytest
from download_fixtures import maskedface_zip, noise_jpeg, symlink_info, zip_with

from maskdetect.data.download.archive import (
    DamagedArchiveError,
    ExtractLimits,
    UnsafeArchiveError,
    extract_zip,
    is_extracted,
    marker_path,
)
from maskdetect.fileio import file_digest


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_extracts_real_layout_and_marks_done(tmp_path):
    archive = _write(tmp_path, "CMFD.zip", maskedface_zip())
    dest = tmp_path / "dest"
    assert extract_zip(archive, dest) == 2
    assert (dest / "CMFD/00000/00001_Mask.jpg").read_bytes() == noise_jpeg(1)
    assert is_extracted(dest, archive, file_digest(archive))
    assert _files_under(dest) == [
        ".extracted/CMFD.zip.done", "CMFD/00000/00001_Mask.jpg", "IMFD/00000/00001_Mask_Mouth_Chin.jpg"]
    (dest / "CMFD/00000/00001_Mask.jpg").unlink()
    assert extract_zip(archive, dest) == 0  # the marker says done: skipped


@pytest.mark.parametrize(
    ("entry", "reason"),
    [("../evil.txt", r"climbs out with '\.\.'"), ("CMFD/../../evil.txt", r"climbs out"),
     ("/tmp/evil.txt", "absolute path"), ("C:/evil.txt", "absolute path")],
)
def test_escaping_paths_refused_and_nothing_written(tmp_path, entry, reason):
    archive = _write(tmp_path, "bad.zip", zip_with([("CMFD/ok.jpg", b"fine"), (entry, b"owned")]))
    dest = tmp_path / "a" / "dest"
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_zip(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()
    assert not dest.exists() or _files_under(dest) == []
    assert not is_extracted(dest, archive, file_digest(archive))


def test_symlink_entry_refused(tmp_path):
    archive = _write(tmp_path, "link.zip", zip_with([(symlink_info("CMFD/link"), b"/etc/passwd")]))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "CMFD" / "link").exists()


def test_zip_bomb_refused_by_ratio_before_writing(tmp_path):
    archive = _write(tmp_path, "bomb.zip", zip_with([("CMFD/zeros.jpg", bytes(20_000_000))]))
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnsafeArchiveError, match=r"expands [\d,]+x"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "CMFD" / "zeros.jpg").exists()


def test_total_size_limit(tmp_path):
    archive = _write(tmp_path, "m.zip", maskedface_zip())
    with pytest.raises(UnsafeArchiveError, match="over the limit"):
        extract_zip(archive, tmp_path / "dest", limits=ExtractLimits(max_total_bytes=1000))


def test_size_lie_in_central_directory_caught_while_streaming(tmp_path):
    # Declare a smaller size than the data really has: the stream produces wrong data and must not land.
    data = bytearray(zip_with([("CMFD/a.jpg", noise_jpeg(3))]))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    central = data.rindex(b"PK\x01\x02")
    size_offset = central + 24  # uncompressed size field of the central directory record
    data[size_offset : size_offset + 4] = (info.file_size // 2).to_bytes(4, "little")
    archive = _write(tmp_path, "lie.zip", bytes(data))
    with pytest.raises((DamagedArchiveError, UnsafeArchiveError)):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "CMFD" / "a.jpg").exists()


def test_damaged_second_entry_leaves_no_file_at_all(tmp_path):
    body = bytearray(zip_with([("CMFD/a.jpg", noise_jpeg(4)), ("CMFD/b.jpg", noise_jpeg(5))]))
    second = body.index(b"PK\x03\x04", 4)
    body[second + 200 : second + 260] = bytes(60)
    archive = _write(tmp_path, "d.zip", bytes(body))
    dest = tmp_path / "dest"
    with pytest.raises(DamagedArchiveError, match="CMFD/b.jpg"):
        extract_zip(archive, dest)
    assert _files_under(dest) == []  # a.jpg was fine but the archive was not: nothing lands
    assert not marker_path(dest, archive).exists()


def test_not_a_zip(tmp_path):
    archive = _write(tmp_path, "page.zip", b"<html>sign in</html>")
    with pytest.raises(DamagedArchiveError, match="not a readable zip"):
        extract_zip(archive, tmp_path / "dest")


def test_staging_left_by_a_killed_run_is_cleared(tmp_path):
    archive = _write(tmp_path, "CMFD.zip", maskedface_zip())
    dest = tmp_path / "dest"
    stale = dest / ".extract-CMFD.zip.abc123" / "CMFD"
    stale.mkdir(parents=True)
    (stale / "half.jpg").write_bytes(b"half")
    assert extract_zip(archive, dest) == 2
    assert not (dest / ".extract-CMFD.zip.abc123").exists()
    assert not (dest / "CMFD" / "half.jpg").exists()


@pytest.mark.parametrize(
    "entry", ["SHA256SUMS", "sha256sums", ".extracted/CMFD.zip.done", ".extracted/other.zip.done",
              "CMFD.zip", "CMFD.zip.part", ".extract-CMFD.zip.x/a.jpg"],
)
def test_entries_named_like_control_files_are_refused(tmp_path, entry):
    # Issue 18.10: before, such an entry was extracted over SHA256SUMS, a marker or the archive itself.
    archive = _write(tmp_path, "CMFD.zip", zip_with([("CMFD/ok.jpg", b"fine"), (entry, b"owned")]))
    dest = tmp_path
    (dest / "SHA256SUMS").write_text("kept\n")
    with pytest.raises(UnsafeArchiveError, match="named like a control file"):
        extract_zip(archive, dest)
    assert (dest / "SHA256SUMS").read_text() == "kept\n"
    assert not (dest / ".extracted").exists() and not (dest / "CMFD").exists()


def test_a_fake_marker_never_makes_a_run_skip_an_archive(tmp_path):
    archive = _write(tmp_path, "CMFD.zip", maskedface_zip())
    dest = tmp_path / "dest"
    marker = marker_path(dest, archive)
    marker.parent.mkdir(parents=True)
    marker.write_text("2 files, 100 bytes\n")  # what a marker used to hold: it proves nothing
    assert not is_extracted(dest, archive, file_digest(archive))
    assert extract_zip(archive, dest) == 2  # before: 0, skipped on the fake marker's word
    assert marker.read_text().startswith(f"sha256 {file_digest(archive)}\n")
    other = _write(tmp_path, "other.zip", zip_with([("CMFD/x.jpg", b"x")]))
    assert not is_extracted(dest, "CMFD.zip", file_digest(other))  # a marker of another archive


@pytest.mark.parametrize("order", [["a/b.jpg", "a"], ["a", "a/b.jpg"], ["A", "a/b.jpg"]])
def test_a_folder_and_file_name_clash_is_an_unsafe_archive(tmp_path, order):
    archive = _write(tmp_path, "clash.zip", zip_with([(name, b"x") for name in order]))
    with pytest.raises(UnsafeArchiveError, match="both a file and a folder"):
        extract_zip(archive, tmp_path / "dest")  # before: FileExistsError or NotADirectoryError


@pytest.mark.parametrize(
    "entry", ["SHA256SUMS/x", "sha256sums/x/y.jpg", "IMFD.zip", "imfd.ZIP/a.jpg", "CMFD.zip.part/a.jpg",
              "CMFD.zip.part.validator", "IMFD.zip.part", "IMFD.zip.part.validator", "imfd-archive/a.jpg"],
)
def test_entries_never_land_on_control_files_or_sibling_archives(tmp_path, entry):
    # Issue 31.9. Before: SHA256SUMS/x made the checksum file a folder (every later run failed), IMFD.zip
    # replaced the other downloaded archive, and NAME.zip.part/... and NAME.zip.part.validator were written.
    archive = _write(tmp_path, "CMFD.zip", zip_with([("CMFD/ok.jpg", b"fine"), (entry, b"owned")]))
    siblings = {"IMFD.zip": b"the other archive", "imfd-archive": b"one more, named by the user"}
    for name, data in siblings.items():
        _write(tmp_path, name, data)
    with pytest.raises(UnsafeArchiveError, match="named like a control file of the download or another"):
        extract_zip(archive, tmp_path, siblings=siblings)
    assert {name: (tmp_path / name).read_bytes() for name in siblings} == siblings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CMFD.zip", "IMFD.zip", "imfd-archive"]


@pytest.mark.parametrize("taken", ["file", "folder"])
def test_an_entry_that_clashes_with_the_destination_extracts_nothing(tmp_path, taken):
    # Issue 31.9. Before: IMFD/b.jpg landed, then CMFD/a.jpg failed on the file CMFD (or the entry on the
    # folder IMFD/c.jpg): half an archive extracted, and a FileExistsError or IsADirectoryError.
    archive = _write(tmp_path, "x.zip", zip_with([("IMFD/b.jpg", b"b"), ("CMFD/a.jpg", b"a"),
                                                  ("IMFD/c.jpg", b"c")]))
    dest = tmp_path / "dest"
    dest.mkdir()
    if taken == "file":
        (dest / "CMFD").write_text("the user's own file")
    else:
        (dest / "IMFD" / "c.jpg").mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="nothing extracted"):
        extract_zip(archive, dest)
    assert not (dest / "IMFD" / "b.jpg").exists() and not marker_path(dest, archive).exists()
