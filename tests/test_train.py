"""`maskdetect train`: settings, class balance, bad input caught before training, outputs of a run."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
import yaml
from PIL import Image
from train_fixtures import fast_config, make_split_tree

from maskdetect.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_of
from maskdetect.cli import main
from maskdetect.data.tree import MARKER
from maskdetect.faces.crop import CropPolicy
from maskdetect.preprocess import Preprocessing
from maskdetect.train.augment import train_transform
from maskdetect.train.config import read_yaml_settings
from maskdetect.train.dataset import FaceFolder, scan_class_folders
from maskdetect.train.distributed import ResumableSampler
from maskdetect.train.loop import lr_factor, train

FAST = ["--model", "small_cnn", "--input-size", "16", "--batch-size", "8", "--workers", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_split_tree(tmp_path_factory.mktemp("tree"))


def test_train_writes_checkpoints_metrics_and_config(tree, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tree), "--out", str(out), "--epochs", "2", *FAST]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["epochs"] == 2
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(lines[0])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"] == "small_cnn" and saved["input_size"] == 16 and saved["balance"] == "sampler"
    for name in ("best.pt", "last.pt"):
        checkpoint = torch.load(out / name, weights_only=True)  # a plain dict
        assert checkpoint["arch"] == "small_cnn"
        assert preprocessing_of(checkpoint).input_size == 16
        assert preprocessing_of(checkpoint).classes == ("covered", "incorrect", "uncovered")
        model = model_from_checkpoint(checkpoint)
        assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_training_learns_a_learnable_tree(tree, tmp_path):
    config = fast_config(tree, tmp_path / "run", epochs=3, lr=3e-3, warmup_epochs=0, balance="loss")
    history = train(config)["history"]
    assert history[-1]["val_accuracy"] >= 0.75  # chance is 0.33
    assert history[-1]["val_loss"] < history[0]["train_loss"]


def test_yaml_config_is_read_and_flags_override_it(tree, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("epochs: 1\nbatch-size: 4\nmodel: small_cnn\nlabel_smoothing: 0.2\n")
    assert read_yaml_settings(settings) == {
        "epochs": 1,
        "batch_size": 4,
        "model": "small_cnn",
        "label_smoothing": 0.2,
    }
    out = tmp_path / "run"
    assert main(["train", "--config", str(settings), "--data", str(tree), "--out", str(out), *FAST]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["label_smoothing"] == 0.2  # from the file
    assert saved["batch_size"] == 8  # the flag wins


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epohcs: 3\n", "unknown setting 'epohcs'; valid settings: data, out, model"),
        ("epochs: many\n", "setting 'epochs' must be a int"),
        ("balance: maybe\n", "unknown balance 'maybe'; choices: sampler, loss, none"),
        ("- 1\n", "expected a mapping"),
        ("crop-scale: 9\n", "crop scale must be between 0.5 and 4.0, got 9.0"),
        ("crop-scale: wide\n", "setting 'crop-scale' must be a float"),
        ("grayscale: 1.5\n", "grayscale must be in [0, 1], got 1.5"),
    ],
)
def test_bad_config_is_named_before_training(tree, tmp_path, capsys, text, message):
    settings = tmp_path / "bad.yaml"
    settings.write_text(text)
    out = tmp_path / "run"
    assert main(["train", "--config", str(settings), "--data", str(tree), "--out", str(out), *FAST]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def _expect_error(args, capsys, message):
    assert main(["train", *args, *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_missing_class_is_named(tmp_path, capsys):
    tree = make_split_tree(tmp_path / "tree", {"train": 3, "validation": 2}, classes=("covered", "uncovered"))
    _expect_error(
        ["--data", str(tree), "--out", str(tmp_path / "run")], capsys, "no images of class incorrect"
    )
    assert not (tmp_path / "run").exists()


def test_empty_split_is_named(tmp_path, capsys):
    tree = make_split_tree(tmp_path / "tree", {"train": 3})
    for label in ("covered", "incorrect", "uncovered"):
        (tree / "validation" / label).mkdir(parents=True)
    _expect_error(
        ["--data", str(tree), "--out", str(tmp_path / "run")],
        capsys,
        f"{tree / 'validation'}: empty: no images",
    )


def test_missing_split_and_unknown_folder_are_named(tmp_path, capsys):
    tree = make_split_tree(tmp_path / "tree", {"train": 3})
    _expect_error(["--data", str(tree), "--out", str(tmp_path / "r")], capsys, "split 'validation' not found")
    (tree / "train" / "masks_maybe").mkdir()
    _expect_error(
        ["--data", str(tree), "--out", str(tmp_path / "r")], capsys, "masks_maybe: not a class folder"
    )


def test_corrupt_image_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    tree = make_split_tree(tmp_path / "tree", {"train": 4, "validation": 2})
    bad = tree / "train" / "incorrect" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    config = fast_config(tree, tmp_path / "run", epochs=1, batch_size=4)
    with caplog.at_level("WARNING"):
        assert train(config)["epochs"] == 1
    assert any("broken.jpg" in record.getMessage() for record in caplog.records)


def test_existing_run_is_not_overwritten_and_resume_checks_the_model(tree, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tree), "--out", str(out), "--epochs", "1", *FAST]) == 0
    _expect_error(["--data", str(tree), "--out", str(out)], capsys, "already holds a run")
    assert main(["train", "--resume", "--out", str(out), "--model", "resnet18"]) == 2
    assert "was trained as 'small_cnn', but --model is 'resnet18'" in capsys.readouterr().err
    _expect_error(["--resume", "--out", str(tmp_path / "nothing")], capsys, "no saved config")


def test_a_model_trains_with_the_input_normalisation_its_weights_expect(tree, tmp_path):
    from maskdetect.models.architectures import LITE_MEAN, LITE_STD

    out = tmp_path / "lite"
    args = ["--model", "efficientnet_lite0", "--pretrained", "--input-size", "32", "--workers", "0"]
    assert main(["train", "--data", str(tree), "--out", str(out), "--epochs", "1", *args]) == 0
    saved = preprocessing_of(load_checkpoint(out / "best.pt"))
    assert (saved.mean, saved.std) == (LITE_MEAN, LITE_STD)


def test_pretrained_without_offline_weights_is_refused(tree, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                str(tree),
                "--out",
                str(tmp_path / "r"),
                "--model",
                "resnet18",
                "--pretrained",
                "--epochs",
                "1",
                "--input-size",
                "16",
            ]
        )
        == 2
    )
    assert "no offline ImageNet weights ship for resnet18" in capsys.readouterr().err


def test_the_crop_policy_comes_from_the_tree_and_a_contradiction_is_refused(tmp_path, capsys):
    tree = make_split_tree(tmp_path / "tree", {"train": 3, "validation": 1})
    (tree / MARKER).write_text(json.dumps({"crop_policy": CropPolicy(scale=1.6).to_dict()}))
    out = tmp_path / "run"
    assert main(["train", "--data", str(tree), "--out", str(out), "--epochs", "1", *FAST]) == 0
    assert preprocessing_of(load_checkpoint(out / "best.pt")).crop_policy.scale == 1.6
    assert yaml.safe_load((out / "config.yaml").read_text())["crop_scale"] == 1.6
    capsys.readouterr()
    other = tmp_path / "other"
    assert main(["train", "--data", str(tree), "--out", str(other), "--crop-scale", "1.3", *FAST]) == 2
    assert "crop scale 1.6, not 1.3" in capsys.readouterr().err
    assert not other.exists()  # refused before anything was written
    plain = make_split_tree(tmp_path / "plain", {"train": 3, "validation": 1})  # no marker: the default
    assert train(fast_config(plain, tmp_path / "p", epochs=1))["epochs"] == 1
    assert preprocessing_of(load_checkpoint(tmp_path / "p" / "best.pt")).crop_policy == CropPolicy()


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_grayscale_share_turns_that_share_of_training_crops_grey(share):
    torch.manual_seed(0)
    transform = train_transform(Preprocessing(input_size=16), grayscale=share)
    red = Image.new("RGB", (24, 24), (200, 30, 30))
    grey = [bool(torch.allclose(*_unnormalised(transform(red))[:2], atol=1e-4)) for _ in range(20)]
    assert sum(grey) == 20 * share


def _unnormalised(tensor):
    mean = torch.tensor(Preprocessing(input_size=16).mean).view(3, 1, 1)
    std = torch.tensor(Preprocessing(input_size=16).std).view(3, 1, 1)
    return tensor * std + mean


def test_lr_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 5, 50) for step in range(50)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in zip(factors[5:], factors[6:], strict=False))
    assert factors[-1] == pytest.approx(0.0)


def test_balanced_sampler_draws_classes_evenly():
    targets = [0] * 900 + [1] * 30 + [2] * 270  # as skewed as the photo sets
    counts = Counter(targets)
    sampler = ResumableSampler(len(targets), weights=[1 / counts[t] for t in targets], seed=1)
    drawn = Counter(targets[i] for i in sampler)
    assert all(350 < drawn[c] < 450 for c in range(3)), drawn


def test_sampler_shards_are_disjoint_and_resume_part_way():
    shards = [list(ResumableSampler(10, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    sampler = ResumableSampler(10, seed=3, rank=0, world_size=2)
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == shards[0][2:] and len(sampler) == 3
    sampler.set_epoch(1)
    assert list(sampler) != shards[0]  # a new order each epoch


def test_unreadable_image_is_replaced_in_training_and_dropped_in_evaluation(tmp_path):
    tree = make_split_tree(tmp_path / "tree", {"train": 2})
    bad = tree / "train" / "covered" / "covered_0.jpg"
    bad.write_bytes(b"")
    samples = scan_class_folders(tree / "train", require_all=True)
    position = [path for path, _ in samples].index(bad)
    to_tensor = Preprocessing(input_size=16).to_tensor
    assert FaceFolder(samples, to_tensor)[position] is None
    image, target, used = FaceFolder(samples, to_tensor, substitute=True)[position]
    assert used == position + 1 and target == samples[position + 1][1] and image.shape == (3, 16, 16)


def test_training_reads_every_image_kind_a_split_tree_may_hold(tmp_path):
    # `data split` links whole-file faces with their own suffix, .gif included (the manifest accepts
    # it): training must see the same files, or those faces silently drop out.
    from PIL import Image

    tree = make_split_tree(tmp_path / "tree", {"train": 1})
    gif = tree / "train" / "uncovered" / "face.gif"
    Image.new("RGB", (20, 20), (200, 10, 10)).save(gif)
    paths = [path for path, _ in scan_class_folders(tree / "train", require_all=True)]
    assert gif in paths
