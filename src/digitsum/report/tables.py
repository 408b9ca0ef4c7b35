"""What a model does on the MNIST test set, as tables ready to draw: confusion matrices, all-pairs
accuracy per (digit, number), samples and the most confident mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..calibration import Calibration, expected_calibration_error, reliability
from ..config import NUM_DIGITS, NUM_NUMBERS, NUM_SUMS
from ..embedding import components, describe, number_embeddings
from ..evaluate import Outputs, all_pairs_sums, fixed_test_mixture, infer
from ..mixture import NumberMixture
from ..model import DigitSumNet
from ..pairs import Pair, pair_mask


@dataclass
class Sample:
    """One test item with the model's probabilities."""

    image: torch.Tensor  # (28, 28) uint8
    number: int
    digit: int
    digit_probs: torch.Tensor  # (10,)
    sum_probs: torch.Tensor  # (19,)

    @property
    def predicted_digit(self) -> int:
        return int(self.digit_probs.argmax())

    @property
    def predicted_sum(self) -> int:
        return int(self.sum_probs.argmax())

    @property
    def correct(self) -> bool:
        return self.predicted_digit == self.digit and self.predicted_sum == self.digit + self.number


@dataclass
class ModelTables:
    """What a model does on the test set, ready to draw."""

    digit_confusion: torch.Tensor  # (10, 10) counts: rows true digit, columns predicted
    sum_confusion: torch.Tensor  # (19, 19) counts: rows true sum, columns predicted
    pair_accuracy: torch.Tensor  # (10, 10) all-pairs sum accuracy: rows digit, columns number
    samples: list[Sample]
    mistakes: list[Sample]  # most confident first
    reliability: dict | None = None  # head -> {"raw"|"calibrated": [(confidence, accuracy, count)], "ece": {...}}
    held_out: np.ndarray | None = None  # (10, 10) bool: combinations held out of training (pairs.py), or None
    embedding: np.ndarray | None = None  # (10, 2) the number embeddings' principal components (embedding.py)
    readout: dict | None = None  # embedding.describe: the linear read-out of the number from its embedding

    def summary(self) -> dict:
        """Headline test figures, read off the tables."""
        per_digit = self.digit_confusion.sum(1)  # (10,) test images of each digit
        n = int(per_digit.sum())
        return {"n": n,
                "digit_accuracy": float(self.digit_confusion.diag().sum()) / n,
                "sum_accuracy": float(self.sum_confusion.diag().sum()) / n,
                "all_pairs_sum_accuracy": float((self.pair_accuracy * per_digit[:, None]).sum()) / (10 * n)}


def confusion(truth: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts of each (truth, prediction) pair; both inputs (N,) int64."""
    return torch.bincount(truth * classes + predicted, minlength=classes * classes).view(classes, classes)


def pair_accuracy(model: DigitSumNet, test) -> torch.Tensor:
    """Sum accuracy of every test image with every number, by (true digit, number) -> (10, 10)."""
    sums = all_pairs_sums(model, test.images)  # (N, 10)
    correct = (sums == test.labels[:, None] + torch.arange(NUM_NUMBERS)[None, :]).float()  # (N, 10)
    per_digit = torch.zeros(NUM_DIGITS, NUM_NUMBERS).index_add_(0, test.labels, correct)
    return per_digit / torch.bincount(test.labels, minlength=NUM_DIGITS).clamp(min=1)[:, None]


def confident_mistakes(out: Outputs, mixture: NumberMixture, k: int) -> torch.Tensor:
    """Indices of up to ``k`` items with a wrong digit or sum, most confidently wrong first (equal
    confidences: the earlier test item first)."""
    digit_wrong = out.digits != mixture.labels  # (N,)
    sum_wrong = out.sums != mixture.labels + mixture.numbers  # (N,)
    zero = torch.zeros(())
    confidence = torch.maximum(torch.where(digit_wrong, out.digit_probs.max(1).values, zero),
                               torch.where(sum_wrong, out.sum_probs.max(1).values, zero))  # (N,)
    order = confidence.sort(descending=True, stable=True).indices[:k]
    return order[confidence[order] > 0]


def reliability_tables(out: Outputs, mixture: NumberMixture) -> dict:
    """Each head's reliability diagram points and expected calibration error, without calibration (the
    softmax of ``out``'s logits) and with it (``out``'s probabilities)."""
    truth = {"digit": mixture.labels, "sum": mixture.labels + mixture.numbers}
    tables = {}
    for head in ("digit", "sum"):
        raw, calibrated = getattr(out, f"{head}_logits").softmax(1), getattr(out, f"{head}_probs")
        tables[head] = {"raw": reliability(raw, truth[head]), "calibrated": reliability(calibrated, truth[head]),
                        "ece": {"raw": expected_calibration_error(raw, truth[head]),
                                "calibrated": expected_calibration_error(calibrated, truth[head])}}
    return tables


def model_tables(model: DigitSumNet, test, calibration: Calibration | None = None, samples: int = 32,
                 mistakes: int = 8, held_out: tuple[Pair, ...] = ()) -> ModelTables:
    """Confusion matrices, the all-pairs table, the first ``samples`` items, the worst mistakes, the
    reliability of the probabilities (calibrated with ``calibration``, and without), the combinations
    ``held_out`` of training and what the number embedding holds."""
    mixture = fixed_test_mixture(test)
    out = infer(model, mixture, calibration=calibration)

    def sample(i: int) -> Sample:
        return Sample(mixture.images[i], int(mixture.numbers[i]), int(mixture.labels[i]),
                      out.digit_probs[i], out.sum_probs[i])

    return ModelTables(
        digit_confusion=confusion(mixture.labels, out.digits, NUM_DIGITS),
        sum_confusion=confusion(mixture.labels + mixture.numbers, out.sums, NUM_SUMS),
        pair_accuracy=pair_accuracy(model, test),
        samples=[sample(i) for i in range(min(samples, len(mixture)))],
        mistakes=[sample(int(i)) for i in confident_mistakes(out, mixture, mistakes)],
        reliability=reliability_tables(out, mixture),
        held_out=pair_mask(held_out).numpy() if held_out else None,
        embedding=components(number_embeddings(model)).numpy(),
        readout=describe(model),
    )
