"""A training run killed with SIGKILL mid-epoch resumes to the same weights as a run never killed,
with the loader in the main process (--workers 0) and in a worker process (the default --workers 1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import make_split_tree

from maskdetect.checkpoint import load_checkpoint
from maskdetect.cli import main
from maskdetect.train.config import build_config
from maskdetect.train.loop import train

SETTINGS = {
    "model": "small_cnn",
    "input_size": 16,
    "epochs": 3,
    "batch_size": 4,
    "lr": 3e-3,
    "warmup_epochs": 0.5,
    "workers": 0,
    "threads": 1,
    "save_every": 2,
    "patience": 0,
    "seed": 5,
}
STEPS_PER_EPOCH = 18  # 72 training images in batches of 4


def _cli_args(tree: Path, out: Path, settings: dict) -> list[str]:
    args = ["--data", str(tree), "--out", str(out)]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.mark.parametrize("workers", [0, 1])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, capsys, workers):
    settings = {**SETTINGS, "workers": workers}
    tree = make_split_tree(tmp_path / "tree", {"train": 24, "validation": 4})
    reference = train(build_config(settings, {"data": str(tree), "out": str(tmp_path / "whole")}))
    assert reference["epochs"] == 3

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "maskdetect.cli", "train", *_cli_args(tree, killed, settings)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (killed / "resume.pt").exists():
        assert child.poll() is None, "training ended before its first snapshot"
        assert time.monotonic() < deadline, "no snapshot within 120 s"
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    state = load_checkpoint(killed / "resume.pt")  # a kill never leaves a broken file
    progress = state["progress"]
    assert progress["global_step"] < 3 * STEPS_PER_EPOCH, "the kill came too late to test a resume"
    assert 0 < progress["step_in_epoch"] < STEPS_PER_EPOCH, progress
    assert not list(killed.glob("*.part"))  # no half-written files promoted, none left visible as .pt

    assert main(["train", "--resume", "--out", str(killed)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["epochs"] == 3

    lines = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")["state_dict"]
    after = load_checkpoint(killed / "last.pt")["state_dict"]
    for name, tensor in whole.items():
        assert torch.allclose(tensor.float(), after[name].float(), atol=1e-5), name
    metrics_file = tmp_path / "whole" / "metrics.jsonl"
    reference_lines = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert abs(reference_lines[-1]["val_loss"] - lines[-1]["val_loss"]) < 1e-5
