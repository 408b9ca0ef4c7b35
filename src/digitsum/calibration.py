"""Probabilities that mean what they say, and the rule that says "that is not a digit".

Trained with label smoothing, the network's probabilities are capped: it says 91% where it is
right 99.6% of the time. After training, on the validation split (MNIST training images held
out from training; never the test set), digitsum fits:

* one temperature per head: the T that minimises the negative log-likelihood of softmax(logits / T)
  (temperature scaling; it never changes which class is the most probable);
* the verdict: an image is read as a digit when the verdict head's probability ("is_digit_score")
  is at least a threshold, set so that ``KEEP`` of the validation digits pass.

The result is ``calibration.json`` beside the weights. A checkpoint without one (trained before
calibration existed) predicts with temperature 1 and reads every image as a digit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from .model import Logits

KEEP = 0.998  # share of validation digits the verdict's threshold keeps
BINS = 15  # bins of the expected calibration error


@dataclass(frozen=True)
class Calibrated:
    """Calibrated predictions for a batch: what ``Calibration.apply`` makes of a network's logits."""

    digit_probs: torch.Tensor  # (N, 10)
    sum_probs: torch.Tensor  # (N, 19)
    is_digit_scores: torch.Tensor | None  # (N,) the verdict head's probability of a digit; None: no verdict head
    is_digit: torch.Tensor  # (N,) bool: read as a digit (every image, without a verdict head or a threshold)


@dataclass(frozen=True)
class Calibration:
    """Temperatures for both heads and the verdict's threshold."""

    digit_temperature: float = 1.0
    sum_temperature: float = 1.0
    is_digit_threshold: float | None = None  # None: no verdict (every image is read as a digit)
    fitted_on: str = ""

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, logits: Logits, dtype: torch.dtype = torch.float32) -> Calibrated:
        """The one calibrated-prediction rule: softmax(logits / T) per head, the verdict's sigmoid, and
        "a digit" where that probability reaches the threshold. Logits are divided in their own dtype,
        then computed in ``dtype``."""
        digit_probs = (logits.digit / self.digit_temperature).to(dtype).softmax(1)  # (N, 10)
        sum_probs = (logits.sum / self.sum_temperature).to(dtype).softmax(1)  # (N, 19)
        scores = None if logits.verdict is None else torch.sigmoid(logits.verdict.to(dtype))  # (N,)
        if scores is None or self.is_digit_threshold is None:
            return Calibrated(digit_probs, sum_probs, scores, torch.ones(len(digit_probs), dtype=torch.bool))
        return Calibrated(digit_probs, sum_probs, scores, scores >= self.is_digit_threshold)


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` (N,) under softmax(logits (N, K) / temperature)."""
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (N,) under ``logits`` (N, K)."""
    return fit_shared_temperature([(logits, labels)])


def fit_shared_temperature(heads: list[tuple[torch.Tensor, torch.Tensor]], low: float = 0.05,
                           high: float = 20.0) -> float:
    """The one temperature in [low, high] that minimises the summed negative log-likelihood of several heads'
    (logits, labels): a golden-section search on log T (the likelihood has one minimum along it)."""

    def loss(log_t: float) -> float:
        return sum(nll(logits, labels, math.exp(log_t)) for logits, labels in heads)

    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of each non-empty confidence bin: a reliability diagram's points.
    A prediction's confidence is its largest probability; bin i holds confidences in (i/bins, (i+1)/bins]."""
    confidence, predicted = probs.max(1)
    right = (predicted == labels).double()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    return [(confidence[which == b].double().mean().item(), right[which == b].mean().item(), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """ECE of probabilities (N, K) for true classes (N,): over ``bins`` equal-width bins of confidence, how
    far each bin's mean confidence is from its accuracy, weighted by how many predictions fall in it."""
    points = reliability(probs, labels, bins)
    return sum(count * abs(confidence - accuracy) for confidence, accuracy, count in points) / len(labels)


def fit(digit: tuple[torch.Tensor, torch.Tensor], total: tuple[torch.Tensor, torch.Tensor],
        is_digit_scores: torch.Tensor | None, fitted_on: str, keep: float = KEEP) -> Calibration:
    """A Calibration from validation outputs: (logits (N, 10), true digits (N,)), (logits (N, 19), true sums
    (N,)), and the verdict's probabilities (N,) for these digits (None for a network without a verdict head)."""
    threshold = None
    if is_digit_scores is not None:
        threshold = float(torch.quantile(is_digit_scores.double(), 1 - keep))
    return Calibration(fit_temperature(*digit), fit_temperature(*total), threshold, fitted_on)
