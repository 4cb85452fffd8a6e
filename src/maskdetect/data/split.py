"""Grouped, stratified, seeded split into train / validation / holdout.

Every image of a group (an FFHQ identity, a source photo, near-duplicate photos merged) lands in one
split, and each split gets close to its share of every class. Groups are assigned whole, in seeded
random order, each to the split where it most reduces the squared shortfall against the per-class
targets (relative to each target). Random order beats largest-first here: largest-first sends the
big groups, whose class mix differs from the small ones', all to train.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from maskdetect.data.dedup import DEFAULT_THRESHOLD, merge_near_duplicate_groups
from maskdetect.data.manifest import ManifestRow
from maskdetect.labels import CLASSES

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "validation", "holdout")


def split_fractions(holdout: float, validation: float) -> tuple[float, float, float]:
    """Shares of (train, validation, holdout): holdout first, then validation of the rest.

    >>> split_fractions(0.2, 0.2)
    (0.64, 0.16, 0.2)
    """
    for name, value in (("holdout", holdout), ("validation", validation)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} fraction must be in [0, 1), got {value}")
    rest = 1.0 - holdout
    return (round(rest * (1 - validation), 10), round(rest * validation, 10), holdout)


def split_grouped(
    labels: Sequence[str],
    groups: Sequence[str],
    *,
    holdout: float = 0.2,
    validation: float = 0.2,
    seed: int = 0,
    pinned: Mapping[str, str] | None = None,
) -> list[str]:
    """The split of each item, keeping groups whole and classes in proportion.

    Args:
        labels: each item's class.
        groups: each item's group; items of a group always share a split.
        holdout: share of everything for the holdout split.
        validation: share of the rest for validation.
        seed: the random seed (same inputs and seed, same split).
        pinned: group -> split for groups whose split is already fixed (an earlier tree's); the
            other groups fill the shares around them.

    Returns:
        ``"train"``, ``"validation"`` or ``"holdout"`` for each item.

    Raises:
        ValueError: a pinned split that is not one of SPLITS.

    >>> split_grouped(["covered"] * 10, [str(i) for i in range(10)], seed=1).count("holdout")
    2
    >>> split_grouped(["covered"] * 3, ["a", "b", "c"], pinned={"a": "holdout"})[0]
    'holdout'
    """
    pinned = dict(pinned or {})
    for group, split in pinned.items():
        if split not in SPLITS:
            raise ValueError(
                f"group {group!r} is pinned to unknown split {split!r}; splits are {', '.join(SPLITS)}"
            )
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups")
    fractions = np.array(split_fractions(holdout, validation))
    classes = sorted(set(labels), key=lambda c: (CLASSES.index(c) if c in CLASSES else len(CLASSES), c))
    column = {c: i for i, c in enumerate(classes)}
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    names = sorted(members)
    counts = np.zeros((len(names), len(classes)))
    for g, name in enumerate(names):
        for index in members[name]:
            counts[g, column[labels[index]]] += 1
    totals = np.maximum(counts.sum(axis=0), 1)
    targets = fractions[:, None] * totals[None, :]
    current = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    scale = np.maximum(targets, 1)  # errors relative to each split's own target
    assigned = [""] * len(labels)
    order = rng.permutation(len(names))
    for g in [g for g in order if names[g] in pinned]:
        best = SPLITS.index(pinned[names[g]])
        current[best] += counts[g]
        for index in members[names[g]]:
            assigned[index] = SPLITS[best]
    for g in [g for g in order if names[g] not in pinned]:
        before = ((current - targets) / scale) ** 2
        after = ((current + counts[g] - targets) / scale) ** 2
        cost = (after - before).sum(axis=1)
        cost[fractions == 0] = np.inf
        tied = np.flatnonzero(cost <= cost.min() + 1e-12)
        best = int(tied[rng.integers(len(tied))])
        current[best] += counts[g]
        for index in members[names[g]]:
            assigned[index] = SPLITS[best]
    return assigned


def cap_and_balance(
    rows: Sequence[ManifestRow], *, cap: int | None = None, balance: bool = False, seed: int = 0
) -> list[ManifestRow]:
    """Downsample, seeded: at most `cap` rows per class, and with `balance` as many as the smallest class.

    Rows keep their order.

    >>> labels = ["covered", "covered", "incorrect"]
    >>> rows = [ManifestRow(str(i), None, c, group=str(i)) for i, c in enumerate(labels)]
    >>> [r.label for r in cap_and_balance(rows, balance=True)]
    ['covered', 'incorrect']
    """
    if cap is not None and cap < 1:
        raise ValueError(f"cap must be a positive number of images per class, got {cap}")
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_class[row.label].append(index)
    limit = cap
    if balance and by_class:
        smallest = min(len(v) for v in by_class.values())
        limit = smallest if limit is None else min(limit, smallest)
    if limit is None:
        return list(rows)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in sorted(by_class):
        indices = by_class[label]
        if len(indices) > limit:
            indices = sorted(rng.choice(indices, size=limit, replace=False).tolist())
            log.info("%s: kept %d of %d", label, limit, len(by_class[label]))
        keep.extend(indices)
    return [rows[i] for i in sorted(keep)]


def assign_splits(
    rows: Sequence[ManifestRow],
    *,
    holdout: float = 0.2,
    validation: float = 0.2,
    seed: int = 0,
    cap: int | None = None,
    balance: bool = False,
    near_duplicate_threshold: int | None = DEFAULT_THRESHOLD,
    keep: Sequence[ManifestRow] = (),
) -> list[ManifestRow]:
    """Rows with ``split_group`` (groups merged across near-duplicate photos) and ``split`` filled in.

    Args:
        rows: verified manifest rows (their ``dhash`` is used to merge near-duplicate photos).
        holdout, validation, seed: see `split_grouped`.
        cap, balance: see `cap_and_balance` (applied before splitting).
        near_duplicate_threshold: largest dhash Hamming distance merged; None to merge nothing.
        keep: rows of an earlier split (its split_manifest.csv): every photo it placed keeps its split,
            so that adding data to a tree never moves a photo into or out of the holdout.

    >>> rows = [ManifestRow(str(i), None, "covered", group=str(i // 2)) for i in range(10)]
    >>> out = assign_splits(rows, seed=3)
    >>> all(out[i].split == out[i + 1].split for i in range(0, 10, 2))
    True
    """
    rows = cap_and_balance(rows, cap=cap, balance=balance, seed=seed)
    groups = [r.group for r in rows]
    if near_duplicate_threshold is not None:
        groups, pairs = merge_near_duplicate_groups(groups, [r.dhash for r in rows], near_duplicate_threshold)
        log.info("near-duplicates: %d pairs of photos across groups merged", len(pairs))
    pinned = _pinned_groups(rows, groups, keep)
    splits = split_grouped([r.label for r in rows], groups, holdout=holdout, validation=validation, seed=seed,
                           pinned=pinned)
    return [r.replace(split_group=g, split=s) for r, g, s in zip(rows, groups, splits, strict=True)]


def _pinned_groups(
    rows: Sequence[ManifestRow], groups: Sequence[str], keep: Sequence[ManifestRow]
) -> dict[str, str]:
    # Pin by source photo (`group`), then lift to the merged split groups. A merged group whose photos
    # the earlier split put in different places cannot keep both: the first photo's split wins.
    earlier = {r.group: r.split for r in keep if r.split}
    pinned: dict[str, str] = {}
    conflicts = 0
    for row, group in zip(rows, groups, strict=True):
        split = earlier.get(row.group)
        if split is None:
            continue
        if pinned.setdefault(group, split) != split:
            conflicts += 1
    if keep:
        kept = sum(1 for r in rows if r.group in earlier)
        log.info("kept the earlier split of %d of %d images (%d new)", kept, len(rows), len(rows) - kept)
    if conflicts:
        log.warning("%d images of merged near-duplicate groups had different earlier splits", conflicts)
    return pinned


def count_table(rows: Sequence[ManifestRow]) -> str:
    """A text table of images per split and class, with totals.

    >>> print(count_table([ManifestRow("a", None, "covered", split="train")]))
    split         covered  incorrect  uncovered      total
    train               1          0          0          1
    total               1          0          0          1
    """
    counts = Counter((r.split, r.label) for r in rows)
    splits = [s for s in SPLITS if any(k[0] == s for k in counts)]
    lines = [f"{'split':<10} " + " ".join(f"{c:>10}" for c in (*CLASSES, "total"))]
    for split in [*splits, "total"]:
        values = [
            sum(n for (s, c), n in counts.items() if c == cls and split in (s, "total")) for cls in CLASSES
        ]
        lines.append(f"{split:<10} " + " ".join(f"{v:>10}" for v in (*values, sum(values))))
    return "\n".join(lines)
