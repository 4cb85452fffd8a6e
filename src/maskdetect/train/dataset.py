"""Class-folder trees of face crops, read tolerantly: a corrupt image is skipped with a warning naming it."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from maskdetect.data.folder import class_folder_images, subfolders
from maskdetect.data.split import SPLITS
from maskdetect.images import ImageError, open_image
from maskdetect.labels import CLASSES

log = logging.getLogger(__name__)


def scan_class_folders(root: str | os.PathLike, *, require_all: bool) -> list[tuple[Path, int]]:
    """List (path, class index) for a folder of class folders.

    Folder names may be any label a source uses (``with_mask``, ``covered``, ...); they are mapped
    onto the three classes by `maskdetect.data.folder.class_folder_images`, the one class-folder
    scanner.

    Args:
        root: a folder holding one folder per class.
        require_all: every one of the three classes must have at least one image (training).

    Raises:
        FileNotFoundError: `root` does not exist.
        ValueError: an unknown class folder, a missing or empty class (when required), or no images.

    >>> import tempfile
    >>> scan_class_folders(tempfile.mkdtemp(), require_all=False)
    Traceback (most recent call last):
    ValueError: ...: no class folders (expected covered, incorrect, uncovered)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    folders = [p.name for p in subfolders(root)]
    if not folders:
        raise ValueError(f"{root}: no class folders (expected {', '.join(CLASSES)})")
    found = class_folder_images(root)
    counts = dict.fromkeys(CLASSES, 0)
    for _, label in found:
        counts[label] += 1
    samples = [(path, CLASSES.index(label)) for path, label in found]
    if require_all:
        missing = [name for name, count in counts.items() if count == 0]
        if missing:
            raise ValueError(
                f"{root}: no images of class {', '.join(missing)} (training needs all of "
                f"{', '.join(CLASSES)}; counts: {counts})"
            )
    if not samples:
        raise ValueError(f"{root}: empty: no images in {', '.join(folders)}")
    return samples


def split_folder(tree: str | os.PathLike, split: str | None) -> Path:
    """The folder of one split of a split tree, or the tree itself when `split` is None.

    Raises:
        ValueError: an unknown split name.
        FileNotFoundError: the split folder does not exist.
    """
    tree = Path(tree)
    if split is None:
        return tree
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choices: {', '.join(SPLITS)}")
    folder = tree / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: split {split!r} not found in tree {tree}")
    return folder


class FaceFolder(Dataset):
    """Face crops with class labels; an image that cannot be read is skipped with a warning naming it.

    For evaluation (`substitute=False`) a skipped image yields None, which `collate_skipping` leaves
    out. For training (`substitute=True`) the next readable image takes its place, so every batch
    keeps its size: distributed processes must all take the same number of steps.

    >>> ds = FaceFolder([], transform=lambda image: image)
    >>> len(ds)
    0
    """

    MAX_SUBSTITUTES = 16

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: Callable, substitute: bool = False):
        self.samples = list(samples)
        self.targets = [target for _, target in self.samples]
        self.transform = transform
        self.substitute = substitute

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int, int] | None:
        # (index, seed) from `SeededSampler`: the transform's random draws come from that seed alone.
        if isinstance(item, tuple):
            index, seed = item
            with seeded_random(seed):
                return self._load(index)
        return self._load(item)

    def _load(self, index: int) -> tuple[torch.Tensor, int, int] | None:
        tries = self.MAX_SUBSTITUTES if self.substitute else 1
        for attempt in range(min(tries, len(self.samples))):
            current = (index + attempt) % len(self.samples)
            path, target = self.samples[current]
            try:
                image = open_image(path)
            except ImageError as err:
                log.warning("skipping unreadable image: %s", err)
                continue
            return self.transform(image), target, current
        return None

    def class_counts(self) -> list[int]:
        return [self.targets.count(i) for i in range(len(CLASSES))]


class SeededSampler(Sampler[tuple[int, int]]):
    """Give each sample of an epoch a seed of its own for its random augmentation.

    Yields (index, seed) pairs, the seed made from `seed`, the wrapped sampler's epoch and the
    sample's place in the epoch, so a sample is augmented alike whichever loader worker reads it and
    however many samples that worker read before: a run resumed mid-epoch (the sampler's `skip`),
    with any number of workers, draws what an uninterrupted run drew.

    >>> from maskdetect.train.distributed import ResumableSampler
    >>> inner = ResumableSampler(4, shuffle=False)
    >>> inner.set_epoch(0, skip=2)
    >>> [index for index, _ in SeededSampler(inner, seed=1)]
    [2, 3]
    >>> inner.set_epoch(0)
    >>> list(SeededSampler(inner, seed=1))[2] == next(iter(SeededSampler(inner, seed=1)))
    False
    """

    def __init__(self, sampler: Sampler[int], seed: int):
        self.sampler = sampler
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = getattr(self.sampler, "epoch", 0), getattr(self.sampler, "skip", 0)
        for position, index in enumerate(self.sampler, start):
            entropy = [self.seed % 2**32, epoch, position]
            yield index, int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __len__(self) -> int:
        return len(self.sampler)


@contextlib.contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Seed torch, NumPy and Python's `random` for a block, then put their states back.

    >>> with seeded_random(7):
    ...     a = torch.rand(1)
    >>> with seeded_random(7):
    ...     bool(torch.equal(a, torch.rand(1)))
    True
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def collate_skipping(batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Stack a batch, leaving out unreadable images; None when nothing in it was readable."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return None
    images, targets, indices = zip(*kept, strict=True)
    return torch.stack(images), torch.tensor(targets), torch.tensor(indices)
