"""How far an image is from the digits the network was trained on: a feature-space verdict.

The verdict head was trained on a few kinds of synthetic non-digits and passes what it never saw
(photographs, filled shapes, other alphabets). The network's image features separate those better:
an image whose features lie far from every digit class is no digit (Lee et al. 2018). digitsum fits,
on MNIST training images only (never a test or evaluation set):

* the class means of the image features (10, F) and one shared covariance; ``whiten`` (F, F) is a
  square root of its inverse, so the squared Mahalanobis distance to class c is ``|(f - mean_c) whiten|^2``;
* a rule that combines the distance with the verdict head's logit (``Rule``, below), fitted on the
  validation split and the generated negatives of negatives.py, with a threshold that keeps ``KEEP`` of
  the validation digits.

The fitted tensors are ``novelty.safetensors`` beside the weights, the rule ``novelty.json``; nothing is
unpickled. ``NoveltyNet`` wraps a network so that its verdict output is the rule's logit: torch and the
exported ONNX graph compute it the same way. A checkpoint without these files keeps the head's verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .config import NUM_DIGITS
from .errors import CheckpointError
from .files import atomic_write_bytes, atomic_write_json

TENSORS, RULE = "novelty.safetensors", "novelty.json"
RIDGE = 1e-3  # added to the covariance's diagonal, as a share of its mean variance


def fit_gaussian(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class means (10, F), whiten (F, F)) from training features (N, F) with digit labels (N,)."""
    f = features.double()
    means = torch.stack([f[labels == c].mean(0) for c in range(NUM_DIGITS)])  # (10, F)
    centred = f - means[labels]  # (N, F)
    cov = centred.T @ centred / len(f)  # (F, F), shared by the classes
    cov += RIDGE * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    whiten = torch.linalg.cholesky(torch.linalg.inv(cov))  # precision = whiten whiten^T
    return means.float(), whiten.float()


def distance(features: torch.Tensor, means: torch.Tensor, whiten: torch.Tensor) -> torch.Tensor:
    """(N,) Mahalanobis distance of features (N, F) to the nearest class mean (not squared)."""
    z, m = features @ whiten, means @ whiten  # (N, F), (10, F)
    squared = (z * z).sum(1, keepdim=True) - 2 * z @ m.T + (m * m).sum(1)  # (N, 10)
    return squared.min(1).values.clamp_min(0).sqrt()


@dataclass(frozen=True)
class Rule:
    """The verdict's logit: ``head * verdict_logit + dist * log(distance) + bias`` (a logistic regression)."""

    head: float = 1.0
    dist: float = 0.0
    bias: float = 0.0
    fitted_on: str = ""

    @classmethod
    def from_dict(cls, values: dict) -> Rule:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class Novelty(nn.Module):
    """The fitted rule as a module: image features (B, F) and the head's logits (B,) -> the rule's logits (B,)."""

    def __init__(self, means: torch.Tensor, whiten: torch.Tensor, rule: Rule):
        super().__init__()
        self.register_buffer("means", means.float())  # (10, F)
        self.register_buffer("whiten", whiten.float())  # (F, F)
        self.rule = rule

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        return distance(features, self.means, self.whiten)

    def forward(self, features: torch.Tensor, head_logits: torch.Tensor) -> torch.Tensor:
        r = self.rule
        return r.head * head_logits + r.dist * torch.log(self.distance(features) + 1e-6) + r.bias

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        atomic_write_bytes(folder / TENSORS, save_safetensors({"means": self.means.contiguous(),
                                                               "whiten": self.whiten.contiguous()}))
        atomic_write_json(folder / RULE, asdict(self.rule))


def load_novelty(folder: Path) -> Novelty | None:
    """The fitted rule beside a checkpoint, or None where there is none (a checkpoint from before it)."""
    tensors, rule = folder / TENSORS, folder / RULE
    if not (tensors.is_file() and rule.is_file()):
        return None
    from .checkpoint import read_json

    try:
        state = load_safetensors(tensors.read_bytes())
        return Novelty(state["means"], state["whiten"], Rule.from_dict(read_json(rule, "novelty rule")))
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise CheckpointError(f"checkpoint novelty files in {folder} are malformed ({error})") from None


class NoveltyNet(nn.Module):
    """A network whose verdict is the rule's: the same interface as DigitSumNet for predicting and exporting."""

    def __init__(self, model: nn.Module, novelty: Novelty):
        super().__init__()
        self.model, self.novelty = model, novelty

    has_verdict = True

    def features(self, images):
        return self.model.features(images)

    def heads(self, features, numbers):
        return self.model.heads(features, numbers)

    def verdict(self, features):
        return self.novelty(features, self.model.verdict(features))

    def forward(self, images, numbers, with_verdict: bool = False):
        features = self.features(images)
        digit_logits, sum_logits = self.heads(features, numbers)
        if with_verdict:
            return digit_logits, sum_logits, self.verdict(features)
        return digit_logits, sum_logits


def with_novelty(model: nn.Module, novelty: Novelty | None) -> nn.Module:
    """``model`` with the fitted rule as its verdict, or ``model`` itself where there is no rule (or no head)."""
    if novelty is None or not getattr(model, "has_verdict", False):
        return model
    return NoveltyNet(model, novelty)
