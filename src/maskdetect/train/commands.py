"""`maskdetect train` and `maskdetect evaluate`: thin argument parsing over the training library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from maskdetect.models import list_models
from maskdetect.train.config import (
    BALANCE_CHOICES,
    DEVICE_CHOICES,
    config_keys,
    load_train_config,
)

# Flags of `train`, each also a TrainConfig field (and so a YAML key): (flag, type, help).
_TRAIN_FLAGS: list[tuple[str, Any, str]] = [
    ("--data", str, "the split tree (train/ and validation/ of covered/, incorrect/, uncovered/)"),
    ("--out", str, "run directory for checkpoints, metrics.jsonl and config.yaml"),
    ("--input-size", int, "model input side in pixels, 8 to 224 (default 160)"),
    (
        "--crop-scale",
        float,
        "crop policy scale the tree's faces were cut with, recorded in checkpoints "
        "(default: the one `data prepare` recorded in the tree, else 1.3)",
    ),
    ("--epochs", int, "epochs (default 10)"),
    ("--batch-size", int, "batch size per process (default 32)"),
    ("--lr", float, "peak AdamW learning rate (default 1e-3)"),
    ("--weight-decay", float, "AdamW weight decay (default 0.05)"),
    ("--warmup-epochs", float, "linear warm-up before cosine decay (default 1)"),
    ("--label-smoothing", float, "label smoothing (default 0.1)"),
    ("--grayscale", float, "share of training crops turned grey, for grey photos and night CCTV (0.05)"),
    ("--patience", int, "stop after this many epochs without a lower validation loss; 0 = never (3)"),
    ("--seed", int, "random seed (default 0)"),
    ("--workers", int, "DataLoader worker processes (default 1)"),
    ("--threads", int, "torch CPU threads per process; 0 = cores left after the workers (default)"),
    ("--save-every", int, "optimizer steps between resumable snapshots (default 50)"),
]
_TRAIN_SWITCHES: list[tuple[str, str]] = [
    ("--pretrained", "start from ImageNet weights (mobilenet_v2; from an installed package)"),
    ("--freeze-backbone", "resnet50: train only the head"),
    ("--deterministic", "deterministic kernels (slower)"),
    ("--amp", "mixed precision on CUDA (default on)"),
    ("--channels-last", "channels-last memory format on CUDA (default on)"),
]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    _add_train(subparsers)
    _add_evaluate(subparsers)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a classifier on a split tree (also under torchrun)",
        description="Train a covered/incorrect/uncovered classifier. Settings come from the defaults, "
        "then --config FILE.yaml, then these flags. Launch with `torchrun --nproc_per_node N "
        "-m maskdetect.cli train ...` for DistributedDataParallel.",
    )
    parser.add_argument("--config", help="YAML file of settings (keys as the flags, - or _)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its resume.pt (its config.yaml is the base)",
    )
    parser.add_argument("--model", choices=list_models(), help="architecture (default mobilenet_v2)")
    parser.add_argument(
        "--balance",
        choices=BALANCE_CHOICES,
        help="class imbalance: weighted sampler, weighted loss, or none (default sampler)",
    )
    parser.add_argument("--device", choices=DEVICE_CHOICES, help="default auto (CUDA when present)")
    for flag, kind, text in _TRAIN_FLAGS:
        parser.add_argument(flag, type=kind, help=text)
    for flag, text in _TRAIN_SWITCHES:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from maskdetect.train.loop import RESUME_FILE, train  # torch-heavy: import only when used

    flags = {name: getattr(args, name, None) for name in config_keys()}
    config = load_train_config(flags, config_file=args.config, resume=args.resume)
    try:
        summary = train(config, resume=args.resume)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0 and (Path(config.out) / RESUME_FILE).is_file():
            # The run's config.yaml holds every setting: --out and --resume are all it needs.
            print(f"maskdetect: training stopped; continue it with: maskdetect train --out {config.out} "
                  "--resume", file=sys.stderr)
        raise
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy, per-class F1, confusion matrix, calibration, worst mistakes",
        description="Evaluate a checkpoint on a split of a split tree (--split) or on a plain tree of "
        "class folders (any label names: with_mask, covered, CMFD, ...).",
    )
    parser.add_argument("checkpoint", help="a checkpoint (.pt) written by `maskdetect train`")
    parser.add_argument("--data", required=True, help="split tree or class-folder tree")
    parser.add_argument(
        "--split",
        choices=("train", "validation", "holdout"),
        help="which split of a split tree (omit for a plain class-folder tree)",
    )
    parser.add_argument("--out", required=True, help="folder for metrics.json and the PNG figures")
    parser.add_argument(
        "--headshot",
        action="store_true",
        help="images are whole aligned head shots (MaskedFace-Net): crop the face first",
    )
    parser.add_argument("--manifest", help="CSV with path and subtype columns, for per-subtype accuracy")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--gallery", type=int, default=24, help="how many worst mistakes to draw")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from maskdetect.train.evaluate import evaluate_checkpoint, format_table

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads < 0:
        raise ValueError(f"--threads must not be negative, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.out,
        split=args.split,
        headshot=args.headshot,
        manifest=args.manifest,
        batch_size=args.batch_size,
        workers=args.workers,
        gallery=args.gallery,
        device=args.device,
    )
    print(format_table(report))
    print(f"wrote {Path(args.out) / 'metrics.json'} and figures")
    return 0
