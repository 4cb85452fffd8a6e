"""The classifier's input transform, described by plain data that every checkpoint carries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskdetect.faces.crop import Box, CropPolicy, crop_face
from maskdetect.labels import CLASSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Sane bounds for what a checkpoint (or an ONNX export's metadata) may claim: a file from elsewhere is
# checked before anything is sized by it (an input_size of 100000 would allocate 240 GB). The top input
# size bounds what a legal checkpoint costs on its first `detect`: the ONNX export and the int8 twin's
# calibration grow with its square (bench/bench_model_memory.py, peak RSS: mobilenet_v2 2.7 GB at 224,
# 3.3 GB at 256, 4.7 GB at 320; resnet50 4.9 GB at 224, 6.1 GB at 256; 1024 went past 5 GB). 224 is the
# largest any use needs: the bundled model's size; every recipe is 224 or less.
INPUT_SIZE_RANGE = (8, 224)
MEAN_RANGE = (0.0, 1.0)
STD_RANGE = (0.001, 1.0)
CLASS_COUNT_RANGE = (2, 1000)
CLASS_NAME_MAX = 100


@dataclass(frozen=True)
class Preprocessing:
    """What turns a face in a photo into the tensor a model was trained on.

    >>> p = Preprocessing(input_size=64)
    >>> p.to_tensor(Image.new("RGB", (10, 10))).shape
    torch.Size([3, 64, 64])
    """

    input_size: int = 160
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_policy: CropPolicy = field(default_factory=CropPolicy)
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self) -> None:
        _check_int("input_size", self.input_size, INPUT_SIZE_RANGE)
        for name in ("mean", "std"):
            values, bounds = getattr(self, name), MEAN_RANGE if name == "mean" else STD_RANGE
            if not isinstance(values, tuple | list) or len(values) != 3:
                raise ValueError(f"preprocessing {name} = {short_repr(values)} must be 3 numbers (R, G, B)")
            for value in values:
                _check_float(name, value, bounds)
        count = len(self.classes) if isinstance(self.classes, tuple | list) else -1
        if not CLASS_COUNT_RANGE[0] <= count <= CLASS_COUNT_RANGE[1]:
            raise ValueError(f"preprocessing class_names = {short_repr(self.classes)} must be a list of "
                             f"{CLASS_COUNT_RANGE[0]} to {CLASS_COUNT_RANGE[1]} names")
        for name in self.classes:
            if not isinstance(name, str) or not 0 < len(name) <= CLASS_NAME_MAX:
                raise ValueError(f"preprocessing class name {short_repr(name)} must be a string of 1 to "
                                 f"{CLASS_NAME_MAX} characters")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"preprocessing class_names = {short_repr(self.classes)} repeat a name")

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_policy": self.crop_policy.to_dict(),
            "class_names": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """Read `to_dict`'s output back, checking every field against its bounds.

        Raises:
            ValueError: a missing field, or one of the wrong type or out of range (named, with the
                value and the allowed range).

        >>> Preprocessing.from_dict({**Preprocessing(input_size=32).to_dict(), "input_size": 100000})
        Traceback (most recent call last):
        ...
        ValueError: preprocessing input_size = 100000 is out of range; allowed: an integer from 8 to 224
        """
        if not isinstance(data, dict):
            raise ValueError(f"preprocessing must be a dict, got {type(data).__name__}")
        missing = [k for k in ("input_size", "mean", "std", "crop_policy", "class_names") if k not in data]
        if missing:
            raise ValueError(f"preprocessing is missing {', '.join(missing)}")
        for key in ("mean", "std", "class_names"):
            if not isinstance(data[key], list | tuple):
                raise ValueError(f"preprocessing {key} = {short_repr(data[key])} must be a list")
        return cls(
            input_size=data["input_size"],
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            crop_policy=_crop_policy(data["crop_policy"]),
            classes=tuple(data["class_names"]),
        )

    def to_array(self, face: Image.Image) -> np.ndarray:
        """A face crop (any size) to a normalised float32 CHW array."""
        if face.size != (self.input_size, self.input_size):
            face = face.resize((self.input_size, self.input_size), Image.BILINEAR)
        # (pixel / 255 - mean) / std as one multiply-add into a CHW array: a fifth of the time of
        # the three whole-array steps, equal to them within float32 rounding (5e-7).
        pixels = np.asarray(face if face.mode == "RGB" else face.convert("RGB")).transpose(2, 0, 1)
        std = np.asarray(self.std, np.float32)
        array = np.empty(pixels.shape, np.float32)
        np.multiply(pixels, (1.0 / (255.0 * std))[:, None, None], out=array)
        array += (-np.asarray(self.mean, np.float32) / std)[:, None, None]
        return array

    def to_tensor(self, face: Image.Image) -> torch.Tensor:
        """A face crop (any size) to a normalised CHW tensor."""
        return torch.from_numpy(self.to_array(face))

    def face_array(self, image: Image.Image, box: Box) -> np.ndarray:
        """Crop a face from a photo by the policy and return the model input array."""
        return self.to_array(crop_face(image, box, self.crop_policy, size=self.input_size))


def _crop_policy(data: Any) -> CropPolicy:
    # The policy checks its scale; its name, the fill colour and the types are checked here.
    if not isinstance(data, dict) or not {"scale", "fill"} <= set(data):
        raise ValueError(f"preprocessing crop_policy = {short_repr(data)} must be a dict with scale and fill")
    _check_float("crop_policy scale", data["scale"], (0.5, 4.0))
    fill = data["fill"]
    if not isinstance(fill, list | tuple) or len(fill) != 3:
        raise ValueError(f"preprocessing crop_policy fill = {short_repr(fill)} must be 3 integers (R, G, B)")
    for value in fill:
        _check_int("crop_policy fill", value, (0, 255))
    return CropPolicy.from_dict(data)


def _check_int(name: str, value: Any, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"preprocessing {name} = {short_repr(value)} is out of range; "
                         f"allowed: an integer from {low} to {high}")


def _check_float(name: str, value: Any, bounds: tuple[float, float]) -> None:
    low, high = bounds
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"preprocessing {name} = {short_repr(value)} is out of range; "
                         f"allowed: a number from {low} to {high}")


def short_repr(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters (a hostile file's can be huge).

    >>> short_repr("x" * 100)[-5:]
    'xx...'
    """
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
