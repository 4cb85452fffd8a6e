"""A model whose answer depends on one known rectangle of the input: where an explanation must light up."""

from __future__ import annotations

import torch
from torch import nn


class RectangleModel(nn.Module):
    """Class 0's logit is 10x the mean of a fixed rectangle of the input; the others are 0."""

    def __init__(self, rows: slice, cols: slice) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 10 * x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3))
        zeros = torch.zeros_like(score)
        return torch.stack([score, zeros, zeros], dim=1)
