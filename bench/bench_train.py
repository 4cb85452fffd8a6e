"""Training speed with the real data pipeline against the same model on synthetic tensors, same run.

Prints JSON: images/s of training steps fed by the DataLoader (decode, augmentation, normalisation
of a split tree's JPEG crops) and fed by ready-made random tensors, and the pipeline's cost as the
share of speed lost. By default the tree is built in a temporary folder from
../shared/data/maskedface-net-sample, resized to 256 px (the size `maskdetect data split` writes).

    .venv/bin/python bench/bench_train.py [--tree DIR] [--model mobilenet_v2] [--size 160]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from maskdetect.train.augment import train_transform
from maskdetect.train.dataset import FaceFolder, collate_skipping, scan_class_folders

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "maskedface-net-sample"


def build_sample_tree(target: Path, per_class: int) -> Path:
    """A train split of 256 px JPEGs from maskedface-net-sample (uncovered: mirrored covered ones)."""
    if not SAMPLE.is_dir():
        raise SystemExit(f"{SAMPLE}: sample data not found; pass --tree")
    sources = {
        "covered": sorted(SAMPLE.glob("CMFD/*/*.jpg")),
        "incorrect": sorted(SAMPLE.glob("IMFD/*/*.jpg")),
    }
    sources["uncovered"] = sources["covered"][::-1]  # the label does not matter for speed
    for label, paths in sources.items():
        folder = target / "train" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(paths[:per_class]):
            with Image.open(path) as image:
                image.convert("RGB").resize((256, 256), Image.BILINEAR).save(folder / f"{i}.jpg", quality=90)
    return target


def time_steps(model: nn.Module, batches, steps: int, warmup: int, clock=time.perf_counter) -> float:
    """Images per second (of `clock`) over `steps` training steps after `warmup` untimed ones."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    seen, started = 0, None
    for step, (images, targets) in enumerate(batches):
        if step == warmup:
            seen, started = 0, clock()
        loss = criterion(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(targets)
        if step + 1 >= warmup + steps:
            break
    return seen / (clock() - started)


def pipeline_cpu_seconds_per_image(dataset: FaceFolder, count: int) -> float:
    """CPU seconds this process spends to decode, augment and normalise one image (no workers)."""
    started = time.process_time()
    for index in range(count):
        dataset[index % len(dataset)]
    return (time.process_time() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", help="a split tree (its train/ split is read); default: built from the sample"
    )
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(args.tree) if args.tree else build_sample_tree(Path(scratch), per_class=120)
        samples = scan_class_folders(tree / "train", require_all=False)
        dataset = FaceFolder(samples, train_transform(Preprocessing(input_size=args.size)))
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            collate_fn=collate_skipping,
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        needed = args.steps + args.warmup

        def real_batches():
            while True:
                for images, targets, _ in loader:
                    yield images, targets

        def synthetic_batches():
            images = torch.randn(args.batch_size, 3, args.size, args.size)
            targets = torch.randint(0, 3, (args.batch_size,))
            while True:
                yield images, targets

        model = create_model(args.model, pretrained=False)
        # CPU time is steadier than wall time on a shared machine: the pipeline's share of the CPU
        # work per training image, were both done by one process.
        data_cpu = pipeline_cpu_seconds_per_image(dataset, 4 * args.batch_size)
        train_cpu = 1 / time_steps(
            model, synthetic_batches(), args.steps // 2 or 1, 1, clock=time.process_time
        )
        synthetic = time_steps(model, synthetic_batches(), args.steps, args.warmup)
        real = time_steps(model, real_batches(), args.steps, args.warmup)
        synthetic_again = time_steps(model, synthetic_batches(), args.steps, args.warmup)

        started, seen = time.perf_counter(), 0
        for step, (images, _) in enumerate(real_batches()):
            seen += len(images)
            if step + 1 >= needed:
                break
        pipeline_alone = seen / (time.perf_counter() - started)
        # Persistent workers prefetch the next epoch: stop them before the scratch tree is deleted,
        # or they report every file they then cannot find.
        if loader._iterator is not None:
            loader._iterator._shutdown_workers()

    baseline = (synthetic + synthetic_again) / 2
    import harness

    harness.report(
        "bench_train",
        {
                "model": args.model,
                "input_size": args.size,
                "batch_size": args.batch_size,
                "workers": args.workers,
                "torch_threads": torch.get_num_threads(),
                "images_in_tree": len(samples),
                "train_images_per_s_real_data": round(real, 2),
                "train_images_per_s_synthetic": round(baseline, 2),
                "synthetic_runs": [round(synthetic, 2), round(synthetic_again, 2)],
                "data_pipeline_cost": round(1 - real / baseline, 4),
                "data_pipeline_alone_images_per_s": round(pipeline_alone, 2),
                "cpu_ms_per_image_data_pipeline": round(1000 * data_cpu, 2),
                "cpu_ms_per_image_train_step": round(1000 * train_cpu, 2),
                "data_pipeline_cpu_share": round(data_cpu / (data_cpu + train_cpu), 4),
                "goal": "data_pipeline_cost < 0.10 (wall time, same run); cpu share as the steadier check",
        },
        {"train_images_per_s_real_data": round(baseline, 2)},  # synthetic tensors, same run
        vars(args),
    )


if __name__ == "__main__":
    main()
