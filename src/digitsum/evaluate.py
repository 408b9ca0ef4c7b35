"""Inference over a mixture, and the metrics digitsum reports.

``infer`` gives a model's logits and probabilities on an evaluation mixture; ``metrics`` turns
predictions into digitsum's report card; ``evaluate`` is the two on the MNIST test set with its
fixed numbers, plus every test image with every number ("all pairs"), how well calibrated the
probabilities are, and the share of test digits the verdict reads as digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .calibration import Calibration, expected_calibration_error, fit
from .config import NUM_DIGITS, NUM_NUMBERS
from .mixture import TEST_NUMBER_SEED, NumberMixture, normalize
from .model import DigitSumNet, Logits
from .pairs import Pair, pair_mask, pair_names
from .runtime import evaluating

BATCH_SIZE = 2000  # items per batch of inference


@dataclass
class Outputs:
    """A model's probabilities over a mixture, in its order (with their logits, when ``infer`` made them)."""

    digit_probs: torch.Tensor  # (N, 10)
    sum_probs: torch.Tensor  # (N, 19)
    digit_logits: torch.Tensor | None = None  # (N, 10)
    sum_logits: torch.Tensor | None = None  # (N, 19)
    is_digit_scores: torch.Tensor | None = None  # (N,) the verdict head's probability that each is a digit
    is_digit: torch.Tensor | None = None  # (N,) bool: read as a digit by the calibration's rule
    features: torch.Tensor | None = None  # (N, F) the image features the heads read (``infer`` keeps them)

    @property
    def digits(self) -> torch.Tensor:
        return self.digit_probs.argmax(1)

    @property
    def sums(self) -> torch.Tensor:
        return self.sum_probs.argmax(1)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def infer(model: DigitSumNet, mixture: NumberMixture, start: int = 0, stop: int | None = None,
          calibration: Calibration | None = None, on_batch: Callable[[int], None] | None = None) -> Outputs:
    """Logits and probabilities (by ``calibration``'s rule) for items ``start:stop`` of an evaluation
    mixture, in evaluation mode (the model's own mode is put back afterwards). ``on_batch`` is told how
    many items each batch held (a progress bar)."""
    device = model_device(model)
    digit, total, verdict, features = [], [], [], []
    with evaluating(model):
        for batch in mixture.batches(BATCH_SIZE, start, stop):
            outputs, feats = model.read(batch.images.to(device), batch.numbers.to(device))  # Logits, (B, F)
            features.append(feats.float().cpu())
            digit.append(outputs.digit.float().cpu())
            total.append(outputs.sum.float().cpu())
            if outputs.verdict is not None:
                verdict.append(outputs.verdict.float().cpu())
            if on_batch:
                on_batch(len(batch.numbers))
    logits = Logits(torch.cat(digit), torch.cat(total), torch.cat(verdict) if verdict else None)
    out = (calibration or Calibration()).apply(logits)
    return Outputs(out.digit_probs, out.sum_probs, logits.digit, logits.sum, out.is_digit_scores, out.is_digit,
                   torch.cat(features))


def calibrate(model: DigitSumNet, mixture: NumberMixture, fitted_on: str) -> Calibration:
    """Temperatures and the verdict's threshold fitted on an evaluation mixture (the validation split;
    calibration.py), with ``fitted_on`` saying what it is."""
    out = infer(model, mixture)
    digits = mixture.labels
    return fit((out.digit_logits, digits), (out.sum_logits, digits + mixture.numbers), out.is_digit_scores,
               fitted_on)


@torch.inference_mode()
def all_pairs(model: DigitSumNet, images: torch.Tensor, batch_size: int = 2000,
              on_batch: Callable[[int], None] | None = None,
              features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted (digit, sum) for every image (N, 28, 28 uint8) with every number 0-9 -> (N, 10) each.

    The image branch runs once per image, or not at all when ``features`` holds the images' features (N, F)
    from ``infer``; only the heads run for each of the ten numbers.
    """
    device = model_device(model)
    digits, sums = [], []
    with evaluating(model):
        for i in range(0, len(images), batch_size):
            feats = (model.features(normalize(images[i : i + batch_size]).to(device)) if features is None
                     else features[i : i + batch_size].to(device))  # (B, F)
            b = len(feats)
            numbers = torch.arange(NUM_NUMBERS, device=device).repeat(b)  # (B*10,)
            heads = model.heads(feats.repeat_interleave(NUM_NUMBERS, 0), numbers)  # (B*10, 10), (B*10, 19)
            digits.append(heads[0].argmax(1).view(b, NUM_NUMBERS).cpu())
            sums.append(heads[1].argmax(1).view(b, NUM_NUMBERS).cpu())
            if on_batch:
                on_batch(b)
    return torch.cat(digits), torch.cat(sums)


def all_pairs_sums(model: DigitSumNet, images: torch.Tensor, batch_size: int = 2000,
                   on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Predicted sum for every image (N, 28, 28 uint8) with every number 0-9 -> (N, 10) (see ``all_pairs``)."""
    return all_pairs(model, images, batch_size, on_batch)[1]


def accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """The share of ``predicted`` equal to ``truth`` (NaN for none)."""
    return int((predicted == truth).sum()) / truth.numel() if truth.numel() else float("nan")


def share(hits: torch.Tensor) -> float:
    """The share of True in ``hits`` (NaN for none)."""
    return int(hits.sum()) / hits.numel() if hits.numel() else float("nan")


def metrics(digits: torch.Tensor, sums: torch.Tensor, truth: torch.Tensor, numbers: torch.Tensor) -> dict:
    """digitsum's report card for predicted ``digits`` and ``sums`` (N,) of images whose true digits are
    ``truth`` (N,), each paired with its number (N,):

    * ``digit_accuracy``: predicted digit = true digit; ``sum_accuracy``: predicted sum = true digit + number;
    * ``consistency``: predicted sum = predicted digit + number, right or wrong;
    * ``per_digit_accuracy``: digit accuracy over the images of each true digit ("0" to "9"; a digit
      without images is left out).
    """
    return {
        "n": len(truth),
        "digit_accuracy": accuracy(digits, truth),
        "sum_accuracy": accuracy(sums, truth + numbers),
        "consistency": accuracy(sums, digits + numbers),
        "per_digit_accuracy": {str(d): accuracy(digits[truth == d], truth[truth == d]) for d in range(NUM_DIGITS)
                               if (truth == d).any()},
    }


def all_pairs_accuracy(pair_sums: torch.Tensor, truth: torch.Tensor) -> float:
    """The share of right sums (N, 10) when each image of true digit ``truth`` (N,) meets every number 0-9."""
    return accuracy(pair_sums, truth[:, None] + torch.arange(NUM_NUMBERS)[None, :])


def held_out_figures(pair_digits: torch.Tensor, pair_sums: torch.Tensor, truth: torch.Tensor,
                     pairs: tuple[Pair, ...]) -> dict:
    """Every image of true digit ``truth`` (N,) with every number, predicted ``pair_digits`` and ``pair_sums``
    (N, 10), scored apart on the combinations ``pairs`` held out of training and on the others (seen):
    the sum head's own answer (``*_sum_accuracy``), its agreement with the digit head (``*_consistency``) and,
    as the reference, the digit head's answer plus the number (``*_digit_plus_number_accuracy``)."""
    numbers = torch.arange(NUM_NUMBERS)[None, :]  # (1, 10)
    held = pair_mask(pairs)[truth]  # (N, 10): this image's digit with this number is held out
    right_sum, agree = pair_sums == truth[:, None] + numbers, pair_sums == pair_digits + numbers  # (N, 10) each
    right_digit = (pair_digits == truth[:, None]).expand_as(held)
    card: dict = {"held_out_pairs": pair_names(pairs)}
    for name, cells in (("held_out", held), ("seen", ~held)):
        card.update({f"{name}_n": int(cells.sum()), f"{name}_sum_accuracy": share(right_sum[cells]),
                     f"{name}_consistency": share(agree[cells]),
                     f"{name}_digit_plus_number_accuracy": share(right_digit[cells])})
    return card


def fixed_test_mixture(test) -> NumberMixture:
    """The MNIST test set (a ``data.Split``) with its fixed numbers: the same pairs for every model."""
    return NumberMixture.fixed(test.images, test.labels, TEST_NUMBER_SEED)


def evaluate(model: DigitSumNet, test, calibration: Calibration | None = None,
             on_batch: Callable[[int], None] | None = None, held_out: tuple[Pair, ...] = ()) -> dict:
    """digitsum's report card on the MNIST test set (numbers fixed by TEST_NUMBER_SEED), all pairs included,
    with the expected calibration error of both heads' probabilities (with ``calibration``'s temperatures)
    and, for a network with a verdict head, the share of test digits its rule reads as digits. For a model
    trained with combinations ``held_out`` (pairs.py), the all-pairs figures of those and of the others
    (``held_out_figures``)."""
    calibration = calibration or Calibration()
    mixture = fixed_test_mixture(test)
    out = infer(model, mixture, calibration=calibration, on_batch=on_batch)
    pair_digits, pairs = all_pairs(model, mixture.images, on_batch=on_batch, features=out.features)  # (N, 10) each
    card = metrics(out.digits, out.sums, mixture.labels, mixture.numbers)
    per_digit = card.pop("per_digit_accuracy")  # keeps the order of the keys evaluate --json has always had
    card.update({"all_pairs_sum_accuracy": all_pairs_accuracy(pairs, mixture.labels), "all_pairs_n": pairs.numel(),
                 "per_digit_accuracy": per_digit,
                 "digit_ece": expected_calibration_error(out.digit_probs, mixture.labels),
                 "sum_ece": expected_calibration_error(out.sum_probs, mixture.labels + mixture.numbers)})
    if out.is_digit_scores is not None and calibration.is_digit_threshold is not None:
        card["is_digit_rate"] = float(out.is_digit.double().mean())
    if held_out:
        card.update(held_out_figures(pair_digits, pairs, mixture.labels, held_out))
    return card
