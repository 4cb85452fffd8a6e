"""`maskdetect evaluate` and the metrics behind it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from train_fixtures import fast_config, make_split_tree, write_face

from maskdetect.checkpoint import make_checkpoint, save_checkpoint
from maskdetect.cli import main
from maskdetect.data.tree import MARKER
from maskdetect.faces.crop import CropPolicy
from maskdetect.metrics import calibration, classification_report, subtype_of
from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from maskdetect.train.loop import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    tree = make_split_tree(root / "tree")
    config = fast_config(tree, root / "run", epochs=5, lr=3e-3, warmup_epochs=0)
    train(config)
    return tree, root / "run" / "best.pt"


def test_evaluate_writes_every_figure(trained, tmp_path, capsys):
    tree, checkpoint = trained
    out = tmp_path / "report"
    assert (
        main(["evaluate", str(checkpoint), "--data", str(tree), "--split", "holdout", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "incorrect" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["count"] == 12
    assert report["accuracy"] >= 0.75
    assert set(report["per_class"]) == {"covered", "incorrect", "uncovered"}
    assert np.asarray(report["confusion_matrix"]).sum() == 12
    assert 0 <= report["ece"] <= 1
    assert json.loads((out / "confusion_matrix.json").read_text())["classes"][1] == "incorrect"
    for name in ("confusion_matrix.png", "reliability.png", "mistakes.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 200
    assert len((out / "predictions.csv").read_text().splitlines()) == 13


def test_plain_tree_with_source_label_names_and_subtypes(trained, tmp_path, caplog):
    _, checkpoint = trained
    rng = np.random.default_rng(1)
    plain = tmp_path / "plain"
    write_face(plain / "with_mask" / "0001_Mask.jpg", "covered", rng)
    write_face(plain / "IMFD" / "01000" / "0002_Mask_Mouth_Chin.jpg", "incorrect", rng)
    write_face(plain / "IMFD" / "01000" / "0003_Mask_Chin.jpg", "incorrect", rng)
    (plain / "IMFD" / "01000" / "0004_Mask_Chin.jpg").write_bytes(b"broken")
    out = tmp_path / "report"
    assert main(["evaluate", str(checkpoint), "--data", str(plain), "--out", str(out), "--gallery", "4"]) == 0
    assert any("0004_Mask_Chin.jpg" in r.getMessage() for r in caplog.records)  # skipped, and named
    report = json.loads((out / "metrics.json").read_text())
    assert report["count"] == 3 and report["skipped_unreadable"] == 1
    assert set(report["per_subtype"]) == {"correct", "nose_exposed", "nose_mouth_exposed"}
    assert report["per_class"]["uncovered"]["support"] == 0
    assert "covered_vs_incorrect_accuracy" in report


def test_a_tree_cut_with_another_crop_scale_is_warned_about(trained, tmp_path, caplog):
    tree, checkpoint = trained
    out = tmp_path / "report"
    holdout = ["--split", "holdout", "--out", str(out)]
    assert main(["evaluate", str(checkpoint), "--data", str(tree), *holdout]) == 0
    assert json.loads((out / "metrics.json").read_text())["tree_crop_scale"] is None  # made by hand
    assert not any("crop scale" in r.getMessage() for r in caplog.records)
    wide = tmp_path / "wide"
    shutil.copytree(tree, wide)
    (wide / MARKER).write_text(json.dumps({"crop_policy": CropPolicy(scale=1.8).to_dict()}))
    assert main(["evaluate", str(checkpoint), "--data", str(wide), *holdout]) == 0
    warning = [r.getMessage() for r in caplog.records if "crop scale" in r.getMessage()]
    assert len(warning) == 1 and "crop scale 1.8" in warning[0] and "scale 1.3" in warning[0]
    report = json.loads((out / "metrics.json").read_text())
    assert report["tree_crop_scale"] == 1.8 and report["crop_scale"] == 1.3


def test_split_tree_without_split_asks_for_one(trained, tmp_path, capsys):
    tree, checkpoint = trained
    assert main(["evaluate", str(checkpoint), "--data", str(tree), "--out", str(tmp_path / "r")]) == 2
    assert "is a split tree: choose a split with --split" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path, capsys):
    tree, _ = trained
    wrong = make_checkpoint(create_model("small_cnn", width=8), "resnet18", Preprocessing(input_size=16))
    save_checkpoint(wrong, tmp_path / "wrong.pt")
    args = [
        "evaluate",
        str(tmp_path / "wrong.pt"),
        "--data",
        str(tree),
        "--split",
        "holdout",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "wrong.pt" in err and "do not fit architecture 'resnet18'" in err
    assert not (tmp_path / "r").exists()


def test_report_figures_match_hand_counts():
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    targets = np.array([0, 1, 1, 2, 1])
    report = classification_report(targets, probabilities=probs)
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion_matrix"] == [[1, 0, 0], [2, 1, 0], [0, 0, 1]]
    incorrect = report["per_class"]["incorrect"]
    assert incorrect["precision"] == 1.0 and incorrect["recall"] == pytest.approx(1 / 3)
    assert incorrect["f1"] == pytest.approx(0.5)
    covered_f1 = 2 * (1 / 3) * 1 / (1 / 3 + 1)
    assert report["macro_f1"] == pytest.approx((covered_f1 + 0.5 + 1.0) / 3)
    # Choosing only between covered and incorrect: rows 0, 2 right; 1 and 4 still covered.
    assert report["covered_vs_incorrect_accuracy"] == pytest.approx(2 / 4)


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    targets = np.array([0, 1, 0, 0])
    # Bin (0.9, 1]: confidence 0.95, accuracy 0.5; bin (0.5, 0.6]: confidence 0.55, accuracy 1.
    assert calibration(probs, targets, bins=10)["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_subtypes_from_maskedface_names():
    assert subtype_of("x/00001_Mask.jpg") == "correct"
    assert subtype_of("00001_Mask_Nose_Mouth.jpg") == "chin_exposed"
    assert subtype_of("00001_Mask_Chin.jpg") == "nose_mouth_exposed"
    assert subtype_of("maksssksksss0_3.png") is None


def test_evaluation_uses_the_checkpoint_input_size(trained):
    _, checkpoint = trained
    state = torch.load(checkpoint, weights_only=True)
    assert state["preprocessing"]["input_size"] == 16


def test_subtypes_come_from_the_trees_split_manifest(trained, tmp_path):
    _, checkpoint = trained
    rng = np.random.default_rng(2)
    tree = tmp_path / "tree"
    write_face(tree / "holdout" / "incorrect" / "mfn_a_000.jpg", "incorrect", rng)
    write_face(tree / "holdout" / "covered" / "mfn_b_000.jpg", "covered", rng)
    (tree / "split_manifest.csv").write_text(
        "path,label,subtype,split,tree_path\n"
        "/src/IMFD/a_Mask_Nose_Mouth.jpg,incorrect,chin_exposed,holdout,holdout/incorrect/mfn_a_000.jpg\n"
        "/src/CMFD/b_Mask.jpg,covered,correct,holdout,holdout/covered/mfn_b_000.jpg\n"
    )
    out = tmp_path / "report"
    assert (
        main(["evaluate", str(checkpoint), "--data", str(tree), "--split", "holdout", "--out", str(out)]) == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    assert {name: s["count"] for name, s in report["per_subtype"].items()} == {
        "chin_exposed": 1,
        "correct": 1,
    }
