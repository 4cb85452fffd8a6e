"""The classifier's input transform, described by plain data that every checkpoint carries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from maskdetect.faces.crop import Box, CropPolicy, crop_face
from maskdetect.labels import CLASSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        missing = [k for k in ("input_size", "mean", "std", "crop_policy", "class_names") if k not in data]
        if missing:
            raise ValueError(f"preprocessing is missing {', '.join(missing)}")
        return cls(
            input_size=int(data["input_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            crop_policy=CropPolicy.from_dict(data["crop_policy"]),
            classes=tuple(data["class_names"]),
        )

    def to_array(self, face: Image.Image) -> np.ndarray:
        """A face crop (any size) to a normalised float32 CHW array."""
        if face.size != (self.input_size, self.input_size):
            face = face.resize((self.input_size, self.input_size), Image.BILINEAR)
        array = np.asarray(face.convert("RGB"), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def to_tensor(self, face: Image.Image) -> torch.Tensor:
        """A face crop (any size) to a normalised CHW tensor."""
        return torch.from_numpy(self.to_array(face))

    def face_array(self, image: Image.Image, box: Box) -> np.ndarray:
        """Crop a face from a photo by the policy and return the model input array."""
        return self.to_array(crop_face(image, box, self.crop_policy, size=self.input_size))
