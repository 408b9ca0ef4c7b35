"""The networks: an image branch and a number branch, fused, with a digit and a sum head.

The sum is a learned output of the network, never computed as argmax(digit) + number.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .mixture import NUM_DIGITS, NUM_SUMS


class DigitSumNet(nn.Module):
    """Two inputs (image, number), two outputs (digit logits, sum logits)."""

    def __init__(self, image_branch: nn.Module, number_branch: nn.Module, fusion: nn.Module, width: int):
        super().__init__()
        self.image_branch = image_branch  # (B, 1, 28, 28) -> (B, F)
        self.number_branch = number_branch  # (B,) -> (B, E)
        self.fusion = fusion  # (B, F + E) -> (B, width)
        self.digit_head = nn.Linear(width, NUM_DIGITS)
        self.sum_head = nn.Linear(width, NUM_SUMS)

    def forward(self, images: torch.Tensor, numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([self.image_branch(images), self.number_branch(numbers)], dim=1)
        fused = self.fusion(features)  # (B, width)
        return self.digit_head(fused), self.sum_head(fused)  # (B, 10), (B, 19)


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """5x5 'same' convolution, batch norm, ReLU, 2x2 max-pool: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 5, padding=2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def build_default(cfg: ModelConfig) -> DigitSumNet:
    """digitsum's network: two conv blocks with batch norm, a learned number embedding."""
    image_branch = nn.Sequential(
        conv_block(1, cfg.conv1),  # (B, C1, 14, 14)
        conv_block(cfg.conv1, cfg.conv2),  # (B, C2, 7, 7)
        nn.Flatten(),
        nn.Linear(cfg.conv2 * 7 * 7, cfg.hidden),
        nn.ReLU(inplace=True),
    )
    fusion = nn.Sequential(nn.Linear(cfg.hidden + cfg.embedding, cfg.hidden), nn.ReLU(inplace=True))
    return DigitSumNet(image_branch, nn.Embedding(10, cfg.embedding), fusion, cfg.hidden)


def build_seed() -> DigitSumNet:
    """The notebook's network: conv 6@5x5, pool, conv 12@5x5, pool, fc 120; +embedding, fc 60."""
    image_branch = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 6, 12, 12)
        nn.Conv2d(6, 12, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 12, 4, 4)
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 120), nn.ReLU(),
    )
    fusion = nn.Sequential(nn.Linear(120 + 10, 60), nn.ReLU())
    return DigitSumNet(image_branch, nn.Embedding(10, 10), fusion, 60)


def build_model(cfg: ModelConfig) -> DigitSumNet:
    """The network ``cfg`` describes, freshly initialised (seed torch first for repeatability)."""
    return build_seed() if cfg.arch == "seed" else build_default(cfg)
