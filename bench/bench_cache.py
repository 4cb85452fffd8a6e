"""What the resized cache buys: build speed against plain Pillow, and DataLoader speed on cached files.

Prints JSON, all figures from the same run on the same images:
- cache build images/s: `build_cache` (JPEG draft decode, every core) against plain Pillow
  open + resize + save (no draft, one process); also `build_cache` with one process, to separate the
  draft-mode gain from the multi-core gain;
- training DataLoader images/s (torchvision ImageFolder, RandomResizedCrop + flip + ToTensor +
  Normalize, num_workers=2, batch 64) over the cached tree against the original tree.

Input: `--tree ROOT` (an ImageFolder split tree), or by default a tree built from
../shared/data/maskedface-net-sample (256 px files) whose images are upscaled to 1024 px JPEGs in a
temporary folder, to mimic the real 1024 px MaskedFace-Net files (`--no-upscale` uses the 256 px files
as they are). The JSON says which.

    .venv/bin/python bench/bench_cache.py [--tree ROOT] [--limit 320] [--size 160] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "maskedface-net-sample"


def build_sample_tree(out: Path, limit: int, upscale: int | None) -> int:
    """train/{covered,incorrect}/ from the MaskedFace-Net sample, upscaled to `upscale` px JPEGs."""
    if not SAMPLE.is_dir():
        sys.exit(f"sample data not found at {SAMPLE}; pass --tree ROOT")
    sources = {"covered": sorted(SAMPLE.glob("CMFD/*/*.jpg")),
               "incorrect": sorted(SAMPLE.glob("IMFD/*/*.jpg"))}
    count = 0
    for label, paths in sources.items():
        folder = out / "train" / label
        folder.mkdir(parents=True)
        for path in paths[: limit // 2]:
            if upscale:
                with Image.open(path) as image:
                    image.convert("RGB").resize((upscale, upscale), Image.Resampling.BICUBIC).save(
                        folder / path.name, quality=90
                    )
            else:
                shutil.copy(path, folder / path.name)
            count += 1
    return count


def plain_pillow(src: Path, dest: Path, size: int) -> tuple[int, float]:
    """The baseline: open, decode in full, resize shorter side to `size`, save; one process, no draft."""
    from maskdetect.data.cache import cached_name, list_images, target_size

    paths = list_images(src)
    start = time.perf_counter()
    for relpath in paths:
        with Image.open(src / relpath) as image:
            image = image.convert("RGB")
            small = image.resize(target_size(*image.size, size, "shorter"), Image.Resampling.BICUBIC)
        target = dest / cached_name(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        small.save(target, "JPEG", quality=90)
    return len(paths), time.perf_counter() - start


def timed_cache(src: Path, dest: Path, size: int, jobs: int) -> tuple[int, float]:
    from maskdetect.data.cache import build_cache

    start = time.perf_counter()
    report = build_cache(src, dest, size=size, jobs=jobs, progress=False)
    return report.written, time.perf_counter() - start


def loader_rate(tree: Path, size: int, epochs: int) -> float:
    """Images/s of a typical training DataLoader over `tree/train`, worker start-up included."""
    import torch
    from torchvision import datasets, transforms

    transform = transforms.Compose([
        transforms.RandomResizedCrop(size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    # allow_empty: a split tree keeps all three class folders even when a source lacks one class.
    dataset = datasets.ImageFolder(str(tree / "train"), transform=transform, allow_empty=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2)
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _labels in loader:
            seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="an ImageFolder split tree (default: from the sample)")
    parser.add_argument("--limit", type=int, default=320, help="images taken from the sample (default 320)")
    parser.add_argument("--no-upscale", action="store_true", help="use the sample's 256 px files as they are")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--epochs", type=int, default=2, help="DataLoader passes per tree (default 2)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        work = Path(tmp)
        if args.tree:
            tree, source = args.tree, str(args.tree)
        else:
            tree = work / "tree"
            upscale = None if args.no_upscale else 1024
            build_sample_tree(tree, args.limit, upscale)
            source = (f"maskedface-net-sample upscaled to {upscale} px JPEG (quality 90) to mimic real "
                      "MaskedFace-Net files" if upscale else "maskedface-net-sample, 256 px files as is")
        count, plain_s = plain_pillow(tree, work / "plain", args.size)
        one_n, one_s = timed_cache(tree, work / "cache1", args.size, 1)
        many_n, many_s = timed_cache(tree, work / "cache", args.size, args.jobs)
        assert count == one_n == many_n, (count, one_n, many_n)
        original_rate = loader_rate(tree, args.size, args.epochs)
        cached_rate = loader_rate(work / "cache", args.size, args.epochs)
        result = {
            "input": source,
            "images": count,
            "size": args.size,
            "cpu_count": os.cpu_count(),
            "build_images_per_s": {
                "plain_pillow_1_process_no_draft": round(count / plain_s, 1),
                "cache_draft_1_process": round(count / one_s, 1),
                f"cache_draft_{args.jobs}_processes": round(count / many_s, 1),
                "speedup_vs_plain": round(plain_s / many_s, 2),
            },
            "dataloader_images_per_s": {
                "original_files": round(original_rate, 1),
                "cached_files": round(cached_rate, 1),
                "speedup": round(cached_rate / original_rate, 2),
                "setup": f"ImageFolder, RandomResizedCrop({args.size}) + flip + ToTensor + Normalize, "
                f"batch 64, num_workers=2, {args.epochs} epochs",
            },
        }
    import harness

    baseline = {"build_images_per_s": result["build_images_per_s"]["plain_pillow_1_process_no_draft"],
                "dataloader_images_per_s": result["dataloader_images_per_s"]["original_files"]}
    harness.report("bench_cache", result, baseline, vars(args),
                   ratio={"build_speedup": result["build_images_per_s"]["speedup_vs_plain"],
                          "dataloader_speedup": result["dataloader_images_per_s"]["speedup"]})


if __name__ == "__main__":
    main()
