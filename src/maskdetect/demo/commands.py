"""`maskdetect demo`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the whole pipeline on the shipped sample data, ending in one HTML report",
        description="Prepare the shipped sample (grouped split), fine-tune ImageNet MobileNetV2, evaluate, "
        "explain with occlusion maps, detect faces on a photo, and write OUT/report.html.",
    )
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (demo-output)")
    demo.add_argument("--epochs", type=int, default=3, help="training epochs (3)")
    demo.add_argument("--input-size", type=int, default=128, help="model input side in pixels (128)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace a non-demo --out folder")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskdetect.demo.pipeline import DemoSettings, run_demo

    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    run_demo(DemoSettings(out=args.out, epochs=args.epochs, input_size=args.input_size, seed=args.seed,
                          overwrite=args.overwrite))
    return 0
