"""Occlusion sensitivity: slide a patch over a face crop and measure the drop in a class's probability.

The seed's version had three bugs that this module is built to avoid and its tests pin down: the map
came out transposed, windows touching the border were skipped, and its "grey" fill was written into
the normalised tensor. Here windows are (y0, y1, x0, x1) in the crop's pixel grid and the map is
indexed [y, x]; windows cover every pixel; the fill is made in pixel space and then normalised.

The result equals `captum.attr.Occlusion` (sliding window (3, p, p), strides (3, s, s), the
normalised fill as baseline, a softmax forward) for the default ``border="clip"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from maskdetect.explain.options import BORDERS, FILLS

# forward(batch float32 NCHW, normalised) -> class probabilities, N x classes
ForwardFn = Callable[[np.ndarray], np.ndarray]
Window = tuple[int, int, int, int]  # y0, y1, x0, x1; y1/x1 exclusive



@dataclass
class OcclusionResult:
    """An occlusion map and what it was measured from.

    Attributes:
        delta: H x W float32, the target probability without occlusion minus with it, averaged
            over the windows covering each pixel (positive: the pixel supports the target).
        probability: H x W float32, the target probability with the pixel occluded (same average).
        base_probability: the target probability of the untouched crop.
        target: the class index explained.
        windows: how many windows were evaluated.
        counts: H x W int32, how many evaluated windows cover each pixel (0 leaves NaN in the maps).
    """

    delta: np.ndarray
    probability: np.ndarray
    base_probability: float
    target: int
    windows: int
    counts: np.ndarray


def window_starts(size: int, patch: int, stride: int, border: str = "clip") -> list[int]:
    """Where windows start along one axis so that every pixel is covered.

    ``clip`` (captum's rule) steps by ``stride`` until the border is covered, clipping the last
    window at the border; ``shift`` keeps whole windows and adds one flush with the border.

    >>> window_starts(10, 4, 3)
    [0, 3, 6]
    >>> window_starts(11, 4, 3)
    [0, 3, 6, 9]
    >>> window_starts(11, 4, 3, border="shift")
    [0, 3, 6, 7]
    """
    check_window(size, size, patch, stride)
    if border == "clip":
        return [i * stride for i in range(math.ceil((size - patch) / stride) + 1)]
    if border == "shift":
        starts = list(range(0, size - patch + 1, stride))
        if starts[-1] != size - patch:
            starts.append(size - patch)
        return starts
    raise ValueError(f"unknown border rule {border!r}; allowed: {', '.join(BORDERS)}")


def occlusion_windows(height: int, width: int, patch: int, stride: int, border: str = "clip") -> list[Window]:
    """All windows over an image, row by row, clipped to the image.

    >>> occlusion_windows(3, 4, 2, 2)
    [(0, 2, 0, 2), (0, 2, 2, 4), (2, 3, 0, 2), (2, 3, 2, 4)]
    """
    check_window(height, width, patch, stride)
    ys = window_starts(height, patch, stride, border)
    xs = window_starts(width, patch, stride, border)
    return [(y, min(y + patch, height), x, min(x + patch, width)) for y in ys for x in xs]


def check_window(height: int, width: int, patch: int, stride: int) -> None:
    """Raise ValueError naming the value if a patch or stride cannot tile an image of this size."""
    if not isinstance(patch, (int, np.integer)) or not 1 <= patch <= min(height, width):
        limit = min(height, width)
        raise ValueError(f"patch {patch!r} does not fit the {width}x{height} crop; allowed: 1 to {limit}")
    if not isinstance(stride, (int, np.integer)) or not 1 <= stride <= patch:
        raise ValueError(f"stride {stride!r} is not allowed; allowed: 1 to the patch size ({patch})")


def fill_pixels(pixels: np.ndarray, fill: str = "grey", blur_radius: float = 8.0) -> np.ndarray:
    """The replacement image, in pixel space (0-255, H x W x 3 float32), before normalisation.

    Args:
        pixels: the crop, H x W x 3, values 0-255.
        fill: ``grey`` (128), ``mean`` (the crop's mean colour) or ``blur`` (a Gaussian blur of it).
        blur_radius: the blur's radius in pixels.

    >>> fill_pixels(np.zeros((2, 2, 3), np.uint8))[0, 0].tolist()
    [128.0, 128.0, 128.0]
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 pixel array, got shape {pixels.shape}")
    if fill == "grey":
        return np.full(pixels.shape, 128.0, np.float32)
    if fill == "mean":
        mean = pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)
        return np.broadcast_to(mean.astype(np.float32), pixels.shape).copy()
    if fill == "blur":
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        return np.asarray(image.filter(ImageFilter.GaussianBlur(blur_radius)), np.float32)
    raise ValueError(f"unknown fill {fill!r}; allowed: {', '.join(FILLS)}")


def normalise_pixels(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Pixel-space H x W x 3 (0-255) to the model's normalised 3 x H x W float32, as Preprocessing does.

    >>> normalise_pixels(np.full((1, 1, 3), 255.0), (0.5,) * 3, (0.5,) * 3)[:, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """
    array = np.asarray(pixels, np.float32) / 255.0
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def occlusion_map(
    forward: ForwardFn,
    inputs: np.ndarray,
    baseline: np.ndarray,
    target: int,
    patch: int,
    stride: int,
    *,
    border: str = "clip",
    batch_size: int = 64,
    windows: Sequence[Window] | None = None,
) -> OcclusionResult:
    """Occlude each window with the baseline, in batches, and average the target's probability drop.

    Args:
        forward: maps a normalised float32 N x 3 x H x W batch to N x classes probabilities.
        inputs: the normalised crop, 3 x H x W.
        baseline: the normalised fill, 3 x H x W, or one value per channel.
        target: the class index whose probability is measured.
        patch: window side in pixels; stride: step in pixels.
        border: ``clip`` or ``shift`` (see `window_starts`).
        batch_size: perturbed crops per forward call.
        windows: evaluate only these windows; default all.

    >>> fwd = lambda b: np.stack([b.mean(axis=(1, 2, 3)), -b.mean(axis=(1, 2, 3))], 1)
    >>> r = occlusion_map(fwd, np.ones((3, 4, 4), np.float32), np.zeros((3, 4, 4)), 0, 2, 2)
    >>> r.delta.shape, r.windows
    ((4, 4), 4)
    """
    inputs, baseline = _check_inputs(inputs, baseline, batch_size)
    _, height, width = inputs.shape
    if windows is None:
        windows = occlusion_windows(height, width, patch, stride, border)
    base_p = _base_probability(forward, inputs, target)
    probs = _window_probabilities(forward, inputs, baseline, target, windows, batch_size)
    return _assemble(windows, probs, base_p, target, height, width)


def coarse_to_fine_map(
    forward: ForwardFn,
    inputs: np.ndarray,
    baseline: np.ndarray,
    target: int,
    patch: int,
    stride: int,
    *,
    border: str = "clip",
    batch_size: int = 64,
    coarse_factor: int = 2,
    refine_fraction: float = 0.15,
    margin: int | None = None,
) -> OcclusionResult:
    """A cheaper map: a coarse pass, then the exact windows only where the coarse map is high.

    The coarse pass is every ``coarse_factor``-th exact window along each axis (stride times the
    factor, the same patch, capped so the windows still touch and the border window is kept), so
    none of its work is wasted. Then every other exact window that comes within ``margin`` pixels
    (default: the stride) of the coarse map's top ``refine_fraction`` is evaluated. Each pixel's
    value is the average over the windows evaluated that cover it: exactly the full map's value
    where all of them were (``counts`` says how many were), the coarse estimate elsewhere.

    >>> fwd = lambda b: np.stack([b[:, :, :2, :2].mean(axis=(1, 2, 3)), np.zeros(len(b))], 1)
    >>> r = coarse_to_fine_map(fwd, np.ones((3, 16, 16), np.float32), np.zeros(3), 0, 2, 1)
    >>> bool(r.delta[0, 0] > r.delta[15, 15]), r.windows < 15 * 15
    (True, True)
    """
    inputs, baseline = _check_inputs(inputs, baseline, batch_size)
    _, height, width = inputs.shape
    if not 0 < refine_fraction <= 1:
        raise ValueError(f"refine fraction {refine_fraction} is not allowed; allowed: above 0 up to 1")
    if coarse_factor < 1:
        raise ValueError(f"coarse factor {coarse_factor} is not allowed; allowed: 1 or more")
    check_window(height, width, patch, stride)
    factor = max(1, min(coarse_factor, patch // stride))  # coarse windows must still touch
    ys, xs = window_starts(height, patch, stride, border), window_starts(width, patch, stride, border)
    coarse_ys, coarse_xs = set(ys[::factor]) | {ys[-1]}, set(xs[::factor]) | {xs[-1]}
    all_windows = occlusion_windows(height, width, patch, stride, border)
    coarse_windows = [w for w in all_windows if w[0] in coarse_ys and w[2] in coarse_xs]
    base_p = _base_probability(forward, inputs, target)
    coarse_probs = _window_probabilities(forward, inputs, baseline, target, coarse_windows, batch_size)
    coarse = _assemble(coarse_windows, coarse_probs, base_p, target, height, width)
    region = top_region(coarse.delta, refine_fraction)
    if (region & (coarse.delta > 0)).any():  # ties at zero would otherwise refine a whole flat map
        region &= coarse.delta > 0
    margin = stride if margin is None else margin
    coarse_set = set(coarse_windows)
    extra = [w for w in all_windows if w not in coarse_set and _touches(region, w, margin)]
    extra_probs = _window_probabilities(forward, inputs, baseline, target, extra, batch_size)
    return _assemble(coarse_windows + extra, np.concatenate([coarse_probs, extra_probs]), base_p, target,
                     height, width)


def _check_inputs(inputs: np.ndarray, baseline: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim != 3:
        raise ValueError(f"expected a 3 x H x W input, got shape {inputs.shape}")
    baseline = np.asarray(baseline, np.float32)
    if baseline.ndim == 1:  # one value per channel
        baseline = baseline[:, None, None]
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} is not allowed; allowed: 1 or more")
    return inputs, np.broadcast_to(baseline, inputs.shape)


def _base_probability(forward: ForwardFn, inputs: np.ndarray, target: int) -> float:
    base = np.asarray(forward(inputs[None]))[0]
    if not 0 <= target < base.shape[0]:
        raise ValueError(f"target class index {target} is out of range; allowed: 0 to {base.shape[0] - 1}")
    return float(base[target])


def _window_probabilities(
    forward: ForwardFn, inputs: np.ndarray, baseline: np.ndarray, target: int,
    windows: Sequence[Window], batch_size: int,
) -> np.ndarray:
    # The target's probability with each window occluded, batch_size crops per forward call.
    probs = []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        batch = np.repeat(inputs[None], len(chunk), axis=0)
        for i, (y0, y1, x0, x1) in enumerate(chunk):
            batch[i, :, y0:y1, x0:x1] = baseline[:, y0:y1, x0:x1]
        probs.append(np.asarray(forward(batch), np.float64)[:, target])
    return np.concatenate(probs) if probs else np.zeros(0)


def _assemble(
    windows: Sequence[Window], probs: np.ndarray, base_p: float, target: int, height: int, width: int
) -> OcclusionResult:
    drop_sum = np.zeros((height, width), np.float64)
    prob_sum = np.zeros((height, width), np.float64)
    counts = np.zeros((height, width), np.int32)
    for p, (y0, y1, x0, x1) in zip(probs, windows, strict=True):
        drop_sum[y0:y1, x0:x1] += base_p - p
        prob_sum[y0:y1, x0:x1] += p
        counts[y0:y1, x0:x1] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where(counts > 0, drop_sum / counts, np.nan).astype(np.float32)
        probability = np.where(counts > 0, prob_sum / counts, np.nan).astype(np.float32)
    return OcclusionResult(delta, probability, base_p, target, len(windows), counts)


def top_region(heatmap: np.ndarray, fraction: float) -> np.ndarray:
    """A boolean mask of the ``fraction`` of pixels with the highest values (ties included).

    >>> top_region(np.arange(10.0).reshape(2, 5), 0.2).sum()
    np.int64(2)
    """
    values = np.nan_to_num(np.asarray(heatmap, np.float64), nan=-np.inf)
    k = max(1, int(round(fraction * values.size)))
    threshold = np.partition(values.ravel(), values.size - k)[values.size - k]
    return values >= threshold


def region_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty).

    >>> region_iou(np.array([True, True, False]), np.array([True, False, False]))
    0.5
    """
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _touches(region: np.ndarray, window: Window, margin: int) -> bool:
    y0, y1, x0, x1 = window
    return bool(region[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin].any())
