"""The data chain on the real photos in ../shared/data, the dhash against the known duplicates, the sample."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from torchvision.datasets import ImageFolder

from maskdetect.cli import main
from maskdetect.data.dedup import DEFAULT_THRESHOLD, dhash, hamming
from maskdetect.data.manifest import read_manifest
from maskdetect.data.sample import SAMPLE_VOC, sample_data_dir
from maskdetect.data.voc import scan_voc
from maskdetect.images import open_image
from maskdetect.labels import CLASSES


def test_prepare_chain_on_andrewmvd_and_maskedface_net(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "root_data"
    code = main(["data", "prepare", "--voc", str(shared_data / "andrewmvd-face-mask"),
                 "--maskedface-net", str(shared_data / "maskedface-net-sample"),
                 "--out", str(out), "--size", "64", "--seed", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "too small" in printed and "holdout" in printed
    rows = read_manifest(out / "split_manifest.csv")
    assert len(rows) > 3000
    assert {r.source for r in rows} == {"voc", "maskedface_net"}
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(row.split_group, set()).add(row.split)
        splits_of.setdefault(row.group, set()).add(row.split)
    assert all(len(s) == 1 for s in splits_of.values())  # no person, no photo in two splits
    counts = Counter((r.split, r.label) for r in rows)
    assert all(counts[split, label] > 0 for split in ("train", "validation", "holdout") for label in CLASSES)
    train = ImageFolder(str(out / "train"))
    assert train.class_to_idx == {c: i for i, c in enumerate(CLASSES)}
    assert len(train) == sum(r.split == "train" for r in rows)


def test_dhash_finds_the_listed_near_duplicates(shared_data: Path) -> None:
    listed = shared_data / "ilc2021-dev" / "near-duplicates-of-andrewmvd.tsv"
    with listed.open() as handle:
        pairs = list(csv.DictReader(handle, delimiter="\t"))
    assert len(pairs) == 96
    distances = []
    for pair in pairs:
        a = open_image(shared_data / "ilc2021-dev" / "JPEGImages" / pair["ilc2021_file"])
        b = open_image(shared_data / "andrewmvd-face-mask" / "images" / pair["andrewmvd_file"])
        distances.append(hamming(dhash(a), dhash(b)))
    recall = sum(d <= DEFAULT_THRESHOLD for d in distances) / len(distances)
    assert recall == 1.0, sorted(distances)
    # Unrelated photos are far apart: the first listed andrewmvd photo against the other pairs' ilc photos.
    first = dhash(open_image(shared_data / "andrewmvd-face-mask" / "images" / pairs[0]["andrewmvd_file"]))
    ilc = shared_data / "ilc2021-dev" / "JPEGImages"
    others = [dhash(open_image(ilc / p["ilc2021_file"])) for p in pairs[1:20]]
    assert min(hamming(first, h) for h in others) > 2 * DEFAULT_THRESHOLD


def test_shipped_sample_has_every_class_and_a_notice() -> None:
    root = sample_data_dir()
    assert "CC0" in (root / "NOTICE").read_text()
    rows, report = scan_voc(root / SAMPLE_VOC)
    assert set(Counter(r.label for r in rows)) == set(CLASSES)
    assert Counter(r.label for r in rows)["incorrect"] >= 30
    assert not report.problems
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 6_000_000


def test_cli_names_a_missing_input(tmp_path: Path, capsys) -> None:
    code = main(["data", "manifest", "--voc", str(tmp_path / "no-such-set"), "-o", str(tmp_path / "m.csv")])
    assert code == 2
    assert "no-such-set" in capsys.readouterr().err
    code = main(["data", "verify", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "v.csv"),
                 "--report", str(tmp_path / "r.csv")])
    assert code == 2
    assert "absent.csv" in capsys.readouterr().err
