"""How much of a heat map falls on the nose and mouth, against that region's share of the crop.

The region is the convex hull of the face mesh's nose and outer-lip points (MediaPipe indices, from
`maskdetect.faces.landmarks`): the nose from the bridge between the eyes to the nostrils, and the
mouth. Its share of the crop's area is the chance level: a map that ignored the face entirely
would put that share of its mass there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from maskdetect.faces.landmarks import MOUTH, NOSE

NOSE_MOUTH_POINTS: tuple[int, ...] = tuple(dict.fromkeys(NOSE + MOUTH))


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of (n, 2) points, counter-clockwise (Andrew's monotone chain).

    >>> convex_hull(np.array([[0, 0], [2, 0], [1, 1], [2, 2], [0, 2]])).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    """
    pts = sorted({(float(x), float(y)) for x, y in np.asarray(points)[:, :2]})
    if len(pts) <= 2:
        return np.array(pts, np.float64).reshape(-1, 2)

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], np.float64)


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """A boolean H x W mask of the pixels inside a polygon of (x, y) points.

    >>> polygon_mask(np.array([[1, 1], [3, 1], [3, 2], [1, 2]]), 4, 5).sum()
    np.int64(6)
    """
    canvas = Image.new("L", (width, height), 0)
    if len(polygon) >= 3:
        ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in polygon], fill=1, outline=1)
    return np.asarray(canvas, bool)


def nose_mouth_polygon(mesh_points: np.ndarray) -> np.ndarray:
    """The hull of the mesh's nose and mouth points, (n, 2) x, y in the mesh's pixels.

    >>> points = np.zeros((468, 3))
    >>> points[list(NOSE_MOUTH_POINTS[:3]), :2] = [[10, 10], [20, 10], [15, 30]]
    >>> nose_mouth_polygon(points).tolist()
    [[0.0, 0.0], [20.0, 10.0], [15.0, 30.0]]
    """
    mesh_points = np.asarray(mesh_points)
    if mesh_points.ndim != 2 or mesh_points.shape[0] < max(NOSE_MOUTH_POINTS) + 1:
        raise ValueError(f"expected the 468-point face mesh, got points of shape {mesh_points.shape}")
    return convex_hull(mesh_points[list(NOSE_MOUTH_POINTS), :2])


def heat_share(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """The share of the heat map's positive mass inside the mask (NaN when there is none).

    >>> heat_share(np.array([[1.0, 3.0], [-5.0, 0.0]]), np.array([[True, False], [True, False]]))
    0.25
    """
    positive = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0, None)
    total = positive.sum()
    if mask.shape != positive.shape:
        raise ValueError(f"mask shape {mask.shape} does not match heat map shape {positive.shape}")
    return float(positive[mask].sum() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class RegionHeat:
    """One heat map's share on the nose and mouth.

    Attributes:
        heat_share: the share of the map's positive mass inside the region (NaN when there is none).
        area_share: the region's share of the map's area: the chance level.
        polygon: the region, (n, 2) x, y in the map's grid.
    """

    heat_share: float
    area_share: float
    polygon: np.ndarray


def nose_mouth_heat(heatmap: np.ndarray, mesh_points: np.ndarray, mesh_size: tuple[int, int]) -> RegionHeat:
    """The heat on the nose and mouth, from a face mesh found on the same crop at another size.

    Args:
        heatmap: H x W, in the model's crop grid.
        mesh_points: the 468-point face mesh, x, y in the pixels of the crop it ran on.
        mesh_size: (width, height) of that crop; its points are scaled to the map's grid.

    >>> points = np.zeros((468, 3))
    >>> points[list(NOSE_MOUTH_POINTS[:4]), :2] = [[0, 0], [20, 0], [20, 20], [0, 20]]
    >>> heat = np.zeros((20, 20)); heat[:5, :5] = 1.0
    >>> region = nose_mouth_heat(heat, points, (40, 40))
    >>> region.heat_share, region.area_share
    (1.0, 0.3025)
    """
    height, width = np.asarray(heatmap).shape
    scale = [width / mesh_size[0], height / mesh_size[1]]
    polygon = nose_mouth_polygon(np.asarray(mesh_points, np.float64)[:, :2] * scale)
    mask = polygon_mask(polygon, height, width)
    return RegionHeat(heat_share(heatmap, mask), float(mask.mean()), polygon)
