"""Which decision tells a face from a false face best? Mine every candidate box the photo detector
keeps at a low threshold, with every score it already computes, and fit/measure verifiers.

    python bench/studies/verifier_study.py mine ../shared/data/andrewmvd-face-mask --out /tmp/cand-andrew.npz
    python bench/studies/verifier_study.py mine ../shared/data/ilc2021-dev --out /tmp/cand-ilc.npz \
        --exclude ../shared/data/ilc2021-dev/near-duplicates-of-andrewmvd.tsv
    python bench/studies/verifier_study.py fit /tmp/cand-andrew.npz /tmp/cand-ilc.npz

`mine` records per candidate: the first-pass score, both second-look scores, the face mesh's
face-presence score, the box size, the classifier's probabilities and its 1280-d penultimate
features, and whether the box is the match (IoU >= 0.3, greedy, best score first) of a labelled face,
a second box on a matched face, or no labelled face at all. `fit` trains each verifier on the first
set only (the shipped model may learn only from CC0 photos) and reports, on the second, precision at
the threshold that keeps recall of faces >= 32 px at a target.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskdetect.data.voc_set import read_names, voc_items
from maskdetect.faces.blazeface import BlazeFaceDetector, to_voc_boxes
from maskdetect.faces.landmarks import FaceMesh
from maskdetect.faces.nms import clip_boxes, iou_matrix
from maskdetect.faces.second_look import second_look_scores
from maskdetect.images import open_image
from maskdetect.runtime import DEFAULT_MODEL, load_classifier, resolve_checkpoint, softmax

MATCH_IOU = 0.3
CANDIDATE = 0.3


def _names(path: Path | None) -> list[str]:
    return [] if path is None else read_names(path)


def mine(voc_dir: Path, out: Path, exclude: Path | None, limit: int | None, workers: int) -> None:
    detector = BlazeFaceDetector("accurate", threshold=CANDIDATE)
    classifier = load_classifier(DEFAULT_MODEL, "torch")
    model, pre = classifier.model.eval(), classifier.preprocessing
    items = list(voc_items(voc_dir, _names(exclude), limit))
    import threading

    local = threading.local()

    def one(item: tuple[Path, list]) -> dict:
        path, truth = item
        mesh = getattr(local, "mesh", None) or FaceMesh()
        local.mesh = mesh
        photo = open_image(path)
        pixels = np.asarray(photo)
        boxes, first = detector.merged_candidates(pixels, CANDIDATE)
        if not len(boxes):
            return {"path": str(path), "truth": truth, "n": 0}
        second = second_look_scores(pixels, boxes, detector.models())
        mesh_scores, mesh_boxes = [], []
        for box in boxes:
            result = mesh.landmarks_in_box(photo, tuple(box), upright=False)
            points = result.points[:, :2]
            mesh_scores.append(result.score)
            mesh_boxes.append((box + np.concatenate([points.min(axis=0), points.max(axis=0)])) / 2)
        final = clip_boxes(
            to_voc_boxes(np.array(mesh_boxes), detector.config.voc_framing), photo.width, photo.height
        )
        batch = np.stack([pre.face_array(photo, tuple(b)) for b in final])
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            feats = torch.nn.functional.adaptive_avg_pool2d(model.features(x), 1).flatten(1)
            logits = model.classifier(feats)
        return {
            "path": str(path),
            "truth": truth,
            "n": len(boxes),
            "boxes": final,
            "first": first,
            "second": second,
            "mesh": np.array(mesh_scores),
            "feats": feats.numpy(),
            "probs": torch.softmax(logits, 1).numpy(),
            "size": (photo.width, photo.height),
        }

    torch.set_num_threads(1)
    with ThreadPoolExecutor(workers) as pool:
        _write_candidates(out, items, pool.map(one, items))


def _write_candidates(out: Path, items: list, records) -> None:
    # every candidate's row, its kind (matched face, second box, no labelled face) and the truth
    rows = {
        k: []
        for k in (
            "photo",
            "box",
            "first",
            "second",
            "mesh",
            "feats",
            "probs",
            "kind",
            "truth_label",
            "truth_size",
            "photo_w",
            "photo_h",
        )
    }
    truths = []  # (photo index, x0, y0, x1, y1, label) of every labelled face, for recall
    for index, record in enumerate(records):
        truth = record["truth"]
        tboxes = np.array([t[0] for t in truth], float).reshape(-1, 4)
        for box, label in truth:
            truths.append((index, *box, label))
        if not record["n"]:
            continue
        order = np.argsort(-np.asarray(record["first"]), kind="stable")
        overlap = iou_matrix(tboxes, record["boxes"]) if len(tboxes) else np.zeros((0, record["n"]))
        kinds = np.full(record["n"], 2)  # 0 matched face, 1 second box on a face, 2 no labelled face
        tlabel, tsize = [""] * record["n"], np.zeros(record["n"])
        taken = set()
        for det in order:
            if not len(tboxes):
                break
            free = [t for t in range(len(tboxes)) if t not in taken and overlap[t, det] >= MATCH_IOU]
            if free:
                t = max(free, key=lambda t: overlap[t, det])
                taken.add(t)
                kinds[det] = 0
                tlabel[det] = truth[t][1]
                b = tboxes[t]
                tsize[det] = math.sqrt((b[2] - b[0]) * (b[3] - b[1]))
            elif overlap[:, det].max() >= MATCH_IOU:
                kinds[det] = 1
        for det in range(record["n"]):
            rows["photo"].append(index)
            rows["box"].append(record["boxes"][det])
            rows["first"].append(record["first"][det])
            rows["second"].append(record["second"][det])
            rows["mesh"].append(record["mesh"][det])
            rows["feats"].append(record["feats"][det])
            rows["probs"].append(record["probs"][det])
            rows["kind"].append(kinds[det])
            rows["truth_label"].append(tlabel[det])
            rows["truth_size"].append(tsize[det])
            rows["photo_w"].append(record["size"][0])
            rows["photo_h"].append(record["size"][1])
        if index % 100 == 0:
            print(f"{index}/{len(items)} photos", file=sys.stderr, flush=True)
    arrays = {k: np.array(v) for k, v in rows.items()}
    arrays["truth_all"] = np.array([t[:5] for t in truths], float).reshape(-1, 5)  # photo, x0, y0, x1, y1
    arrays["truth_all_label"] = np.array([t[5] for t in truths])
    arrays["paths"] = np.array([str(p) for p, _ in items])
    np.savez_compressed(out, **arrays)
    kinds = arrays["kind"]
    print(
        json.dumps(
            {
                "photos": len(items),
                "faces": len(truths),
                "candidates": int(len(kinds)),
                "matched": int((kinds == 0).sum()),
                "second_boxes": int((kinds == 1).sum()),
                "no_face": int((kinds == 2).sum()),
            }
        )
    )


def mine_fast(voc_dir: Path, out: Path, exclude: Path | None, limit: int | None, workers: int) -> None:
    """The video path's candidates: the `fast` detector's merged faces down to its own candidate
    threshold (0.4, under its 0.52), with the int8 ONNX classifier's features (what runs beside it).
    No second looks and no face mesh there, so those columns are 0. The same file layout as `mine`,
    so `fit` and `export-verifier --precision-target` read it."""
    detector = BlazeFaceDetector("fast")
    classifier = load_classifier(DEFAULT_MODEL, "onnx", precision="int8", threads=1)
    pre = classifier.preprocessing
    items = list(voc_items(voc_dir, _names(exclude), limit))

    def one(item: tuple[Path, list]) -> dict:
        path, truth = item
        photo = open_image(path)
        found = detector.candidates(photo)
        record = {"path": str(path), "truth": truth, "n": len(found), "size": (photo.width, photo.height)}
        if len(found):
            batch = np.stack([pre.face_array(photo, tuple(map(float, b))) for b in found.boxes])
            logits, feats = classifier.logits_and_features(batch)
            record.update(boxes=found.boxes, first=found.first, second=np.zeros((len(found), 2)),
                          mesh=np.zeros(len(found)), feats=feats, probs=softmax(logits.astype(np.float64)))
        return record

    with ThreadPoolExecutor(workers) as pool:
        _write_candidates(out, items, pool.map(one, items))


def mine_passes(voc_dir: Path, out: Path, exclude: Path | None, limit: int | None, workers: int) -> None:
    """Every pass's own candidates (before merging), to try configurations without running them."""
    from maskdetect.faces.blazeface import pass_candidates

    detector = BlazeFaceDetector("accurate", threshold=CANDIDATE)
    items = list(voc_items(voc_dir, _names(exclude), limit))

    def one(item: tuple[Path, list]) -> list[tuple]:
        pixels = np.asarray(open_image(item[0]))
        height, width = pixels.shape[:2]
        models, rows = detector.models(), []
        passes = list(detector.config.passes)
        for p, side in detector.tilings(max(width, height)):
            number = passes.index(p) if p in passes else len(passes)  # finer tiles of large photos last
            for boxes, scores, trust in pass_candidates(pixels, p, side, models[p.model], CANDIDATE):
                rows += [(number, *b, s, t) for b, s, t in zip(boxes, scores, trust, strict=True)]
        return rows

    photo, data, names = [], [], []
    with ThreadPoolExecutor(workers) as pool:
        for index, rows in enumerate(pool.map(one, items)):
            photo += [index] * len(rows)
            data += rows
            if index % 100 == 0:
                print(f"{index}/{len(items)} photos", file=sys.stderr, flush=True)
    names = [f"{p.model}@{p.tile:g}{' grown' if p.resized else ''}" for p in detector.config.passes]
    names += ["finer tiles"]
    np.savez_compressed(
        out,
        photo=np.array(photo),
        rows=np.array(data, float).reshape(-1, 7),
        paths=np.array([str(p) for p, _ in items]),
        tilings=np.array(names),
    )


FEATURE_SETS = ("scores", "scores+classes", "embedding")


def features(data: dict, which: str) -> np.ndarray:
    """The verifier's inputs per candidate: detector scores and box size; then the classifier's."""
    second = data["second"]
    side = np.sqrt((data["box"][:, 2] - data["box"][:, 0]) * (data["box"][:, 3] - data["box"][:, 1]))
    longer = np.maximum(data["photo_w"], data["photo_h"])
    columns = [
        data["first"],
        second[:, 0],
        second[:, 1],
        data["mesh"],
        np.log(np.maximum(side, 1.0)),
        side / longer,
    ]
    if which in ("scores+classes", "embedding"):
        probs = data["probs"]
        columns += [probs[:, i] for i in range(probs.shape[1])]
    x = np.stack(columns, axis=1)
    if which == "embedding":
        x = np.concatenate([x, data["feats"]], axis=1)
    return x


def _fit(x: np.ndarray, y: np.ndarray, c: float = 0.1):  # -> a fitted sklearn pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))
    return model.fit(x, y)


def score_sets(data: dict) -> dict[str, np.ndarray]:
    """The scores the detector computes today, each a candidate verifier on its own."""
    verified = np.concatenate([data["first"][:, None], data["second"]], axis=1).mean(axis=1)
    table = {
        "first": data["first"],
        "verified": verified,
        "mesh": data["mesh"],
        "verified*mesh": verified * data["mesh"],
    }
    return {name: table[name] for name in table}


def operating_point(data: dict, score: np.ndarray, threshold: float, nms: float | None = None) -> dict:
    """Recall (faces >= 32 px and all, IoU 0.3) and precision of the candidates scoring >= threshold."""
    from maskdetect.faces.nms import match_faces

    truth = data["truth_all"]
    matched_big = total_big = matched_all = kept_total = 0
    photo_of = data["photo"]
    for index in np.unique(truth[:, 0]).astype(int).tolist() + sorted(
        set(photo_of.tolist()) - set(truth[:, 0].astype(int).tolist())
    ):
        t = truth[truth[:, 0] == index, 1:5]
        rows = np.flatnonzero((photo_of == index) & (score >= threshold))
        boxes, scores = data["box"][rows], score[rows]
        if nms is not None and len(rows) > 1:
            keep = _suppress(boxes, scores, nms)
            boxes, scores = boxes[keep], scores[keep]
        kept_total += len(boxes)
        matches = np.array(match_faces(t, boxes, scores, MATCH_IOU)) if len(t) else np.zeros(0)
        big = np.sqrt((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])) >= 32 if len(t) else np.zeros(0, bool)
        matched_big += int(((matches >= 0) & big).sum())
        total_big += int(big.sum())
        matched_all += int((matches >= 0).sum())
    return {
        "threshold": round(float(threshold), 4),
        "recall_32px": round(matched_big / max(1, total_big), 4),
        "recall": round(matched_all / max(1, len(truth)), 4),
        "precision": round(matched_all / max(1, kept_total), 4),
        "boxes": kept_total,
    }


def _suppress(boxes: np.ndarray, scores: np.ndarray, overlap: float) -> np.ndarray:
    # Second boxes go as the Predictor drops them: IoU `overlap`, or 70% of a box inside a likelier one.
    from maskdetect.verify import suppress_second_boxes

    return suppress_second_boxes(boxes, scores, overlap, 0.7)


def at_recall(data: dict, score: np.ndarray, target: float, nms: float | None = None) -> dict:
    """The highest threshold whose recall of faces >= 32 px reaches `target` (bisection on the scores)."""
    candidates = np.unique(np.round(score, 4))
    lo, hi = 0, len(candidates) - 1
    best = operating_point(data, score, candidates[0], nms)
    while lo <= hi:
        mid = (lo + hi) // 2
        point = operating_point(data, score, candidates[mid], nms)
        if point["recall_32px"] >= target:
            best, lo = point, mid + 1
        else:
            hi = mid - 1
    return best


def fit_and_report(train_path: Path, test_path: Path, target: float) -> None:
    train, test = dict(np.load(train_path)), dict(np.load(test_path))
    results: dict = {"target_recall_32px": target}
    # Out-of-fold scores on the training set (photos split in two), to choose thresholds honestly.
    folds = train["photo"] % 2
    labelled = train["kind"] != 1  # second boxes: a verifier of crops cannot tell them, NMS does
    y = (train["kind"] == 0).astype(int)
    for name in FEATURE_SETS:
        x_train, x_test = features(train, name), features(test, name)
        oof = np.zeros(len(y))
        for fold in (0, 1):
            fit_rows = labelled & (folds != fold)
            oof[folds == fold] = _fit(x_train[fit_rows], y[fit_rows]).predict_proba(x_train[folds == fold])[
                :, 1
            ]
        model = _fit(x_train[labelled], y[labelled])
        train_scores, test_scores = oof, model.predict_proba(x_test)[:, 1]
        results[f"lr:{name}"] = _report(train, test, train_scores, test_scores, target)
    for name in score_sets(train):
        results[name] = _report(train, test, score_sets(train)[name], score_sets(test)[name], target)
    print(json.dumps(results, indent=1))


def _report(
    train: dict, test: dict, train_scores: np.ndarray, test_scores: np.ndarray, target: float
) -> dict:
    chosen = at_recall(train, train_scores, target)
    out = {
        "train_at_target": chosen,
        "test_at_train_threshold": operating_point(test, test_scores, chosen["threshold"]),
        "test_at_target": at_recall(test, test_scores, target),
    }
    chosen_nms = at_recall(train, train_scores, target, nms=0.3)
    out["test_at_train_threshold_nms"] = operating_point(test, test_scores, chosen_nms["threshold"], nms=0.3)
    return out


def outcomes_at(data: dict, score: np.ndarray, threshold: float, suppress: bool = False) -> list:
    """ImageOutcomes (as evaluate-detect makes them, IoU 0.3) of the candidates scoring >= threshold."""
    from maskdetect.evaluation.detection import matched_outcome
    from maskdetect.labels import CLASSES

    outcomes = []
    truth, labels = data["truth_all"], data["truth_all_label"]
    for index, path in enumerate(data["paths"]):
        rows = np.flatnonzero((data["photo"] == index) & (score >= threshold))
        if suppress and len(rows) > 1:
            rows = rows[_suppress(data["box"][rows], score[rows], 0.3)]
        t = [(tuple(b), str(lab)) for b, lab in zip(truth[truth[:, 0] == index, 1:5],
                                                    labels[truth[:, 0] == index], strict=True)]
        predicted = [CLASSES[int(np.argmax(p))] for p in data["probs"][rows]]
        outcomes.append(matched_outcome(str(path), t, data["box"][rows], score[rows], predicted, MATCH_IOU))
    return outcomes


def embedding_verifier(train: dict):  # -> a fitted sklearn pipeline
    """Logistic regression on the first-pass and second-look scores, the box size and the
    classifier's 1280-d features, fitted on `train`'s matched faces against its no-face boxes."""
    labelled = train["kind"] != 1
    # C=0.01: the best of 0.01, 0.1 and 1 on andrewmvd's photos, out of fold
    return _fit(verifier_columns(train)[labelled], (train["kind"] == 0).astype(int)[labelled], c=0.01)


def verifier_columns(data: dict) -> np.ndarray:
    from maskdetect.verify import verifier_inputs

    longer = np.maximum(data["photo_w"], data["photo_h"])
    return verifier_inputs(data["box"], data["first"], data["second"], data["feats"], longer)


# The first stage settles the candidates it scores below the 2% quantile of its faces or above the 98%
# quantile of its non-faces.
FIRST_STAGE_QUANTILE = 0.02


def without_second_looks(data: dict) -> dict:
    """The same candidates with the second looks left at 0: what the first stage sees."""
    return {**data, "second": np.zeros_like(data["second"])}


def out_of_fold(data: dict) -> np.ndarray:
    """Each candidate's verifier probability from a fit on the other half of the photos."""
    folds, oof = data["photo"] % 2, np.zeros(len(data["kind"]))
    labelled, y = data["kind"] != 1, (data["kind"] == 0).astype(int)
    x = verifier_columns(data)
    for fold in (0, 1):
        rows = labelled & (folds != fold)
        oof[folds == fold] = _fit(x[rows], y[rows], c=0.01).predict_proba(x[folds == fold])[:, 1]
    return oof


def two_stage(train: dict, target: float) -> dict:
    """The verifier as shipped, fitted on `train`: its first stage and its band, the full verifier,
    and the threshold whose out-of-fold recall of faces >= 32 px (second boxes dropped) is `target`."""
    cheap_oof, full_oof = out_of_fold(without_second_looks(train)), out_of_fold(train)
    low = float(np.quantile(cheap_oof[train["kind"] == 0], FIRST_STAGE_QUANTILE))
    high = float(np.quantile(cheap_oof[train["kind"] == 2], 1 - FIRST_STAGE_QUANTILE))
    settled = (cheap_oof < low) | (cheap_oof > high)
    threshold = at_recall(train, np.where(settled, cheap_oof, full_oof), target, nms=0.3)["threshold"]
    return {"first": embedding_verifier(without_second_looks(train)), "full": embedding_verifier(train),
            "low": low, "high": high, "threshold": threshold,
            "full_threshold": at_recall(train, full_oof, target, nms=0.3)["threshold"]}


def two_stage_scores(model: dict, data: dict) -> tuple[np.ndarray, np.ndarray]:
    """The shipped decision on `data`'s candidates, and which of them needed second looks."""
    cheap = model["first"].predict_proba(verifier_columns(without_second_looks(data)))[:, 1]
    unsure = (cheap >= model["low"]) & (cheap <= model["high"])
    return np.where(unsure, model["full"].predict_proba(verifier_columns(data))[:, 1], cheap), unsure


def cascade_report(train_path: Path, test_path: Path, target: float) -> None:
    """The two-stage verifier against the full one (second looks for every candidate) on `test`."""
    train, test = dict(np.load(train_path)), dict(np.load(test_path))
    model = two_stage(train, target)
    scores, unsure = two_stage_scores(model, test)
    full = model["full"].predict_proba(verifier_columns(test))[:, 1]
    print(json.dumps({
        "band": [round(model["low"], 4), round(model["high"], 4)],
        "candidates": len(scores), "second_looks_needed": round(float(unsure.mean()), 4),
        "two_stage": operating_point(test, scores, model["threshold"], nms=0.3),
        "full_verifier": operating_point(test, full, model["full_threshold"], nms=0.3),
    }, indent=1))


def refeature(path: Path, out: Path, precision: str) -> None:
    """The same mined candidates with the bundled classifier's features and probabilities at another
    precision (ONNX Runtime, `fp32` or `int8`): a verifier reads the features of the classifier that
    runs beside it."""
    data = dict(np.load(path))
    classifier = load_classifier(DEFAULT_MODEL, "onnx", precision=precision)
    pre = classifier.preprocessing
    feats = np.zeros_like(data["feats"])
    probs = np.zeros_like(data["probs"])
    for index, photo_path in enumerate(data["paths"]):
        rows = np.flatnonzero(data["photo"] == index)
        if not len(rows):
            continue
        photo = open_image(photo_path)
        batch = np.stack([pre.face_array(photo, tuple(map(float, data["box"][r]))) for r in rows])
        logits, feats[rows] = classifier.logits_and_features(batch)
        probs[rows] = softmax(logits.astype(np.float64))
    before = data["feats"]
    cosine = (before * feats).sum(1) / np.linalg.norm(before, axis=1) / np.linalg.norm(feats, axis=1)
    data["feats"], data["probs"] = feats, probs
    np.savez(out, **data)
    print(json.dumps({"candidates": len(feats), "precision": precision, "written": str(out),
                      "feature_cosine_to_mined": {"mean": round(float(cosine.mean()), 4),
                                                  "min": round(float(cosine.min()), 4)}}))


def export_verifier(train_path: Path, out: Path, target: float, model: Path,
                    precision_target: float | None = None) -> None:
    """Fit the verifier on `train_path`'s candidates for `model`'s classifier (a bundle folder or a
    checkpoint) and write it to `out`; a bundle's manifest names it in `verifiers` (`maskdetect
    fit-verifier` does both, by the same recipe).

    Nothing from the test set decides it: the band and the threshold come from out-of-fold scores on
    the training photos themselves. With `precision_target` (the video path's candidates, which have
    no second looks) it is one stage, and its threshold the lowest whose out-of-fold precision
    reaches that target: as many faces as that precision allows.
    """
    from maskdetect.fileio import file_digest
    from maskdetect.verify import SCORE_COLUMNS, FaceVerifier, FirstStage

    train = dict(np.load(train_path))
    labelled = int((train["kind"] != 1).sum())
    described = f"{train_path.name}: {len(train['paths'])} photos, {labelled} candidates"
    digest = file_digest(resolve_checkpoint(model))
    if precision_target is not None:
        threshold = at_precision(train, out_of_fold(train), precision_target, nms=0.3)["threshold"]
        scaler, regression = (step[1] for step in embedding_verifier(train).steps)
        verifier = FaceVerifier(digest, scaler.mean_, scaler.scale_, regression.coef_[0],
                                float(regression.intercept_[0]), float(threshold))
        verifier.save(out, data=described, fitted_by="python bench/studies/verifier_study.py export-verifier "
                      "--precision-target", precision_target=precision_target)
        print(json.dumps({"threshold": threshold, "written": str(out)}))
        return
    model = two_stage(train, target)
    (cheap_scaler, cheap), (scaler, regression) = (
        (m.steps[0][1], m.steps[1][1]) for m in (model["first"], model["full"])
    )
    assert len(scaler.mean_) == len(SCORE_COLUMNS) + train["feats"].shape[1]
    first_stage = FirstStage(cheap_scaler.mean_, cheap_scaler.scale_, cheap.coef_[0],
                             float(cheap.intercept_[0]), model["low"], model["high"])
    verifier = FaceVerifier(digest, scaler.mean_, scaler.scale_, regression.coef_[0],
                            float(regression.intercept_[0]), float(model["threshold"]),
                            first_stage=first_stage)
    verifier.save(out, data=described, fitted_by="python bench/studies/verifier_study.py export-verifier",
                  recall_target_32px=target)
    band = [model["low"], model["high"]]
    print(json.dumps({"threshold": model["threshold"], "band": band, "written": str(out)}))


def at_precision(data: dict, score: np.ndarray, target: float, nms: float | None = None) -> dict:
    """The lowest threshold (0.01 steps) whose precision reaches `target`: precision need not rise
    steadily with the threshold, so every step is looked at."""
    points = [operating_point(data, score, t, nms) for t in np.arange(0.01, 1.0, 0.01)]
    reached = [p for p in points if p["precision"] >= target]
    if not reached:
        best = max(p["precision"] for p in points)
        raise SystemExit(f"no threshold reaches precision {target} (the best is {best})")
    return reached[0]


def sheet(path: Path, rule: str, threshold: float, out: Path, count: int, seed: int,
          train: Path | None = None, suppress: bool = False) -> None:
    from maskdetect.evaluation.false_alarms import false_alarm_report, write_unmatched_sheet

    data = dict(np.load(path))
    if rule == "embedding-verifier":
        if train is None:
            raise SystemExit("--rule embedding-verifier needs --train CANDIDATES (the set it learns from)")
        score = embedding_verifier(dict(np.load(train))).predict_proba(verifier_columns(data))[:, 1]
    else:
        score = score_sets(data)[rule]
    outcomes = outcomes_at(data, score, threshold, suppress)
    write_unmatched_sheet(outcomes, out, count=count, seed=seed)
    print(json.dumps(false_alarm_report(outcomes), indent=1))


def passes_report(passes_path: Path, candidates_path: Path) -> None:
    """For each pass: the faces >= 32 px it finds (a candidate from 0.3 at IoU 0.3, boxes framed like
    `detect`'s), and those no other pass finds: what dropping it could lose, at most."""
    from maskdetect.faces.blazeface import BLAZEFACE_VOC_FRAMING

    passes, cand = dict(np.load(passes_path)), dict(np.load(candidates_path))
    names, rows, photo, truth = list(passes["tilings"]), passes["rows"], passes["photo"], cand["truth_all"]
    found: dict[tuple[int, int], set[int]] = {}
    big_faces = 0
    for index in range(len(passes["paths"])):
        t = truth[truth[:, 0] == index, 1:5]
        big = np.sqrt((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])) >= 32
        big_faces += int(big.sum())
        r = rows[photo == index]
        if not len(r) or not len(t):
            continue
        overlap = iou_matrix(t, to_voc_boxes(r[:, 1:5], BLAZEFACE_VOC_FRAMING))
        for face in np.flatnonzero(big):
            hits = set(r[overlap[face] >= MATCH_IOU, 0].astype(int).tolist())
            if hits:
                found[(index, int(face))] = hits
    report = {"faces_32px_and_more": big_faces, "found_by_any_pass": len(found), "passes": {}}
    for number, name in enumerate(names):
        report["passes"][name] = {"found": sum(1 for s in found.values() if number in s),
                                  "found_only_by_it": sum(1 for s in found.values() if s == {number})}
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    # candidates with every score; the video path's candidates; each pass's own candidates
    for name in ("mine", "mine-fast", "passes"):
        m = sub.add_parser(name)
        m.add_argument("voc_dir", type=Path)
        m.add_argument("--out", type=Path, required=True)
        m.add_argument("--exclude", type=Path)
        m.add_argument("--limit", type=int)
        m.add_argument("--workers", type=int, default=2)
    sh = sub.add_parser("sheet")
    sh.add_argument("candidates", type=Path)
    sh.add_argument("--rule", default="verified", help="verified, first, mesh or embedding-verifier")
    sh.add_argument("--threshold", type=float, default=0.37)
    sh.add_argument("--out", type=Path, required=True)
    sh.add_argument("--count", type=int, default=100)
    sh.add_argument("--seed", type=int, default=0)
    sh.add_argument("--train", type=Path, help="candidates the embedding verifier learns from")
    sh.add_argument("--suppress", action="store_true", help="drop second boxes (IoU 0.3, or 70%% inside)")
    rf = sub.add_parser("refeature")
    rf.add_argument("candidates", type=Path)
    rf.add_argument("--out", type=Path, required=True)
    rf.add_argument("--precision", choices=("fp32", "int8"), required=True)
    ev = sub.add_parser("export-verifier")
    ev.add_argument("train", type=Path)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--target", type=float, default=0.95)
    ev.add_argument("--model", "--checkpoint", dest="model", type=Path, default=DEFAULT_MODEL,
                    help="the bundle folder or checkpoint whose classifier's features were mined (default: "
                    "the bundled model, whose classifier `mine` and `refeature` read)")
    ev.add_argument("--precision-target", type=float,
                    help="one stage (no second looks: mine-fast's candidates), at this out-of-fold precision")
    cr = sub.add_parser("cascade")
    cr.add_argument("train", type=Path)
    cr.add_argument("test", type=Path)
    cr.add_argument("--target", type=float, default=0.95)
    pr = sub.add_parser("passes-report")
    pr.add_argument("passes", type=Path)
    pr.add_argument("candidates", type=Path, help="the same photos' candidates (for their labelled faces)")
    f = sub.add_parser("fit")
    f.add_argument("train", type=Path)
    f.add_argument("test", type=Path)
    f.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args()
    if args.cmd == "fit":
        fit_and_report(args.train, args.test, args.target)
    if args.cmd == "refeature":
        refeature(args.candidates, args.out, args.precision)
    if args.cmd == "export-verifier":
        export_verifier(args.train, args.out, args.target, args.model, args.precision_target)
    if args.cmd == "sheet":
        sheet(args.candidates, args.rule, args.threshold, args.out, args.count, args.seed, args.train,
              args.suppress)
    if args.cmd == "cascade":
        cascade_report(args.train, args.test, args.target)
    if args.cmd == "passes-report":
        passes_report(args.passes, args.candidates)
    if args.cmd == "passes":
        mine_passes(args.voc_dir, args.out, args.exclude, args.limit, args.workers)
    if args.cmd == "mine-fast":
        mine_fast(args.voc_dir, args.out, args.exclude, args.limit, args.workers)
    if args.cmd == "mine":
        mine(args.voc_dir, args.out, args.exclude, args.limit, args.workers)


if __name__ == "__main__":
    Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # keep the project's own limit (set on import)
    main()
