"""The split: grouped, stratified, seeded; the seed project's per-class split shown to leak."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from maskdetect.data.dedup import hamming, merge_near_duplicate_groups, near_duplicate_pairs
from maskdetect.data.manifest import ManifestRow
from maskdetect.data.split import SPLITS, assign_splits, cap_and_balance, count_table, split_fractions
from maskdetect.labels import CLASSES


def identity_rows(people: int = 300, seed: int = 0) -> list[ManifestRow]:
    """Like MaskedFace-Net + FFHQ: each person has a covered, 1-3 incorrect and maybe an uncovered image."""
    rng = random.Random(seed)
    rows = []
    for person in range(people):
        group = f"ffhq-{person:05d}"
        labels = ["covered"] + ["incorrect"] * rng.randint(1, 3) + ["uncovered"] * rng.randint(0, 1)
        rows += [ManifestRow(f"/d/{group}_{i}.jpg", None, lab, group=group) for i, lab in enumerate(labels)]
    return rows


def crossing_groups(rows: list[ManifestRow], splits: list[str]) -> set[str]:
    seen: dict[str, set[str]] = defaultdict(set)
    for row, split in zip(rows, splits, strict=True):
        seen[row.group].add(split)
    return {group for group, where in seen.items() if len(where) > 1}


def seed_project_split(rows: list[ManifestRow], holdout: float, validation: float, seed: int) -> list[str]:
    """The seed's DataPreprocessing: every class folder shuffled and cut on its own, groups ignored."""
    splits = [""] * len(rows)
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_class[row.label].append(index)
    rng = random.Random(seed)
    for indices in by_class.values():
        rng.shuffle(indices)
        n_holdout = round(len(indices) * holdout)
        n_validation = round((len(indices) - n_holdout) * validation)
        for k, index in enumerate(indices):
            in_validation = k < n_holdout + n_validation
            splits[index] = "holdout" if k < n_holdout else "validation" if in_validation else "train"
    return splits


def test_per_class_split_of_the_seed_leaks_people_and_ours_does_not() -> None:
    rows = identity_rows()
    naive = seed_project_split(rows, 0.2, 0.2, seed=0)
    assert len(crossing_groups(rows, naive)) > 50  # the same face in train and holdout
    ours = [r.split for r in assign_splits(rows, seed=0)]
    assert crossing_groups(rows, ours) == set()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_within_tolerance(seed: int) -> None:
    rows = assign_splits(identity_rows(seed=seed), seed=seed, holdout=0.2, validation=0.25)
    targets = dict(zip(SPLITS, split_fractions(0.2, 0.25), strict=True))
    totals = Counter(r.label for r in rows)
    counts = Counter((r.split, r.label) for r in rows)
    for split in SPLITS:
        for label in CLASSES:
            share = counts[split, label] / totals[label]
            assert abs(share - targets[split]) < 0.02, (split, label, share)


def test_same_seed_same_split_other_seed_other_split() -> None:
    rows = identity_rows()
    first = [r.split for r in assign_splits(rows, seed=7)]
    assert first == [r.split for r in assign_splits(rows, seed=7)]
    assert first == [r.split for r in assign_splits(list(rows), seed=7)]
    other = [r.split for r in assign_splits(rows, seed=8)]
    assert other != first
    assert crossing_groups(rows, other) == set()


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="holdout"):
        assign_splits(identity_rows(5), holdout=1.0)
    with pytest.raises(ValueError, match="validation"):
        assign_splits(identity_rows(5), validation=-0.1)


def test_zero_validation_leaves_it_empty() -> None:
    rows = assign_splits(identity_rows(50), validation=0.0)
    assert "validation" not in {r.split for r in rows}


def test_cap_and_balance() -> None:
    rows = identity_rows()
    totals = Counter(r.label for r in rows)
    capped = Counter(r.label for r in cap_and_balance(rows, cap=250, seed=0))
    assert capped == {label: min(250, n) for label, n in totals.items()}
    balanced = Counter(r.label for r in cap_and_balance(rows, balance=True, seed=0))
    assert set(balanced.values()) == {min(totals.values())}
    with pytest.raises(ValueError, match="cap"):
        cap_and_balance(rows, cap=0)


def test_near_duplicates_are_merged_into_one_group() -> None:
    base = "f0" * 32  # 256 bits
    close = "f1" + base[2:]  # one bit away
    far = "0f" * 32
    groups, pairs = merge_near_duplicate_groups(["a/1", "b/9", "c/3"], [base, close, far], threshold=4)
    assert groups[0] == groups[1] != groups[2] and pairs == [(0, 1, 1)]
    assert hamming(base, far) == 256
    assert near_duplicate_pairs([base, close, far], threshold=0) == []
    rows = [ManifestRow(f"/p{i}.jpg", None, "covered", group=f"g{i}", dhash=h)
            for i, h in enumerate([base, close, far] * 20)]
    out = assign_splits(rows, seed=0)
    assert len({r.split for r in out if r.dhash in (base, close)}) == 1
    unmerged = assign_splits(rows, seed=0, near_duplicate_threshold=None)
    assert len({r.split_group for r in unmerged}) == 60


def test_count_table_totals() -> None:
    table = count_table(assign_splits(identity_rows(100), seed=0))
    total = table.splitlines()[-1].split()
    assert total[0] == "total" and int(total[-1]) == len(identity_rows(100))


def test_keep_split_adds_data_without_moving_a_photo() -> None:
    """New images of old photos (drawn masks) and new photos join; no earlier photo changes split."""
    before = assign_splits(identity_rows(people=200, seed=4), seed=0)
    earlier = {r.group: r.split for r in before}
    extra = [ManifestRow(f"/synth/{r.group}.jpg", None, "incorrect", group=r.group) for r in before[::3]]
    new_people = [
        r.replace(group="new-" + r.group, path="/new" + r.path) for r in identity_rows(people=100, seed=5)
    ]
    rows = [r.replace(split="") for r in before] + extra + new_people
    plain = assign_splits(rows, seed=0)
    assert any(r.split != earlier[r.group] for r in plain if r.group in earlier)  # what --keep-split prevents
    kept = assign_splits(rows, seed=0, keep=before)
    assert all(r.split == earlier[r.group] for r in kept if r.group in earlier)
    new_splits = Counter(r.split for r in kept if r.group.startswith("new-"))
    assert set(new_splits) == set(SPLITS)
    assert crossing_groups(kept, [r.split for r in kept]) == set()
    holdout_share = sum(r.split == "holdout" for r in kept) / len(kept)
    assert abs(holdout_share - 0.2) < 0.03


def test_keep_split_rejects_an_unknown_split() -> None:
    rows = identity_rows(people=5)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        assign_splits(rows, keep=[rows[0].replace(split="test")])


def test_near_duplicate_pairs_match_brute_force_across_blocks() -> None:
    """More hashes than one comparison block (512), near pairs planted on both sides of its edge."""
    rng = random.Random(3)
    hashes = [f"{rng.getrandbits(256):064x}" for _ in range(700)]
    for i, j in ((10, 600), (505, 515), (511, 512), (650, 699)):
        flipped = int(hashes[i], 16) ^ (1 << rng.randrange(256)) ^ (1 << rng.randrange(256))
        hashes[j] = f"{flipped:064x}"
    brute = [
        (i, j, hamming(hashes[i], hashes[j]))
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hamming(hashes[i], hashes[j]) <= 16
    ]
    assert {(i, j) for i, j, _ in brute} >= {(10, 600), (505, 515), (511, 512), (650, 699)}
    assert near_duplicate_pairs(hashes, 16) == brute
