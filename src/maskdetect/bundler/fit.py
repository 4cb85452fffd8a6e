"""Fit a face verifier on mined candidates (`bundler.candidates`) and choose its threshold.

The verifier is a class-balanced, L2-regularised logistic regression over standardised input
columns (`verify.verifier_inputs`), as `sklearn`'s `LogisticRegression(C, class_weight="balanced")`
behind a `StandardScaler` fits it, solved here with torch's L-BFGS so that no research dependency is
needed. Nothing outside the training photos decides anything: the threshold (and the first stage's
band) come from out-of-fold scores, each photo scored by a fit on the other half.

Two recipes, as the bundled model's verifiers were made:
- `recall_target` (photo detectors with second looks): two stages. A cheap first stage sees the
  second looks at 0 and settles candidates outside its band; the full verifier decides the rest. The
  threshold is the highest whose out-of-fold recall of faces of 32 px and more reaches the target.
- `precision_target`: one stage, its threshold the lowest whose out-of-fold precision reaches the
  target. A detector without second looks (blazeface-fast, retinaface) gets one stage with either
  target: a first stage would see the same inputs as the full verifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from maskdetect.bundler.candidates import FACE, SECOND_BOX, CandidateSet, operating_point
from maskdetect.verify import FaceVerifier, FirstStage, trusted

log = logging.getLogger(__name__)

REGULARISATION = 0.01  # sklearn's C: the best of 0.01, 0.1 and 1 on andrewmvd's photos, out of fold
FIRST_STAGE_QUANTILE = 0.02  # the band leaves this share of faces below it, of no-faces above it


@dataclass(frozen=True)
class Logistic:
    """A fitted regression: probability = sigmoid(((x - mean) / scale) . coef + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -80, 80)))


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = REGULARISATION) -> Logistic:
    """Class-balanced logistic regression with an L2 penalty of 1/(2C) on the weights (not the
    intercept), on standardised columns.

    Raises:
        ValueError: fewer than two classes among `y`.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2)); y = (x[:, 0] > 0).astype(int)
    >>> model = fit_logistic(x, y, c=1.0)
    >>> float(((model.probability(x) > 0.5) == y).mean()) > 0.95
    True
    """
    import torch

    y = np.asarray(y, np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"a verifier needs faces and non-faces to learn from, got only class {y[:1]}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = torch.from_numpy((x - mean) / scale)
    target = torch.from_numpy(y)
    positives = y.mean()
    weight = torch.from_numpy(np.where(y == 1, 0.5 / positives, 0.5 / (1 - positives)))
    coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    intercept = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS([coef, intercept], lr=1, max_iter=500, tolerance_grad=1e-9,
                               tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        solver.zero_grad()
        logits = xs @ coef + intercept
        data = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none")).sum()
        value = 0.5 * (coef * coef).sum() + c * data
        value.backward()
        return value

    for _ in range(5):  # LBFGS stops at max_iter: a few restarts reach the optimum on 1,300 columns
        solver.step(loss)
    return Logistic(mean, scale, coef.detach().numpy().copy(), float(intercept.detach()[0]))


def _learnable(data: CandidateSet) -> np.ndarray:
    return data.kind != SECOND_BOX


def out_of_fold(data: CandidateSet, second_looks: bool = True) -> np.ndarray:
    """Each candidate's probability from a fit on the other half of the photos (by photo parity)."""
    folds, scores = data.photo % 2, np.zeros(len(data.kind))
    x, y = data.columns(second_looks), (data.kind == FACE).astype(int)
    for fold in (0, 1):
        rows = _learnable(data) & (folds != fold)
        scores[folds == fold] = fit_logistic(x[rows], y[rows]).probability(x[folds == fold])
    return scores


def at_recall(data: CandidateSet, score: np.ndarray, target: float) -> dict[str, float]:
    """The highest threshold whose recall of faces of 32 px and more reaches `target` (bisection)."""
    levels = np.unique(np.round(score, 4))
    low, high = 0, len(levels) - 1
    best = operating_point(data, score, levels[0])
    while low <= high:
        middle = (low + high) // 2
        point = operating_point(data, score, levels[middle])
        if point["recall_32px"] >= target:
            best, low = point, middle + 1
        else:
            high = middle - 1
    return best


def at_precision(data: CandidateSet, score: np.ndarray, target: float) -> dict[str, float]:
    """The lowest threshold (0.01 steps) whose precision reaches `target`.

    Raises:
        ValueError: no threshold reaches it (the message gives the best precision there is).
    """
    points = [operating_point(data, score, t) for t in np.arange(0.01, 1.0, 0.01)]
    reached = [p for p in points if p["precision"] >= target]
    if not reached:
        raise ValueError(f"no threshold reaches precision {target} on these photos (the best is "
                         f"{max(p['precision'] for p in points)})")
    return reached[0]


def fit_verifier(data: CandidateSet, checkpoint_sha256: str, recall_target: float | None = 0.95,
                 precision_target: float | None = None, trust_precision: float | None = None,
                 ) -> tuple[FaceVerifier, dict[str, float]]:
    """Fit a verifier on mined candidates; returns it and its out-of-fold operating point.

    Args:
        data: the candidates of the training photos.
        checkpoint_sha256: the classifier whose features the candidates carry.
        recall_target: two stages, threshold at this out-of-fold recall of faces >= 32 px.
        precision_target: one stage, threshold at this out-of-fold precision (overrides recall).

    Raises:
        ValueError: neither target in (0, 1), or a target no threshold reaches.
    """
    target = precision_target if precision_target is not None else recall_target
    if target is None or not 0 < target < 1:
        raise ValueError(f"a verifier needs a recall or precision target between 0 and 1, got {target}")
    x, y, rows = data.columns(), (data.kind == FACE).astype(int), _learnable(data)
    full = fit_logistic(x[rows], y[rows])
    if precision_target is not None:
        floor = trust_precision is not None and not data.second.any()
        trust = trust_score(data, trust_precision) if floor else None
        point = at_precision(data, trusted(out_of_fold(data), data.first, trust), precision_target)
        return FaceVerifier(checkpoint_sha256, full.mean, full.scale, full.coef, full.intercept,
                            point["threshold"], trust_score=trust), {**point, "trust_score": trust}
    if not data.second.any():  # a detector without second looks: a first stage would be the same fit
        point = at_recall(data, out_of_fold(data), recall_target)
        return FaceVerifier(checkpoint_sha256, full.mean, full.scale, full.coef, full.intercept,
                            point["threshold"]), point
    cheap_oof, full_oof = out_of_fold(data, second_looks=False), out_of_fold(data)
    low = float(np.quantile(cheap_oof[data.kind == FACE], FIRST_STAGE_QUANTILE))
    high = float(np.quantile(cheap_oof[data.kind == 2], 1 - FIRST_STAGE_QUANTILE))
    settled = (cheap_oof < low) | (cheap_oof > high)
    point = at_recall(data, np.where(settled, cheap_oof, full_oof), recall_target)
    cheap = fit_logistic(data.columns(second_looks=False)[rows], y[rows])
    stage = FirstStage(cheap.mean, cheap.scale, cheap.coef, cheap.intercept, low, high)
    return FaceVerifier(checkpoint_sha256, full.mean, full.scale, full.coef, full.intercept,
                        point["threshold"], first_stage=stage), point


def trust_score(data: CandidateSet, precision: float = 0.95) -> float | None:
    """The lowest detector score (0.01 steps from 0.5) from which the detector's candidates alone,
    second boxes suppressed, reach `precision` on these photos; None if none does.

    Fitted on small faces, the regression can turn down large faces the detector is sure of; from
    this score the detector's own word is kept.
    """
    for level in np.arange(0.5, 1.0, 0.01):
        if operating_point(data, data.first, float(level))["precision"] >= precision:
            return round(float(level), 2)
    return None
