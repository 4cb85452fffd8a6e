"""Does mask synthesis earn its place? The same model trained with and without synthetic faces.

Self-contained on purpose (cheap on 2 CPU cores, independent of the training loop): frozen ImageNet
MobileNetV2 features (global average pool, 1280-d) of 160 px face crops, cut by the project's one
crop policy, and a class-balanced logistic-regression head. Training data: andrewmvd (all faces),
then andrewmvd plus `maskdetect synth` output made from andrewmvd's own uncovered faces (incorrect
placements only, or all four). Test: ilc2021-dev without its andrewmvd near-duplicates; also
maskedface-net-sample (its incorrect faces by subtype). Several seeds: each fits the head on a
bootstrap resample of the training set. A paired bootstrap over test faces gives the interval of
the difference against the baseline, and against the baseline with its incorrect class boosted to
the same incorrect recall (is synthesis more than a shift of the class prior?).

    .venv/bin/python bench/studies/bench_synth_value.py            # prints JSON
    .venv/bin/python bench/studies/bench_synth_value.py --min-face 40 --seeds 3

Features are cached under --cache (default /tmp/maskdetect-bench-synth) so reruns are quick.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score, recall_score
from sklearn.preprocessing import StandardScaler

from maskdetect.faces.crop import CropPolicy, aligned_headshot_box, crop_face
from maskdetect.images import ImageError, open_image
from maskdetect.labels import CLASSES, class_index
from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from maskdetect.synth.runner import MANIFEST_NAME, SynthOptions, synthesize

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
INCORRECT = CLASSES.index("incorrect")
log = logging.getLogger("bench_synth_value")


def voc_faces(root: Path, skip_photos: set[str] = frozenset()) -> list[tuple[Path, tuple, int]]:
    """(photo, box, class index) of every labelled face of a VOC set, photos in `skip_photos` left out."""
    images = next(root / d for d in ("images", "JPEGImages") if (root / d).is_dir())
    by_stem = {p.stem: p for p in images.iterdir()}
    faces = []
    for xml_path in sorted((root / "annotations").glob("*.xml")):
        tree = ET.parse(xml_path).getroot()
        photo = by_stem.get(Path(tree.findtext("filename") or "").stem) or by_stem.get(xml_path.stem)
        if photo is None or photo.name in skip_photos:
            continue
        for obj in tree.iter("object"):
            bnd = obj.find("bndbox")
            box = tuple(float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            if box[2] > box[0] and box[3] > box[1]:
                faces.append((photo, box, class_index(obj.findtext("name"))))
    return faces


def headshot_faces(root: Path, files: list[tuple[str, str]]) -> list[tuple[Path, None, int, str]]:
    """(image, None, class, suffix) for head shots whose face box is `aligned_headshot_box`."""
    return [(root / rel, None, class_index(label), suffix) for rel, label, suffix in files]


def maskedface_sample(root: Path) -> list[tuple[str, str, str]]:
    from maskdetect.labels import MASKEDFACE_SUBTYPES

    out = []
    for path in sorted(root.rglob("*.jpg")):
        stem = path.stem
        suffix = stem.split("_", 1)[1] if "_" in stem else ""
        if suffix in MASKEDFACE_SUBTYPES:
            out.append((str(path.relative_to(root)), MASKEDFACE_SUBTYPES[suffix][0], suffix))
    return out


class Features:
    """Frozen ImageNet MobileNetV2 features of face crops, cached on disk by a key."""

    def __init__(self, cache: Path, size: int = 160) -> None:
        torch.set_num_threads(2)
        self.cache = cache
        self.prep = Preprocessing(input_size=size)
        self.policy = CropPolicy()
        model = create_model("mobilenet_v2", pretrained=True).eval()
        self.backbone = model.features

    def crop(self, path: Path, box) -> np.ndarray | None:
        try:
            image = open_image(path, draft_size=(512, 512) if box is None else None)
        except ImageError as err:
            log.warning("%s", err)
            return None
        box = box if box is not None else aligned_headshot_box(*image.size)
        return self.prep.to_array(crop_face(image, box, self.policy, size=self.prep.input_size))

    def __call__(self, key: str, items: list) -> tuple[np.ndarray, np.ndarray]:
        digest = hashlib.sha1(repr([(str(i[0]), i[1], i[2]) for i in items]).encode()).hexdigest()[:12]
        path = self.cache / f"{key}-{digest}.npz"
        if path.exists():
            data = np.load(path)
            return data["x"], data["keep"]
        feats, keep, batch = [], [], []
        start = time.time()

        def flush() -> None:
            if batch:
                with torch.no_grad():
                    out = self.backbone(torch.from_numpy(np.stack(batch))).mean(dim=(2, 3))
                feats.append(out.numpy())
                batch.clear()

        for n, item in enumerate(items):
            arr = self.crop(item[0], item[1])
            keep.append(arr is not None)
            if arr is not None:
                batch.append(arr)
            if len(batch) == 64:
                flush()
            if n % 1000 == 999:
                log.info("%s: %d/%d crops, %.0f s", key, n + 1, len(items), time.time() - start)
        flush()
        x, keep_arr = np.concatenate(feats), np.array(keep)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, keep=keep_arr)
        return x, keep_arr


def fit_predict(x_train, y_train, w_train, x_tests, seed: int, c: float) -> list[np.ndarray]:
    """Fit the head (on a bootstrap resample for seeds > 0) and predict every test set."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_train), len(y_train)) if seed else np.arange(len(y_train))
    scaler = StandardScaler().fit(x_train[idx])
    head = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
    head.fit(scaler.transform(x_train[idx]), y_train[idx], sample_weight=w_train[idx])
    return [head.predict_proba(scaler.transform(x)) for x in x_tests]


def shifted_to_recall(proba: np.ndarray, y_true: np.ndarray, target: float) -> np.ndarray:
    """The baseline's predictions with the incorrect class boosted until its recall reaches `target`.

    Tuned on the test set itself, so it flatters the baseline: if synthesis beats this, it adds more
    than a shift of the class prior would.
    """
    for boost in np.logspace(0, 2.5, 200):
        scaled = proba.copy()
        scaled[:, INCORRECT] *= boost
        pred = scaled.argmax(axis=1)
        if (pred[y_true == INCORRECT] == INCORRECT).mean() >= target:
            return pred
    return pred


def scores(y_true, y_pred) -> dict:
    by_class = recall_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0)
    return {
        "incorrect_recall": round(float(by_class[INCORRECT]), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2])), 4),
        "accuracy": round(float((y_true == y_pred).mean()), 4),
        "recall_by_class": [round(float(v), 4) for v in by_class],
    }


def paired_bootstrap(y_true, pred_a, pred_b, n: int = 1000) -> dict:
    """95% interval of (b - a) for incorrect recall and macro-F1, resampling test faces."""
    rng = np.random.default_rng(0)
    diffs = {"incorrect_recall": [], "macro_f1": []}
    for _ in range(n):
        idx = rng.integers(0, len(y_true), len(y_true))
        a, b = scores(y_true[idx], pred_a[idx]), scores(y_true[idx], pred_b[idx])
        for k in diffs:
            diffs[k].append(b[k] - a[k])
    return {k: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]
            for k, v in diffs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/maskdetect-bench-synth"))
    parser.add_argument("--min-face", type=int, default=20, help="synth's smallest face (px)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--C", type=float, default=0.5, help="logistic regression's inverse regularisation")
    parser.add_argument(
        "--synth-weights", type=lambda t: [float(v) for v in t.split(",")], default=[1.0, 0.3],
        help="sample weights of synthetic faces to try (comma-separated; default 1,0.3)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()

    andrewmvd = args.data / "andrewmvd-face-mask"
    ilc = args.data / "ilc2021-dev"
    with (ilc / "near-duplicates-of-andrewmvd.tsv").open() as handle:
        duplicates = {row["ilc2021_file"] for row in csv.DictReader(handle, delimiter="\t")}
    synth_dir = args.cache / f"synth-min{args.min_face}"
    if not (synth_dir / MANIFEST_NAME).exists():
        synthesize(andrewmvd, synth_dir, SynthOptions(min_face=args.min_face, seed=0), overwrite=True)
    with (synth_dir / MANIFEST_NAME).open() as handle:
        synth_rows = [(r["file"], r["label"], r["suffix"]) for r in csv.DictReader(handle)]

    feats = Features(args.cache)
    train_items = voc_faces(andrewmvd)
    x_train, keep = feats("andrewmvd", train_items)
    y_train = np.array([f[2] for f, k in zip(train_items, keep, strict=True) if k])
    synth_items = headshot_faces(synth_dir, synth_rows)
    x_syn, keep = feats(f"synth-min{args.min_face}", synth_items)
    syn = [s for s, k in zip(synth_items, keep, strict=True) if k]
    y_syn, syn_suffix = np.array([s[2] for s in syn]), np.array([s[3] for s in syn])
    test_items = voc_faces(ilc, duplicates)
    x_test, keep = feats("ilc2021-dev-nodup", test_items)
    y_test = np.array([f[2] for f, k in zip(test_items, keep, strict=True) if k])
    mfn_root = args.data / "maskedface-net-sample"
    mfn_items = headshot_faces(mfn_root, maskedface_sample(mfn_root))
    x_mfn, keep = feats("maskedface-net-sample", mfn_items)
    mfn = [m for m, k in zip(mfn_items, keep, strict=True) if k]
    y_mfn, mfn_suffix = np.array([m[2] for m in mfn]), np.array([m[3] for m in mfn])

    incorrect_only = syn_suffix != "Mask"
    def with_synth(chosen: np.ndarray, weight: float) -> tuple:
        x = np.vstack([x_train, x_syn[chosen]])
        y = np.concatenate([y_train, y_syn[chosen]])
        return x, y, np.concatenate([np.ones(len(y_train)), np.full(int(chosen.sum()), weight)])

    variants = {"andrewmvd": (x_train, y_train, np.ones(len(y_train)))}
    for weight in args.synth_weights:
        variants[f"andrewmvd+synth_incorrect_w{weight:g}"] = with_synth(incorrect_only, weight)
    variants["andrewmvd+synth_all_w1"] = with_synth(np.ones(len(y_syn), bool), 1.0)
    results, preds = {}, {}
    for name, (x, y, w) in variants.items():
        runs = []
        for seed in range(args.seeds):
            proba_ilc, proba_mfn = fit_predict(x, y, w, [x_test, x_mfn], seed, args.C)
            p_ilc, p_mfn = proba_ilc.argmax(axis=1), proba_mfn.argmax(axis=1)
            if name == "andrewmvd" and seed == 0:
                baseline_proba = proba_ilc
            preds.setdefault(name, []).append(p_ilc)
            mfn_recall = {s: round(float((p_mfn[mfn_suffix == s] == y_mfn[mfn_suffix == s]).mean()), 4)
                          for s in sorted(set(mfn_suffix))}
            runs.append({"ilc2021_dev": scores(y_test, p_ilc), "maskedface_net_sample_recall": mfn_recall})
        ilc_runs = [r["ilc2021_dev"] for r in runs]
        results[name] = {
            "train_faces": int(len(y)),
            "train_incorrect": int((y == INCORRECT).sum()),
            "ilc2021_dev_mean": {k: round(float(np.mean([r[k] for r in ilc_runs])), 4)
                                 for k in ("incorrect_recall", "macro_f1", "accuracy")},
            "ilc2021_dev_sd": {k: round(float(np.std([r[k] for r in ilc_runs])), 4)
                               for k in ("incorrect_recall", "macro_f1")},
            "runs": runs,
        }
        if name != "andrewmvd":
            results[name]["seed0_diff_vs_andrewmvd_95ci"] = paired_bootstrap(
                y_test, preds["andrewmvd"][0], preds[name][0])
            target = scores(y_test, preds[name][0])["incorrect_recall"]
            shifted = shifted_to_recall(baseline_proba, y_test, target)
            results[name]["seed0_andrewmvd_prior_shifted_to_same_recall"] = scores(y_test, shifted)
            results[name]["seed0_diff_vs_prior_shifted_95ci"] = paired_bootstrap(
                y_test, shifted, preds[name][0])
        results[name]["ilc2021_dev_confusion_seed0"] = confusion_matrix(
            y_test, preds[name][0], labels=[0, 1, 2]).tolist()
    report = {
        "bench": "synth_value",
        "model": "frozen ImageNet MobileNetV2 features (160 px, crop scale 1.3) "
        "+ balanced logistic regression",
        "classes": list(CLASSES),
        "synth": {"min_face": args.min_face, "faces_drawn": int(len(set(r[0].split("/")[-1].split("_")[0]
                                                                          for r in synth_rows))),
                  "images": len(synth_rows)},
        "test_faces_ilc2021_dev_nodup": int(len(y_test)),
        "test_incorrect": int((y_test == INCORRECT).sum()),
        "seeds": args.seeds,
        "C": args.C,
        "results": results,
        "seconds": round(time.time() - started, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
