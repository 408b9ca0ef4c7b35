"""How far an image is from the digits the network was trained on: the verdict digitsum ships.

The verdict head was trained on a few kinds of generated non-digits and passes much of what it never
saw (photographs, filled shapes, other alphabets). The network's own features separate those better:
an image whose features lie far from every digit class is no digit (Mahalanobis distance, Lee et al.
2018). The rule adds up, each standardised on the validation digits (mean 0, standard deviation 1):

* the verdict head's logit, counted ``HEAD_WEIGHT`` times (the one score trained against non-digits:
  benchmarks/nondigits.md measures equal weights too);
* minus the log Mahalanobis distance to the nearest class mean, with one shared covariance, of each of
  the image branch's layers: every convolution block summarised by its channels' means and standard
  deviations (low-level statistics: what tells a photograph from a pen stroke), and the image features
  the heads read;
* the cosine similarity of the image features to their ``KNN_K``-th nearest among ``KNN_BANK`` training
  images' (k-nearest neighbours, Sun et al. 2022): a character of another alphabet can sit between the
  class means and still far from every digit anyone wrote.

Class means and covariances (and the neighbours' bank) come from MNIST's training images, the
standardisation and the threshold from the validation split (``KEEP`` of its digits pass): no generated or
evaluation image is used, and no weight is fitted (``HEAD_WEIGHT`` was chosen among the weightings that
benchmarks/verdict_weights.py compares). The rule's logit is the sum's margin over that threshold in
validation standard deviations, so ``is_digit_score`` = sigmoid(logit) is 0.5 at the threshold and ``is_digit``
is ``is_digit_score >= 0.5`` (benchmarks/nondigits.py measures this rule against the head and the baselines).

Stored beside the weights as ``novelty.safetensors`` (tensors) and ``novelty.json``; nothing is unpickled.
``NoveltyNet`` wraps a network so that its verdict output is the rule's logit: torch and the exported ONNX
graph compute it the same way. A checkpoint without these files keeps the head's verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .calibration import KEEP
from .config import NUM_DIGITS
from .errors import CheckpointError
from .files import NOVELTY_RULE as RULE
from .files import NOVELTY_TENSORS as TENSORS
from .files import atomic_write_bytes, atomic_write_json
from .mixture import normalize
from .model import Logits
from .runtime import evaluating

THRESHOLD = 0.5  # is_digit_score at the rule's threshold
HEAD_WEIGHT = 2.0  # the head's weight in the sum; every other score's is 1
KNN_BANK, KNN_K = 2000, 10  # training images whose features the neighbours' score compares with; the K-th nearest
RIDGE = 1e-3  # added to a covariance's diagonal, as a share of its mean variance
BATCH = 2000


def branch_layers(image_branch: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The image branch's layers for normalised images (B, 1, 28, 28): each 4-D block output as its channels'
    means and standard deviations (B, 2C), then the branch's output, the image features (B, F)."""
    out, x = [], images
    for layer in image_branch:
        x = layer(x)
        if x.dim() == 4:
            mean = x.mean((2, 3))  # (B, C)
            out.append(torch.cat([mean, ((x * x).mean((2, 3)) - mean * mean).clamp_min(0).sqrt()], 1))
    return [*out, x]


def covariance(centred: torch.Tensor) -> torch.Tensor:
    """(F, F) covariance of centred rows (N, F), with ``RIDGE`` of its mean variance added to its diagonal."""
    cov = centred.T @ centred / len(centred)
    cov += RIDGE * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    return cov


def fit_gaussian(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class means (10, F), whiten (F, F)) of features (N, F) with digit labels (N,): the squared Mahalanobis
    distance to class c under the shared covariance is ``|(f - means[c]) @ whiten|^2``."""
    f = features.double()
    means = torch.stack([f[labels == c].mean(0) for c in range(NUM_DIGITS)])  # (10, F)
    cov = covariance(f - means[labels])  # (F, F), shared by the classes
    return means.float(), torch.linalg.cholesky(torch.linalg.inv(cov)).float()  # precision = whiten whiten^T


def distance(features: torch.Tensor, means: torch.Tensor, whiten: torch.Tensor) -> torch.Tensor:
    """(N,) Mahalanobis distance of features (N, F) to the nearest class mean (not squared)."""
    diff = (features[:, None, :] - means[None]) @ whiten  # (N, 10, F)
    return (diff * diff).sum(2).min(1).values.sqrt()


def knn_similarity(features: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) cosine similarity of features (N, F) to their ``k``-th nearest row of ``bank`` (M, F, rows of length
    1), minus 1: 0 for an image whose features point where k training images' do."""
    return (nn.functional.normalize(features, dim=1) @ bank.T).topk(k, 1).values[:, -1] - 1


class Novelty(nn.Module):
    """The fitted rule: the layers of ``branch_layers`` and the head's logits (B,) -> the rule's logits (B,)."""

    def __init__(self, tensors: dict[str, torch.Tensor], info: dict | None = None):
        super().__init__()
        self.layers = len([k for k in tensors if k.startswith("means.")])
        for name, value in tensors.items():  # means.i (10, F_i), whiten.i (F_i, F_i), centre/spread (1 + L [+ 1],), ...
            self.register_buffer(name.replace(".", "_"), value.float())
        self.info = info or {}
        self.k = int(self.info.get("knn_k", KNN_K))  # a rule from before the neighbours' score has no bank
        if "centre" in tensors and "weights" not in tensors:  # nor weights: every score counted once
            self.register_buffer("weights", torch.ones_like(self.centre))

    def scores(self, layers: list[torch.Tensor], head_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L [+ 1]): the head's logit, minus the log distance of each layer, the neighbours' similarity."""
        distances = [distance(f, getattr(self, f"means_{i}"), getattr(self, f"whiten_{i}"))
                     for i, f in enumerate(layers)]
        columns = [head_logits, *(-torch.log(d + 1e-6) for d in distances)]
        if hasattr(self, "bank"):
            columns.append(knn_similarity(layers[-1], self.bank, self.k))
        return torch.stack(columns, 1)

    def standardised(self, layers: list[torch.Tensor], head_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L [+ 1]): each score in standard deviations of the validation digits' from their mean."""
        return (self.scores(layers, head_logits) - self.centre) / self.spread

    def forward(self, layers: list[torch.Tensor], head_logits: torch.Tensor) -> torch.Tensor:
        combined = (self.standardised(layers, head_logits) * self.weights).sum(1)  # (B,)
        return (combined - self.threshold) * self.scale

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name.replace("_", "."): b.detach().cpu().contiguous() for name, b in self.named_buffers()}

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        atomic_write_bytes(folder / TENSORS, save_safetensors(self.tensors()))
        atomic_write_json(folder / RULE, self.info)


@torch.inference_mode()
def _layers(model: nn.Module, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer (N, F_i) and the head's logits (N,) of uint8 images (N, 28, 28), in batches."""
    parts = []
    for chunk in images.split(BATCH):
        layers = branch_layers(model.image_branch, normalize(chunk).to(next(model.parameters()).device))
        parts.append(([f.float().cpu() for f in layers], model.verdict(layers[-1]).float().cpu()))
    return [torch.cat([p[0][i] for p in parts]) for i in range(len(parts[0][0]))], torch.cat([p[1] for p in parts])


def fit_novelty(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                val_images: torch.Tensor, keep: float = KEEP, fitted_on: str = "") -> Novelty:
    """The rule for ``model`` (eval mode, with a verdict head): Gaussians from training images uint8 (N, 28, 28)
    with labels (N,), standardisation and threshold from validation digits (M, 28, 28)."""
    tensors = {}
    with evaluating(model):
        train_layers, _ = _layers(model, train_images)
        val_layers = _layers(model, val_images)
    for i, f in enumerate(train_layers):
        tensors[f"means.{i}"], tensors[f"whiten.{i}"] = fit_gaussian(f, train_labels)
    pick = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(0))[:KNN_BANK]
    tensors["bank"] = nn.functional.normalize(train_layers[-1][pick], dim=1)  # (KNN_BANK, F)
    bare = Novelty(tensors)
    scores = bare.scores(*val_layers).double()  # (M, 1 + L + 1)
    centre, spread = scores.mean(0), scores.std(0)
    weights = torch.ones(scores.shape[1], dtype=scores.dtype)
    weights[0] = HEAD_WEIGHT
    combined = ((scores - centre) / spread * weights).sum(1)
    threshold = float(np.quantile(combined.numpy(), 1 - keep))
    tensors.update(centre=centre.float(), spread=spread.float(), weights=weights.float(),
                   threshold=torch.tensor(threshold), scale=torch.tensor(1 / float(combined.std())))
    info = {"rule": "weighted sum of standardised scores: verdict head logit, -log Mahalanobis distance per layer, "
            "cosine similarity to the k-th nearest training image's features", "layers": bare.layers,
            "knn_k": KNN_K, "keep": keep, "threshold": THRESHOLD, "fitted_on": fitted_on}
    return Novelty(tensors, info).to(next(model.parameters()).device)  # beside the model it was fitted for


def load_novelty(folder: Path) -> Novelty | None:
    """The rule stored beside a checkpoint, or None where there is none (a checkpoint from before it)."""
    tensors, rule = folder / TENSORS, folder / RULE
    if not (tensors.is_file() and rule.is_file()):
        return None
    try:
        state = load_safetensors(tensors.read_bytes())
        info = json.loads(rule.read_text())
        novelty = Novelty(state, info if isinstance(info, dict) else {})
        for name in ("centre", "spread", "threshold", "scale", "means_0", "whiten_0"):
            getattr(novelty, name)
    except (SafetensorError, ValueError, AttributeError, OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint novelty files in {folder} are malformed ({error})") from None
    return novelty


class NoveltyNet(nn.Module):
    """A network whose verdict is the rule's logit, with DigitSumNet's interface for predicting and exporting."""

    has_verdict = True

    def __init__(self, model: nn.Module, novelty: Novelty):
        super().__init__()
        self.model, self.novelty = model, novelty

    @property
    def number_branch(self) -> nn.Module:
        """The wrapped network's number branch (what report/ and embedding.py read)."""
        return self.model.number_branch

    def features(self, images):
        return self.model.features(images)

    def heads(self, features, numbers):
        return self.model.heads(features, numbers)

    def forward(self, images, numbers) -> Logits:
        return self.read(images, numbers)[0]

    def read(self, images, numbers) -> tuple[Logits, torch.Tensor]:
        """As ``DigitSumNet.read``: the Logits, the rule's logit as the verdict, and the image features."""
        layers = branch_layers(self.model.image_branch, images)
        digit_logits, sum_logits = self.model.heads(layers[-1], numbers)  # (B, 10), (B, 19)
        verdict = self.novelty(layers, self.model.verdict(layers[-1]))  # (B,)
        return Logits(digit_logits, sum_logits, verdict), layers[-1]


def with_novelty(model: nn.Module, novelty: Novelty | None) -> nn.Module:
    """``model`` with the fitted rule as its verdict, or ``model`` itself where there is no rule (or no head)."""
    if novelty is None or not getattr(model, "has_verdict", False):
        return model
    return NoveltyNet(model, novelty)
