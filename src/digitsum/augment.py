"""What training does to its images, a whole batch at a time: random shifts, and stretching digits
toward filling their box.

Many digit scans other than MNIST stretch every digit to fill its box, so a thin "1" becomes
wide; MNIST keeps each digit's proportions. Stretching a share of MNIST's training digits toward
their box teaches the network those shapes too (benchmarks/RESULTS.md, "The default's accuracy
choices", measures the choice on handwriting that is never trained on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import BOX, CENTRE, SIDE


def draw_shifts(n: int, max_shift: int, generator: torch.Generator) -> torch.Tensor | None:
    """(n, 2) offsets 0..2*max_shift (row, column) for ``shift``; None when shifting is off."""
    if max_shift <= 0:
        return None
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([dy, dx], 1)


def shift(images: torch.Tensor, offsets: torch.Tensor | None, max_shift: int) -> torch.Tensor:
    """Translate each uint8 image (B, 28, 28) by its offset (B, 2) minus ``max_shift`` pixels, zero-filled."""
    if offsets is None:
        return images
    b, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, H+2s, W+2s)
    rows = (offsets[:, 0, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (offsets[:, 1, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], rows, cols]


def draw_stretches(n: int, share: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(which of n digits to stretch (n,) bool, how far (n,) 0-1); None when stretching is off."""
    if share <= 0:
        return None
    chosen = torch.rand(n, generator=generator) < share
    return chosen, torch.rand(n, generator=generator)


def stretch(images: torch.Tensor, how_far: torch.Tensor) -> torch.Tensor:
    """Stretch each uint8 digit (B, 28, 28) toward filling the 20x20 box: its ink's height and width
    grow by ``how_far`` (B,) 0-1 of the way to 20 pixels, and its centre of mass stays at (14, 14)."""
    b = len(images)
    x = images.to(torch.float32)
    idx = torch.arange(SIDE, dtype=torch.float32)
    rows, cols = x.amax(2) > 0, x.amax(1) > 0  # (B, 28) each

    def extent(present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.where(present, idx, torch.full_like(idx, SIDE)).amin(1)
        last = torch.where(present, idx, torch.full_like(idx, -1)).amax(1)
        return first, (last - first + 1).clamp(min=1)

    top, height = extent(rows)
    left, width = extent(cols)
    sy = torch.maximum(height + how_far * (BOX - height), height) / height  # (B,) >= 1
    sx = torch.maximum(width + how_far * (BOX - width), width) / width
    mass = x.sum((1, 2)).clamp(min=1e-6)
    my, mx = (x.sum(2) * idx).sum(1) / mass, (x.sum(1) * idx).sum(1) / mass  # centre of mass
    # an output pixel i reads the input at my + (i - CENTRE) / s: the centre of mass lands on CENTRE
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / sx, 1 / sy
    theta[:, 0, 2] = (2 * (mx - CENTRE / sx + (SIDE - 1) / 2 / sx) + 1) / SIDE - 1
    theta[:, 1, 2] = (2 * (my - CENTRE / sy + (SIDE - 1) / 2 / sy) + 1) / SIDE - 1
    grid = F.affine_grid(theta, (b, 1, SIDE, SIDE), align_corners=False)
    out = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].round_().clamp_(0, 255).to(torch.uint8)
