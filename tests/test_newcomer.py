"""Issue 21, the newcomer's path: commands say where they write and what they did, errors speak in the
flags the user typed, failed runs leave no empty folders, and the pictures show what they should."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from download_fixtures import FixtureServer, maskedface_zip
from PIL import Image

from maskdetect.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src/maskdetect/assets/sample"


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


def _help(capsys: pytest.CaptureFixture, *command: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


# --- item 4: silent defaults -------------------------------------------------------------------------


def test_detect_and_explain_help_name_their_default_folders(capsys) -> None:
    assert "(default: ./detections/)" in _help(capsys, "detect")
    assert "(default: ./explanations/)" in _help(capsys, "explain")


def test_detect_ends_with_what_it_wrote_and_where(tmp_path: Path, checkpoint: Path, capsys) -> None:
    photos = tmp_path / "photos"
    for seed in range(2):
        _image(photos / f"p{seed}.jpg", seed)
    out = tmp_path / "results"
    assert main(["detect", str(photos), "--out", str(out), "--model", str(checkpoint),
                 "--detector", "haar"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"wrote 2 annotated files and detections.jsonl to {out}")


def test_explain_says_what_it_wrote_and_its_index_lists_every_map(
    tmp_path: Path, checkpoint: Path, capsys
) -> None:
    out = tmp_path / "explanations"
    common = ["--checkpoint", str(checkpoint), "--no-detect", "--method", "gradcam", "--out", str(out)]
    assert main(["explain", str(_image(tmp_path / "first.jpg", 1)), *common]) == 0
    assert f"wrote 3 files to {out}" in capsys.readouterr().out
    assert main(["explain", str(_image(tmp_path / "second.jpg", 2)), *common]) == 0
    index = json.loads((out / "index.json").read_text())
    # Both runs' maps are in the folder, so both are in its index (it used to hold the last run only).
    assert sorted(Path(entry["map"]).name for entry in index) == ["first_gradcam.npy", "second_gradcam.npy"]
    assert main(["explain", str(tmp_path / "first.jpg"), *common]) == 0  # again: replaced, not doubled
    assert len(json.loads((out / "index.json").read_text())) == 2


def test_evaluate_detect_prints_a_plain_summary_and_shows_progress(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    voc = tmp_path / "voc"
    _image(voc / "images" / "a.jpg")
    (voc / "annotations").mkdir()
    (voc / "annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>with_mask</name><bndbox><xmin>5</xmin>"
        "<ymin>5</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["evaluate-detect", str(voc), "--detection-only", "--detector", "haar"]) == 0
    report = json.loads(capsys.readouterr().out)  # the JSON stays on stdout, whole
    assert report["faces"] == 1
    err = terminal.getvalue()
    assert "photos: 100%" in err  # the progress bar
    assert "1 photos, 1 annotated faces" in err and "\nrecall     0.000" in err and "\nprecision" in err


def test_export_says_what_it_is_doing(tmp_path: Path, checkpoint: Path, capsys) -> None:
    assert main(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "m.onnx")]) == 0
    captured = capsys.readouterr()
    assert "exporting" in captured.err and "--model" in captured.out and "m.onnx" in captured.out


def test_a_failed_run_leaves_no_empty_output_folder(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "ffhq"
    assert main(["data", "download", "ffhq", str(dest), "--json", str(tmp_path / "missing.json")]) == 2
    assert "FFHQ index not found" in capsys.readouterr().err
    assert not dest.exists()
    kept = tmp_path / "kept"
    kept.mkdir()  # a folder that was there before the run stays, empty or not
    assert main(["data", "download", "ffhq", str(kept), "--json", str(tmp_path / "missing.json")]) == 2
    assert kept.is_dir()


def test_train_says_how_to_continue_after_ctrl_c(tmp_path: Path, capsys, monkeypatch) -> None:
    import maskdetect.train.loop as loop

    def interrupted(config, resume: bool = False) -> dict:
        Path(config.out).mkdir(parents=True)
        (Path(config.out) / loop.RESUME_FILE).write_bytes(b"state")
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    assert main(["train", "--data", str(tmp_path / "tree"), "--out", str(tmp_path / "run")]) == 130
    assert f"maskdetect train --out {tmp_path / 'run'} --resume" in capsys.readouterr().err


# --- item 5: wording ---------------------------------------------------------------------------------


def test_errors_name_the_flags_the_user_typed(tmp_path: Path, capsys) -> None:
    assert main(["data", "prepare", "--out", str(tmp_path / "tree")]) == 2
    err = capsys.readouterr().err
    assert "--maskedface-net, --ffhq, --voc, --folder" in err and "maskedface_net" not in err
    voc = str(SAMPLE / "andrewmvd")
    assert main(["data", "prepare", "--voc", voc, "--out", str(tmp_path / "tree"), "--min-face", "40"]) == 0
    assert main(["data", "prepare", "--voc", voc, "--out", str(tmp_path / "tree"), "--seed", "1",
                 "--min-face", "40"]) == 2
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it" in err and "overwrite=True" not in err


def test_pairs_file_header_is_not_a_pair(tmp_path: Path) -> None:
    from maskdetect.evaluation.commands import read_pairs

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("ilc2021_file\tandrewmvd_file\tdhash\na.jpg\tb.jpg\t0\nc.jpg\td.jpg\t1\n")
    assert read_pairs(pairs) == [("a.jpg", "b.jpg"), ("c.jpg", "d.jpg")]
    shipped = ROOT.parent / "shared/data/ilc2021-dev/near-duplicates-of-andrewmvd.tsv"
    assert len(read_pairs(shipped)) == 96


def test_verify_checks_the_zips_on_disk_without_links(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "mfn"
    with FixtureServer() as server:
        server.state.files["/CMFD.zip"] = maskedface_zip()
        assert main(["data", "download", "maskedface-net", str(dest), "--url", server.url("/CMFD.zip"),
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "download", "maskedface-net", str(dest), "--verify"]) == 0
    assert "1 zips match" in capsys.readouterr().out
    with open(dest / "CMFD.zip", "r+b") as archive:  # the kept zip rots on disk
        archive.seek(100)
        archive.write(b"rot")
    assert main(["data", "download", "maskedface-net", str(dest), "--verify"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err


def test_delete_archives_removes_each_zip_once_extracted(tmp_path: Path, capsys) -> None:
    assert "--delete-archives maskedface-net: delete each zip" in _help(capsys, "data", "download")
    dest = tmp_path / "mfn"
    with FixtureServer() as server:
        server.state.files["/CMFD.zip"] = maskedface_zip()
        assert main(["data", "download", "maskedface-net", str(dest), "--url", server.url("/CMFD.zip"),
                     "--no-progress", "--delete-archives"]) == 0
    assert "1 zips deleted after extraction" in capsys.readouterr().out
    assert not (dest / "CMFD.zip").exists() and (dest / "CMFD/00000/00001_Mask.jpg").is_file()


# --- item 6: pictures --------------------------------------------------------------------------------


def test_gradcam_overlay_lets_the_face_show_where_the_map_is_cold(tmp_path: Path) -> None:
    from maskdetect.explain.overlay import save_overlay

    heat = np.zeros((64, 64))
    heat[28:36, 28:36] = 1.0  # one small hot spot; the rest of the face must stay as it is
    green = Image.new("RGB", (64, 64), (0, 255, 0))
    save_overlay(green, heat, tmp_path / "o.png", symmetric=False)
    pixels = np.asarray(Image.open(tmp_path / "o.png").convert("RGB")).astype(int)
    pure_green = (pixels[..., 1] > 240) & (pixels[..., 0] < 15) & (pixels[..., 2] < 15)
    assert pure_green.sum() > 20_000  # the crop fills about 270 x 270 px of the figure


def test_contact_sheet_captions_are_wrapped_not_cut(tmp_path: Path, checkpoint: Path, monkeypatch) -> None:
    import maskdetect.explain.overlay as overlay
    from maskdetect.explain.overlay import wrap_caption

    drawn: list = []
    monkeypatch.setattr(overlay, "save_contact_sheet", lambda panels, path: drawn.extend(panels))
    _image(tmp_path / "faces" / "00009_Mask_Mouth_Chin_long_name.jpg")
    assert main(["explain", str(tmp_path / "faces"), "--checkpoint", str(checkpoint), "--no-detect",
                 "--method", "gradcam", "--out", str(tmp_path / "out")]) == 0
    caption = drawn[0].caption
    assert caption.startswith("00009_Mask_Mouth_Chin_long_name\n")
    assert all(len(line) <= overlay.CAPTION_WIDTH for line in wrap_caption(caption).split("\n"))
    assert wrap_caption(caption).replace("\n", "") == caption.replace("\n", "")


def test_learning_curves_mark_whole_epochs(tmp_path: Path, monkeypatch) -> None:
    from maskdetect.train import plots

    figures: list = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure))
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.5,
                "val_accuracy": 0.4} for e in (1, 2, 3)]
    plots.plot_learning_curves(history, tmp_path / "curves.png")
    for axes in figures[0].axes:
        ticks = [t for t in axes.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_mistake_gallery_keeps_whole_file_names(tmp_path: Path, monkeypatch) -> None:
    from maskdetect.train import plots

    figures: list = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure))
    name = "voc_andrewmvd-maksssksksss524_014.jpg"
    plots.plot_mistakes([{"image": Image.new("RGB", (8, 8)), "true": "covered", "predicted": "uncovered",
                          "confidence": 0.9, "name": name}], tmp_path / "m.png")
    title = figures[0].axes[0].get_title()
    assert title.split("\n", 2)[2].replace("\n", "") == name  # whole (evaluate cut it at 22 characters)
    assert all(len(line) <= 24 for line in title.split("\n"))  # and wrapped: no overlap with its neighbour


def test_contact_sheet_titles_of_many_lines_stay_on_the_sheet(tmp_path) -> None:
    from maskdetect.explain.overlay import Panel, save_contact_sheet

    def sheet(caption: str) -> tuple[int, int]:
        path = tmp_path / f"{len(caption)}.png"
        save_contact_sheet([Panel(Image.new("RGB", (16, 16)), np.ones((16, 16)), caption)] * 2, path)
        image = np.asarray(Image.open(path).convert("L"))
        # the first text row: the top edge of the sheet must be background, not a cut line of text
        return image.shape[0], int((image[0] < 200).sum())

    short_height, _ = sheet("covered 0.9")
    name = "covered__maskedface_net_andrewmvd-maksssksksss110_026"
    long_height, dark_on_top_edge = sheet(f"{name}\ncovered 0.86")
    assert long_height > short_height  # room made for the longer title
    assert dark_on_top_edge == 0
