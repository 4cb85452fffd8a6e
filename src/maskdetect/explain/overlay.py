"""Heat maps drawn over their face crops (with a colour bar), and contact sheets of many of them.

matplotlib runs with its Agg canvas directly (no pyplot state, no display); files are written
atomically.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from maskdetect.fileio import atomic_write_bytes

CAPTION_WIDTH = 26  # characters of an 8 pt title that fit over a contact sheet's 2-inch panel


@dataclass
class Panel:
    """One crop with its heat map and a caption, for a contact sheet."""

    crop: Image.Image
    heatmap: np.ndarray
    caption: str = ""
    symmetric: bool = True
    polygon: np.ndarray | None = None  # (n, 2) x, y outlined on top, e.g. the nose-and-mouth region


def colour_limits(heatmap: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """Colour-scale limits: ±max|value| for signed maps (0 stays neutral), else 0..max.

    >>> colour_limits(np.array([-1.0, 3.0]), True)
    (-3.0, 3.0)
    """
    finite = np.asarray(heatmap, np.float64)[np.isfinite(heatmap)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    top = top if top > 0 else 1e-6
    return (-top, top) if symmetric else (0.0, top)


def wrap_caption(caption: str, width: int = CAPTION_WIDTH) -> str:
    """Each line of `caption` wrapped to `width` characters, long names broken rather than cut off.

    >>> wrap_caption("CMFD__00000__00009_Mask_Mouth_Chin\\ncovered 0.91", width=16)
    'CMFD__00000__000\\n09_Mask_Mouth_Ch\\nin\\ncovered 0.91'
    """
    return "\n".join(piece for line in caption.split("\n")
                     for piece in (textwrap.wrap(line, width, break_on_hyphens=False) or [""]))


def _draw(ax: Axes, panel: Panel, alpha: float) -> ScalarMappable:
    crop = np.asarray(panel.crop.convert("RGB"))
    height, width = panel.heatmap.shape
    if crop.shape[:2] != (height, width):
        crop = np.asarray(panel.crop.convert("RGB").resize((width, height), Image.BILINEAR))
    vmin, vmax = colour_limits(panel.heatmap, panel.symmetric)
    mappable = ScalarMappable(Normalize(vmin, vmax), colormaps["RdBu_r" if panel.symmetric else "jet"])
    heat = np.nan_to_num(np.asarray(panel.heatmap, np.float64))
    rgba = mappable.to_rgba(heat)
    if panel.symmetric:
        # Signed maps: opacity grows with |value|, so the face stays visible where the map is ~0.
        rgba[..., 3] = alpha * np.sqrt(np.clip(np.abs(heat) / vmax, 0, 1)) + 0.1
    else:
        # Unsigned maps (Grad-CAM): transparent where the map is 0, `alpha` at its top, so the face shows
        # through everywhere but the hottest part (a flat `alpha` of jet's dark blue hid the face).
        rgba[..., 3] = alpha * np.clip(heat / vmax, 0, 1)
    ax.imshow(crop, extent=(0, width, height, 0))
    ax.imshow(rgba, extent=(0, width, height, 0), interpolation="nearest")
    if panel.polygon is not None and len(panel.polygon) >= 3:
        closed = np.vstack([panel.polygon, panel.polygon[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="lime", linewidth=1.0, linestyle="--")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if panel.caption:
        ax.set_title(wrap_caption(panel.caption), fontsize=8)
    return mappable


def save_overlay(
    crop: Image.Image,
    heatmap: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    colour_label: str = "",
    symmetric: bool = True,
    alpha: float = 0.6,
    polygon: np.ndarray | None = None,
) -> None:
    """Write a PNG of the heat map blended over its crop, with a colour bar (`overlay_png`'s picture).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "o.png"
    >>> save_overlay(Image.new("RGB", (8, 8)), np.zeros((8, 8)), out)
    >>> Image.open(out).format
    'PNG'
    """
    atomic_write_bytes(path, overlay_png(crop, heatmap, title=title, colour_label=colour_label,
                                         symmetric=symmetric, alpha=alpha, polygon=polygon))


def overlay_png(
    crop: Image.Image,
    heatmap: np.ndarray,
    *,
    title: str = "",
    colour_label: str = "",
    symmetric: bool = True,
    alpha: float = 0.6,
    polygon: np.ndarray | None = None,
) -> bytes:
    """The PNG bytes of the heat map blended over its crop, with a colour bar.

    Args:
        crop: the face crop; resized to the map's grid if it differs.
        heatmap: H x W values.
        title: drawn above the image.
        colour_label: the colour bar's label (what the values mean).
        symmetric: signed values around a neutral 0 (occlusion) or 0..max (Grad-CAM).
        alpha: the map's opacity.
        polygon: optional (n, 2) x, y points outlined on top (e.g. the nose-and-mouth region).

    >>> overlay_png(Image.new("RGB", (8, 8)), np.zeros((8, 8)))[:4]
    b'\\x89PNG'
    """
    figure = Figure(figsize=(4.2, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    image = _draw(ax, Panel(crop, np.asarray(heatmap, np.float32), title, symmetric, polygon), alpha)
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if colour_label:
        bar.set_label(colour_label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figure.tight_layout()
    return _png(figure)


def save_contact_sheet(
    panels: Sequence[Panel], path: str | os.PathLike, *, columns: int = 6, alpha: float = 0.5
) -> None:
    """Write a grid of overlays (each with its own colour scale) to one PNG.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sheet.png"
    >>> save_contact_sheet([Panel(Image.new("RGB", (8, 8)), np.ones((8, 8)), "a")] * 3, out, columns=2)
    >>> Image.open(out).size[0] > 0
    True
    """
    if not panels:
        raise ValueError("a contact sheet needs at least one panel; got none")
    columns = max(1, min(columns, len(panels)))
    rows = (len(panels) + columns - 1) // columns
    # Room for the longest wrapped caption above each row, so no title line runs off the sheet.
    lines = max(wrap_caption(panel.caption).count("\n") + 1 for panel in panels)
    figure = Figure(figsize=(2.0 * columns, (2.0 + 0.16 * lines) * rows), dpi=90)
    FigureCanvasAgg(figure)
    for index, panel in enumerate(panels):
        _draw(figure.add_subplot(rows, columns, index + 1), panel, alpha)
    figure.tight_layout()
    atomic_write_bytes(path, _png(figure))


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.05)  # nothing cut at the edges
    return buffer.getvalue()
