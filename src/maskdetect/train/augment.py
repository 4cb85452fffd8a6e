"""Input transforms: augmentation that suits face crops for training, the checkpoint's own for evaluation.

Both end in `Preprocessing.to_tensor`, the very function inference uses, so the resize and the
normalisation a model is trained with are the ones it is served with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

from maskdetect.faces.crop import crop_headshot
from maskdetect.preprocess import Preprocessing


def train_transform(
    preprocessing: Preprocessing, *, grayscale: float = 0.05
) -> Callable[[Image.Image], torch.Tensor]:
    """Random augmentation of a face crop, then the model's normalisation.

    The crop keeps at least 70% of the face's area so the mask and the nose stay in view (the label
    depends on them); colour jitter works on the image before normalisation; rotation is small,
    as faces in photos are mostly upright; a share `grayscale` of the crops loses its colour.

    >>> tensor = train_transform(Preprocessing(input_size=32))(Image.new("RGB", (64, 64)))
    >>> tuple(tensor.shape)
    (3, 32, 32)
    """
    size = preprocessing.input_size
    augment = T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.RandomRotation(10, fill=preprocessing.crop_policy.fill)], p=0.5),
            T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
            T.RandomGrayscale(p=grayscale),
            T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 1.5))], p=0.2),
        ]
    )
    return _Then(augment, preprocessing)


def eval_transform(
    preprocessing: Preprocessing, *, headshot: bool = False
) -> Callable[[Image.Image], torch.Tensor]:
    """The deterministic transform of evaluation and inference.

    Args:
        preprocessing: the checkpoint's preprocessing.
        headshot: the images are whole FFHQ-aligned head shots (MaskedFace-Net) rather than face
            crops: cut the face by the checkpoint's crop policy first.

    >>> tuple(eval_transform(Preprocessing(input_size=24))(Image.new("RGB", (50, 40))).shape)
    (3, 24, 24)
    """
    return _Then(_HeadshotCrop(preprocessing) if headshot else None, preprocessing)


class _HeadshotCrop:
    def __init__(self, preprocessing: Preprocessing):
        self.policy = preprocessing.crop_policy

    def __call__(self, image: Image.Image) -> Image.Image:
        return crop_headshot(image, self.policy)


class _Then:
    # A picklable "augment, then to_tensor" (DataLoader workers may be spawned, not forked).
    def __init__(self, first: Callable[[Image.Image], Image.Image] | None, preprocessing: Preprocessing):
        self.first = first
        self.preprocessing = preprocessing

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.preprocessing.to_tensor(self.first(image) if self.first else image)
