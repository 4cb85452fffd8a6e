"""Issue 18.5: every field a checkpoint carries is checked against sane bounds on load, in one line."""

from __future__ import annotations

import copy
import reprlib

import pytest
import torch

from maskdetect.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from maskdetect.cli import main
from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from tests.train_fixtures import make_split_tree


@pytest.fixture(scope="module")
def good() -> dict:
    model = create_model("small_cnn", width=4)
    return make_checkpoint(model, "small_cnn", Preprocessing(input_size=32), model_kwargs={"width": 4})


def _set(checkpoint: dict, dotted: str, value: object) -> dict:
    bad = copy.deepcopy(checkpoint)
    *parents, last = dotted.split(".")
    target = bad
    for key in parents:
        target = target[key]
    target[last] = value
    return bad


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# (field, bad value, words the one-line error must hold: the field, the value, the allowed range)
BAD_FIELDS = [
    ("preprocessing.input_size", 100000, ["input_size = 100000", "8 to 224"]),
    ("preprocessing.input_size", 0, ["input_size = 0", "8 to 224"]),
    # issue 31.6: 1024 was allowed, and its first detect went past 5 GB exporting and calibrating
    ("preprocessing.input_size", 225, ["input_size = 225", "8 to 224"]),
    ("preprocessing.input_size", 32.5, ["input_size = 32.5", "an integer"]),
    ("preprocessing.input_size", "32", ["input_size = '32'", "an integer"]),
    ("preprocessing.mean", [0.5, 0.5], ["mean = (0.5, 0.5)", "3 numbers"]),
    ("preprocessing.mean", [0.5, 0.5, float("nan")], ["mean = nan", "0.0 to 1.0"]),
    ("preprocessing.mean", [0.5, 0.5, 1e300], ["mean = 1e+300", "0.0 to 1.0"]),
    ("preprocessing.std", [0.2, 0.2, 0.0], ["std = 0.0", "0.001 to 1.0"]),
    ("preprocessing.std", "abc", ["std = 'abc'", "must be a list"]),
    ("preprocessing.class_names", ["a"], ["class_names = ('a',)", "2 to 1000"]),
    ("preprocessing.class_names", [str(i) for i in range(5000)], ["class_names = ('0', '1'", "2 to 1000"]),
    ("preprocessing.class_names", ["a", "a", "b"], ["repeat a name"]),
    ("preprocessing.class_names", ["a", 7, "b"], ["class name 7", "1 to 100 characters"]),
    ("preprocessing.crop_policy.scale", 1e9, ["crop_policy scale = 1000000000.0", "0.5 to 4.0"]),
    ("preprocessing.crop_policy.fill", [0, 0, 999], ["crop_policy fill = 999", "0 to 255"]),
    ("preprocessing.crop_policy.name", "circle", ["unknown crop policy 'circle'", "'square'"]),
    ("preprocessing", "x", ["preprocessing must be a dict"]),
    ("arch", "no_such_net", ["arch = 'no_such_net'", "small_cnn"]),
    ("arch", ["small_cnn"], ["arch = ['small_cnn']", "small_cnn"]),
    ("format_version", 99, ["format_version = 99", "allowed: 1"]),
    ("format_version", True, ["format_version = True", "allowed: 1"]),
    ("state_dict", {"w": "not a tensor"}, ["state_dict must be a dict of named tensors"]),
    ("model_kwargs", {"width": 100000}, ["width = 100000", "1 to 1024"]),
    ("model_kwargs", {"dropout": float("nan")}, ["dropout = nan", "0.0 to 1.0"]),
    ("model_kwargs", {"layers": 3}, ["model_kwargs 'layers' is unknown", "width"]),
    ("model_kwargs", [1], ["model_kwargs = [1] must be a dict"]),
    ("train_args", "x", ["train_args = 'x' must be a dict"]),
    # Issue 31.5: a stride-0 expanded tensor costs bytes in the file and gigabytes once described.
    ("epoch", torch.zeros(1).expand(10**9), ["epoch = tensor", "an integer from 0 to 1000000"]),
    ("epoch", -1, ["epoch = -1", "an integer from 0 to 1000000"]),
    ("metrics", {"val_loss": torch.zeros(1).expand(10**9)},
     ["metrics.val_loss holds a Tensor", "allowed: numbers, strings, lists and dicts"]),
    ("metrics", {"val_loss": float("nan")}, ["metrics.val_loss = nan must be a finite number"]),
    ("train_args", {"deep": _nested(40)}, ["train_args.deep", "nested more than 32"]),
    ("train_args", {"data": b"bytes"}, ["train_args.data holds a bytes"]),
    ("optimizer", {"state": {0: {"exp_avg": torch.zeros(1).expand(10**9)}}},
     ["its tensors show 4,000,0", "expanded or repeated views"]),
    ("optimizer", {"views": [torch.zeros(1000)] * 100_000}, ["its tensors show 400,0", "repeated views"]),
    ("rng", list(range(1_000_001)), ["more than 1,000,000 values"]),
]


IDS = [f"{field}={reprlib.repr(value)}"[:40] for field, value, _ in BAD_FIELDS]  # reprlib: some are huge


@pytest.mark.parametrize(("field", "value", "words"), BAD_FIELDS, ids=IDS)
def test_a_bad_field_is_one_line_naming_it_its_value_and_its_range(good, tmp_path, field, value, words):
    path = tmp_path / "bad.pt"
    save_checkpoint(_set(good, field, value), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert message.startswith(f"{path}: ")
    for word in words:
        assert word in message


def test_a_missing_field_is_named(good, tmp_path):
    bad = copy.deepcopy(good)
    del bad["preprocessing"]["mean"], bad["state_dict"]
    save_checkpoint(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="lacks state_dict"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_good_checkpoint_loads(good, tmp_path):
    save_checkpoint(good, tmp_path / "good.pt")
    assert load_checkpoint(tmp_path / "good.pt")["preprocessing"]["input_size"] == 32


def test_an_in_memory_checkpoint_is_checked_before_the_model_is_built(good):
    from maskdetect.checkpoint import model_from_checkpoint

    with pytest.raises(CheckpointError, match="width = 100000"):
        model_from_checkpoint(_set(good, "model_kwargs", {"width": 100000}))


@pytest.mark.parametrize("command", ["detect", "evaluate"])
def test_detect_and_evaluate_refuse_a_huge_input_size_in_one_line_fast(good, tmp_path, capsys, command):
    path = tmp_path / "huge.pt"
    save_checkpoint(_set(good, "preprocessing.input_size", 100000), path)
    tree = make_split_tree(tmp_path / "tree", {"train": 1, "validation": 1, "holdout": 1})
    argv = {
        "detect": ["detect", str(tree / "holdout"), "--model", str(path), "--out", str(tmp_path / "o")],
        "evaluate": ["evaluate", str(path), "--data", str(tree), "--out", str(tmp_path / "e")],
    }[command]
    code = main(argv)  # before: detect tried to allocate 240 GB, evaluate grew to 21 GB
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"maskdetect: error: {path}: bad preprocessing: preprocessing input_size = 100000 "
                   "is out of range; allowed: an integer from 8 to 224"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused_at_load(good, tmp_path, bad):
    # Issue 31.7: NaN weights loaded, and detect labelled every face "covered" with a score of NaN.
    damaged = copy.deepcopy(good)
    damaged["state_dict"]["0.1.bias"][1] = bad
    save_checkpoint(damaged, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan.pt: state_dict '0.1.bias' holds values that are not"):
        load_checkpoint(tmp_path / "nan.pt")


def test_a_resumable_state_with_optimizer_and_rng_state_loads(good, tmp_path):
    # The value checks leave what `train` snapshots for --resume alone: tensors beside plain data.
    from maskdetect.train.state import rng_state

    model = create_model("small_cnn", width=4)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    state = make_checkpoint(model, "small_cnn", Preprocessing(input_size=32), model_kwargs={"width": 4},
                            metrics={"val_loss": 0.5}, epoch=3, optimizer=optimizer.state_dict(),
                            progress={"best_val_loss": float("inf"), "history": [{"epoch": 1}]},
                            rng=rng_state())
    save_checkpoint(state, tmp_path / "resume.pt")
    assert load_checkpoint(tmp_path / "resume.pt")["epoch"] == 3


def test_train_refuses_an_input_size_no_checkpoint_may_claim():
    # Issue 31.6: the bound was lowered; a run at 256 would train for hours a model nothing loads.
    from maskdetect.train.config import TrainConfig

    TrainConfig(data="tree", out="run", input_size=224).validate()
    with pytest.raises(ValueError, match="input_size must be from 8 to 224, got 256"):
        TrainConfig(data="tree", out="run", input_size=256).validate()
