"""The same `train` command under torchrun: two CPU processes, gloo, DistributedDataParallel."""

from __future__ import annotations

import json
import subprocess
import sys

from train_fixtures import make_split_tree

from maskdetect.checkpoint import load_checkpoint


def test_torchrun_two_cpu_processes_train_one_epoch(tmp_path):
    tree = make_split_tree(tmp_path / "tree", {"train": 8, "validation": 3})
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "maskdetect.cli",
        "train",
        "--data",
        str(tree),
        "--out",
        str(out),
        "--model",
        "small_cnn",
        "--input-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--save-every",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["epochs"] == 1  # only rank 0 reports
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert 0 <= record["val_accuracy"] <= 1 and record["train_loss"] > 0
    state = load_checkpoint(out / "resume.pt")
    # 24 images over 2 ranks in batches of 4: each rank takes 3 steps.
    assert state["progress"]["global_step"] == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "metrics.jsonl",
        "resume.pt",
    ]
