"""The crop policy: the one function that turns a face box into the classifier's input.

Training crops (a VOC box, an aligned head shot) and inference crops (a detector box) both come
from `crop_face`, so the framing a model learns is the framing it is shown. The policy is stored in
every checkpoint, and inference reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

# Where the face sits in an FFHQ-aligned head shot (MaskedFace-Net and FFHQ), as fractions of the
# side, so that head shots are framed like photo boxes. Measured by bench/studies/measure_headshot_box.py:
# BlazeFace ("accurate", boxes reframed to hand-drawn VOC framing), median over the 640 images of
# maskedface-net-sample (a face found in all; interquartile spread about 0.05).
ALIGNED_HEADSHOT_BOX: Box = (0.226, 0.337, 0.770, 0.931)


@dataclass(frozen=True)
class CropPolicy:
    """A square crop centred on the face box.

    Attributes:
        scale: the square's side as a multiple of the box's longer side; >1 keeps some context
            (chin, forehead, the mask's straps) that the label depends on.
        fill: RGB colour for the part of the square that falls outside the photo.
    """

    scale: float = 1.3
    fill: tuple[int, int, int] = (124, 116, 104)  # the ImageNet mean: neutral to the network

    def __post_init__(self) -> None:
        if not 0.5 <= self.scale <= 4.0:
            raise ValueError(f"crop scale must be between 0.5 and 4.0, got {self.scale}")

    def to_dict(self) -> dict:
        return {"name": "square", "scale": self.scale, "fill": list(self.fill)}

    @classmethod
    def from_dict(cls, data: dict) -> CropPolicy:
        if data.get("name", "square") != "square":
            raise ValueError(f"unknown crop policy {data.get('name')!r}; known: 'square'")
        return cls(scale=float(data["scale"]), fill=tuple(int(v) for v in data["fill"]))


def square_box(box: Box, policy: CropPolicy) -> Box:
    """The square region `crop_face` cuts for a face box (may extend past the photo).

    >>> square_box((10, 20, 30, 60), CropPolicy(scale=1.0))
    (0.0, 20.0, 40.0, 60.0)
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box must have x1 > x0 and y1 > y0, got {box}")
    side = policy.scale * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def crop_face(
    image: Image.Image, box: Box, policy: CropPolicy | None = None, size: int | None = None
) -> Image.Image:
    """Cut the policy's square around a face box; parts outside the photo take the fill colour.

    Args:
        image: the whole RGB photo.
        box: the face box (x0, y0, x1, y1) in the photo's pixels.
        policy: the crop policy (default `CropPolicy()`).
        size: if given, resize the square to size x size.

    Returns:
        The crop as an RGB image.

    >>> crop = crop_face(Image.new("RGB", (100, 80)), (40, 30, 60, 50), size=32)
    >>> crop.size
    (32, 32)
    """
    policy = policy or CropPolicy()
    sx0, sy0, sx1, _ = (round(v) for v in square_box(box, policy))
    side = max(1, sx1 - sx0)
    sx1, sy1 = sx0 + side, sy0 + side
    if sx0 >= 0 and sy0 >= 0 and sx1 <= image.width and sy1 <= image.height:
        crop = image.crop((sx0, sy0, sx1, sy1))
    else:
        # Image.crop would pad with black: paste the part inside the photo onto the fill colour instead.
        crop = Image.new("RGB", (side, side), policy.fill)
        ix0, iy0, ix1, iy1 = max(0, sx0), max(0, sy0), min(image.width, sx1), min(image.height, sy1)
        if ix1 > ix0 and iy1 > iy0:
            crop.paste(image.crop((ix0, iy0, ix1, iy1)).convert("RGB"), (ix0 - sx0, iy0 - sy0))
    if size is not None:
        crop = crop.resize((size, size), Image.BILINEAR)
    return crop


def aligned_headshot_box(width: int, height: int) -> Box:
    """The face box of an FFHQ-aligned head shot of this size.

    >>> aligned_headshot_box(1000, 1000)
    (226.0, 337.0, 770.0, 931.0)
    """
    fx0, fy0, fx1, fy1 = ALIGNED_HEADSHOT_BOX
    # A hundredth of a pixel is plenty, and it keeps manifests (written to 2 decimals) exact.
    return (round(fx0 * width, 2), round(fy0 * height, 2), round(fx1 * width, 2), round(fy1 * height, 2))


def crop_headshot(image: Image.Image, policy: CropPolicy | None = None) -> Image.Image:
    """`crop_face` of a whole FFHQ-aligned head shot, at the face box `aligned_headshot_box` gives.

    >>> crop_headshot(Image.new("RGB", (100, 100))).size
    (77, 77)
    """
    return crop_face(image, aligned_headshot_box(image.width, image.height), policy)
