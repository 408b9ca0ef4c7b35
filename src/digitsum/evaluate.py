"""Inference over a mixture, and the metrics digitsum reports."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import Split
from .mixture import TEST_NUMBER_SEED, NumberMixture, normalize
from .model import DigitSumNet


@dataclass
class Outputs:
    """A model's probabilities over a mixture, in its order."""

    digit_probs: torch.Tensor  # (N, 10)
    sum_probs: torch.Tensor  # (N, 19)

    @property
    def digits(self) -> torch.Tensor:
        return self.digit_probs.argmax(1)

    @property
    def sums(self) -> torch.Tensor:
        return self.sum_probs.argmax(1)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def infer(model: DigitSumNet, mixture: NumberMixture, batch_size: int = 2000,
          start: int = 0, stop: int | None = None) -> Outputs:
    """Probabilities for items ``start:stop`` of an evaluation mixture (model in eval mode)."""
    model.eval()
    device = model_device(model)
    digit, total = [], []
    for batch in mixture.batches(batch_size, start, stop):
        d, s = model(batch.images.to(device), batch.numbers.to(device))
        digit.append(d.softmax(1).float().cpu())
        total.append(s.softmax(1).float().cpu())
    return Outputs(torch.cat(digit), torch.cat(total))


@torch.inference_mode()
def all_pairs_sums(model: DigitSumNet, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Predicted sum for every image (N, 28, 28 uint8) with every number 0-9 -> (N, 10).

    The image branch runs once per image; only the heads run for each of the ten numbers.
    """
    model.eval()
    device = model_device(model)
    out = []
    for i in range(0, len(images), batch_size):
        feats = model.features(normalize(images[i : i + batch_size]).to(device))  # (B, F)
        b = len(feats)
        numbers = torch.arange(10, device=device).repeat(b)  # (B*10,)
        _, sums = model.heads(feats.repeat_interleave(10, 0), numbers)  # (B*10, 19)
        out.append(sums.argmax(1).view(b, 10).cpu())
    return torch.cat(out)


def accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return int((predicted == truth).sum()) / truth.numel()


def fixed_test_mixture(test: Split) -> NumberMixture:
    """The MNIST test set with its fixed numbers: the same pairs for every model."""
    return NumberMixture.fixed(test.images, test.labels, TEST_NUMBER_SEED)


def evaluate(model: DigitSumNet, test: Split) -> dict:
    """digitsum's report card on the test set (numbers fixed by TEST_NUMBER_SEED)."""
    mixture = fixed_test_mixture(test)
    out = infer(model, mixture)
    digits, numbers = mixture.labels, mixture.numbers
    pairs = all_pairs_sums(model, mixture.images)  # (N, 10)
    pair_truth = digits[:, None] + torch.arange(10)[None, :]
    per_digit = {str(d): accuracy(out.digits[digits == d], digits[digits == d]) for d in range(10)}
    return {
        "n": len(mixture),
        "digit_accuracy": accuracy(out.digits, digits),
        "sum_accuracy": accuracy(out.sums, digits + numbers),
        "consistency": accuracy(out.sums, out.digits + numbers),
        "all_pairs_sum_accuracy": accuracy(pairs, pair_truth),
        "all_pairs_n": pairs.numel(),
        "per_digit_accuracy": per_digit,
    }
