"""The networks: an image branch and a number branch, fused, with a digit and a sum head.

The sum is a learned output of the network, never computed as argmax(digit) + number.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import NUM_DIGITS, NUM_NUMBERS, NUM_SUMS, ModelConfig


class Logits(NamedTuple):
    """What a network returns for a batch: its logits, by name (torch tensors, or numpy arrays from a backend)."""

    digit: torch.Tensor  # (B, 10)
    sum: torch.Tensor  # (B, 19)
    verdict: torch.Tensor | None = None  # (B,) "this is a digit"; None for a network without a verdict head


class DigitSumNet(nn.Module):
    """Two inputs (image, number), two outputs (digit logits, sum logits), and optionally a verdict.

    ``features`` runs the image branch; ``heads`` turns image features and numbers into
    both outputs, so one image can be paired with many numbers at the cost of one image
    pass (see ``evaluate.all_pairs_sums``). A network with a ``verdict_head`` also says, from
    the image features alone, whether the image is a digit at all (a logit: high for digits).
    """

    def __init__(self, image_branch: nn.Module, number_branch: nn.Module, fusion: nn.Module, width: int,
                 feature_dim: int, verdict: bool = False):
        super().__init__()
        self.image_branch = image_branch  # (B, 1, 28, 28) -> (B, F)
        self.number_branch = number_branch  # (B,) -> (B, E)
        self.fusion = fusion  # (B, F [+ E] [+ 10]) -> (B, width)
        self.sum_head = nn.Linear(width, NUM_SUMS)
        self.verdict_head = nn.Linear(feature_dim, 1) if verdict else None  # (B, F) -> (B, 1)

    @property
    def has_verdict(self) -> bool:
        return self.verdict_head is not None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) normalised images -> (B, F) image features."""
        return self.image_branch(images)

    def heads(self, features: torch.Tensor, numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) features and (B,) numbers -> (B, 10) digit logits, (B, 19) sum logits."""
        raise NotImplementedError

    def verdict(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> (B,) logits of "this is a digit" (only for a network with a verdict head)."""
        return self.verdict_head(features).squeeze(1)

    def forward(self, images: torch.Tensor, numbers: torch.Tensor) -> Logits:
        """(B, 1, 28, 28) images and (B,) numbers -> Logits: digit (B, 10), sum (B, 19), verdict (B,) or None."""
        return self.read(images, numbers)[0]

    def read(self, images: torch.Tensor, numbers: torch.Tensor) -> tuple[Logits, torch.Tensor]:
        """``forward``'s Logits, and the image features (B, F) they were read from: other numbers' heads can
        reuse them (``evaluate.all_pairs``)."""
        features = self.features(images)
        digit_logits, sum_logits = self.heads(features, numbers)
        return Logits(digit_logits, sum_logits, self.verdict(features) if self.has_verdict else None), features


class FusedNet(DigitSumNet):
    """digitsum's head layout: the digit is read from the image alone (it cannot depend on
    the number); the sum from the image features, the digit logits and the number, fused by
    a hidden layer of ``width`` units. The sum is still learned, not computed.

    ``product`` fusion multiplies: ``ReLU((W [features, digit logits] + b) * E[number])``,
    the number's embedding ``E[number]`` (``width`` values) scaling each fused unit. Sums
    depend on digit and number jointly, and a product expresses that from the first steps;
    ``concat`` fusion, ``ReLU(W [features, E[number], digit logits] + b)``, has to learn the
    interaction through the ReLU, and its sum head lags the digit head for much of the
    first epoch (benchmarks/RESULTS.md, "The default's choices").
    """

    def __init__(self, image_branch: nn.Module, number_branch: nn.Embedding, fusion: nn.Linear, hidden: int,
                 product: bool, verdict: bool):
        super().__init__(image_branch, number_branch, fusion, hidden, hidden, verdict)  # features and fused: hidden
        feature_dim = hidden
        self.digit_head = nn.Linear(feature_dim, NUM_DIGITS)
        self.product = product

    def heads(self, features, numbers):
        digit_logits = self.digit_head(features)  # (B, 10)
        number = self.number_branch(numbers)  # (B, width) for product, (B, E) for concat
        if self.product:
            fused = self.fusion(torch.cat([features, digit_logits], dim=1)) * number
        else:
            fused = self.fusion(torch.cat([features, number, digit_logits], dim=1))
        return digit_logits, self.sum_head(torch.relu(fused))  # (B, 10), (B, 19)


class ShiftNet(FusedNet):
    """``shift`` fusion, a sum head that has to add: the number is a learned kernel over offsets
    ``s - d`` (-9 to 18), the same for every digit, applied to the digit head's distribution
    ``p``: ``sum logit[s] = sum_d p[d] K[number][s - d]``, a convolution. The 19-way output is
    learned (the kernels start at zero), never argmax(digit) + number; a combination never trained
    on uses the kernel its number learned with the other digits (benchmarks/compositional.py)."""

    def __init__(self, image_branch: nn.Module, feature_dim: int, verdict: bool):
        kernels = nn.Embedding(NUM_NUMBERS, NUM_DIGITS + NUM_SUMS - 1)  # (10, 28): one kernel per number
        DigitSumNet.__init__(self, image_branch, kernels, nn.Identity(), NUM_DIGITS, feature_dim, verdict)
        self.digit_head, self.product = nn.Linear(feature_dim, NUM_DIGITS), False
        del self.sum_head  # the kernels are the sum head
        nn.init.zeros_(self.number_branch.weight)  # every sum equally likely at first: the first steps set the peaks
        offsets = torch.arange(NUM_SUMS)[None, :] - torch.arange(NUM_DIGITS)[:, None] + NUM_DIGITS - 1  # (10, 19)
        self.register_buffer("offsets", offsets, persistent=False)  # which kernel tap joins digit d to sum s

    def heads(self, features, numbers):
        digit_logits = self.digit_head(features)  # (B, 10)
        kernels = self.number_branch(numbers)[:, self.offsets]  # (B, 10, 19)
        return digit_logits, torch.einsum("bd,bds->bs", digit_logits.softmax(1), kernels)  # (B, 10), (B, 19)


class ConcatNet(DigitSumNet):
    """The notebook's head layout: image features and number embedding concatenated, both
    heads reading the fused layer."""

    def __init__(self, image_branch: nn.Module, number_branch: nn.Module, fusion: nn.Module, width: int):
        super().__init__(image_branch, number_branch, fusion, width, width)
        self.digit_head = nn.Linear(width, NUM_DIGITS)

    def heads(self, features, numbers):
        fused = self.fusion(torch.cat([features, self.number_branch(numbers)], dim=1))  # (B, width)
        return self.digit_head(fused), self.sum_head(fused)  # (B, 10), (B, 19)


def conv_block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """'Same' convolution, 2x2 max-pool, batch norm, ReLU: halves the resolution (rounding down).

    Pooling before batch norm and ReLU does their element-wise work on a quarter of the
    pixels: the cheapest order on a CPU, where that work is a large share of a step.
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def build_default(cfg: ModelConfig) -> DigitSumNet:
    """digitsum's network: three conv blocks, a number embedding, the sum fused from both.

    The second convolution is 3x3: at 14x14 it is the network's largest, and a 5x5 one has
    2.8 times the multiply-adds and makes a training step 1.2-1.3x slower (benchmarks/RESULTS.md,
    "The default's choices").
    """
    image_branch = nn.Sequential(
        conv_block(1, cfg.conv1, 5),  # (B, C1, 14, 14)
        conv_block(cfg.conv1, cfg.conv2, 3),  # (B, C2, 7, 7)
        conv_block(cfg.conv2, cfg.conv3, 3),  # (B, C3, 3, 3)
        nn.Flatten(),
        nn.Linear(cfg.conv3 * 3 * 3, cfg.hidden),
        nn.ReLU(inplace=True),
    )
    if cfg.fusion == "shift":
        return ShiftNet(image_branch, cfg.hidden, cfg.verdict)
    product = cfg.fusion == "product"
    embedding = cfg.hidden if product else cfg.embedding  # a product scales each fused unit
    fusion = nn.Linear(cfg.hidden + NUM_DIGITS + (0 if product else embedding), cfg.hidden)
    return FusedNet(image_branch, nn.Embedding(NUM_NUMBERS, embedding), fusion, cfg.hidden, product, cfg.verdict)


def build_seed() -> DigitSumNet:
    """The notebook's network: conv 6@5x5, pool, conv 12@5x5, pool, fc 120; +embedding, fc 60."""
    image_branch = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 6, 12, 12)
        nn.Conv2d(6, 12, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 12, 4, 4)
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 120), nn.ReLU(),
    )
    fusion = nn.Sequential(nn.Linear(120 + 10, 60), nn.ReLU())  # features + the number's embedding of 10
    return ConcatNet(image_branch, nn.Embedding(NUM_NUMBERS, 10), fusion, 60)


def build_model(cfg: ModelConfig) -> DigitSumNet:
    """The network ``cfg`` describes, freshly initialised (seed torch first for repeatability)."""
    return build_seed() if cfg.arch == "seed" else build_default(cfg)
