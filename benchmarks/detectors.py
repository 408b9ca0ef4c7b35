"""Candidate "is it a digit?" scores on one network, for benchmarks/nondigits.py, in the field's terms.

Every score is higher for an image more like a digit, computed from one pass of the network over the
28x28 images that the public preprocessing (``digitsum.preprocess.load_digit``) makes:

* verdict head: its logit (what digitsum shipped before novelty.py);
* MSP: the largest calibrated digit probability (Hendrycks & Gimpel 2017);
* energy: log-sum-exp of the digit logits (Liu et al. 2020);
* Mahalanobis: minus the distance of the image features to the nearest class mean, with one shared
  covariance (Lee et al. 2018), fitted on MNIST's training images (the validation split held out);
* kNN: minus the cosine distance of the normalised features to their K-th nearest of KNN_BANK training
  images (Sun et al. 2022);
* combinations of the verdict head and Mahalanobis: the lower of the two standardised on validation
  digits ("min"), their sum ("sum"), and a logistic regression fitted on validation digits against
  digitsum's generated negatives (negatives.py, a seed no run trains on): never on an evaluation set;
* Mahalanobis on every layer of the image branch (novelty.py: each convolution block's channel means
  and standard deviations, and the features), standardised and summed; the same plus the head (the rule
  digitsum shipped before); the same plus novelty.py's kNN score, with the head counted once and
  ``HEAD_WEIGHT`` times ("rule": what digitsum ships, fitted here as ``digitsum train`` fits it); and a
  logistic regression on the rule's standardised scores, fitted on validation digits against the
  generated negatives.

Each score's threshold keeps ``KEEP`` of the validation digits, as the shipped verdict's does.
"""

from __future__ import annotations

import numpy as np
import torch

from digitsum.calibration import KEEP
from digitsum.mixture import normalize
from digitsum.novelty import HEAD_WEIGHT, branch_layers, distance, fit_gaussian, fit_novelty

KNN_BANK, K = 10_000, 10
NEGATIVE_SEED = 7_777  # generated negatives for the logistic combination (training runs use their own seed)
NEGATIVES = 3000
RULE = f"the rule: {HEAD_WEIGHT:g} x head + Mahalanobis, every layer + kNN"


def outputs(model, images28: np.ndarray, batch: int = 1000) -> dict[str, torch.Tensor]:
    """features (N, F), digit logits (N, 10) and verdict logits (N,) of uint8 images (N, 28, 28)."""
    parts = []
    with torch.inference_mode():
        for i in range(0, len(images28), batch):
            x = normalize(torch.from_numpy(np.ascontiguousarray(images28[i : i + batch])))  # (B, 1, 28, 28)
            layers = branch_layers(model.image_branch, x)
            f = layers[-1]  # (B, F)
            parts.append((f, model.heads(f, torch.zeros(len(x), dtype=torch.int64))[0], model.verdict(f), layers))
    return {"features": torch.cat([p[0] for p in parts]), "logits": torch.cat([p[1] for p in parts]),
            "verdict": torch.cat([p[2] for p in parts]),
            "layers": [torch.cat([p[3][i] for p in parts]) for i in range(len(parts[0][3]))]}


class Scorer:
    """The candidate scores, fitted on MNIST training images (features) and the validation split."""

    def __init__(self, model, temperature: float, train_images, train_labels, val_images, negatives):
        self.model, self.temperature = model, temperature
        self.novelty = fit_novelty(model, torch.from_numpy(train_images), torch.as_tensor(train_labels),
                                   torch.from_numpy(val_images))  # what digitsum train fits and ships
        self.logistic5 = None
        train = outputs(model, train_images)
        self.means, self.whiten = fit_gaussian(train["features"], torch.as_tensor(train_labels))
        pick = np.random.default_rng(0).permutation(len(train_images))[:KNN_BANK]
        self.bank = torch.nn.functional.normalize(train["features"][pick], dim=1)  # (KNN_BANK, F)
        self.stats = {}
        val_out = outputs(model, val_images)
        val = self.raw(val_out)
        self.stats = {k: (float(v.mean()), float(v.std())) for k, v in val.items() if k in ("verdict head",
                                                                                            "Mahalanobis")}
        neg_out = outputs(model, negatives)
        self.logistic5 = fit_logistic(self.standardised(val_out), self.standardised(neg_out))
        neg = self.raw(neg_out)
        self.logistic = fit_logistic(np.stack([val["verdict head"], val["Mahalanobis"]], 1),
                                     np.stack([neg["verdict head"], neg["Mahalanobis"]], 1))
        self.thresholds = {k: float(np.quantile(v, 1 - KEEP)) for k, v in self.scores_of(self.raw(val_out)).items()}

    def raw(self, out: dict) -> dict[str, np.ndarray]:
        f = out["features"]
        probs = torch.softmax(out["logits"].double() / self.temperature, 1)
        sims = torch.cat([(torch.nn.functional.normalize(c, dim=1) @ self.bank.T).topk(K, 1).values[:, -1]
                          for c in f.split(1000)])
        return {"verdict head": out["verdict"].double().numpy(),
                "MSP": probs.max(1).values.numpy(),
                "energy": torch.logsumexp(out["logits"].double(), 1).numpy(),
                "Mahalanobis": -torch.log(distance(f, self.means, self.whiten).double() + 1e-6).numpy(),
                f"kNN (k={K})": (sims.double() - 1).numpy(), **self.layered(out)}

    def standardised(self, out: dict) -> np.ndarray:
        """(N, 1 + L + 1): the rule's scores (head, each layer's Mahalanobis, kNN), standardised on validation
        digits."""
        return self.novelty.standardised(out["layers"], out["verdict"]).double().numpy()

    def layered(self, out: dict) -> dict[str, np.ndarray]:
        z = self.standardised(out)
        scores = {"Mahalanobis, every layer": z[:, 1:-1].sum(1),
                  "head + Mahalanobis, every layer (the rule shipped before)": z[:, :-1].sum(1),
                  "head + Mahalanobis, every layer + kNN, equal weights": z.sum(1),
                  RULE: z @ self.novelty.weights.double().numpy()}
        if self.logistic5 is not None:
            scores["logistic(the rule's scores) on generated negatives"] = z @ self.logistic5[0] + self.logistic5[1]
        return scores

    def scores_of(self, raw: dict) -> dict[str, np.ndarray]:
        out = dict(raw)
        if not self.stats:
            return out
        z = {k: (raw[k] - m) / s for k, (m, s) in self.stats.items()}
        out["min(verdict, Mahalanobis), standardised"] = np.minimum(z["verdict head"], z["Mahalanobis"])
        out["verdict + Mahalanobis, standardised"] = z["verdict head"] + z["Mahalanobis"]
        w, b = self.logistic
        out["logistic(verdict, Mahalanobis) on generated negatives"] = w[0] * raw["verdict head"] + \
            w[1] * raw["Mahalanobis"] + b
        return out

    def scores(self, images28: np.ndarray) -> dict[str, np.ndarray]:
        return self.scores_of(self.raw(outputs(self.model, images28)))


def fit_logistic(positives: np.ndarray, negatives: np.ndarray, steps: int = 500) -> tuple[np.ndarray, float]:
    """(weights (D,), bias) of a logistic regression, positives against negatives (each class weighted
    equally), by L-BFGS on standardised inputs."""
    x = torch.from_numpy(np.concatenate([positives, negatives])).double()
    y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).double()
    weight = torch.where(y > 0, 0.5 / len(positives), 0.5 / len(negatives))
    mu, sd = x.mean(0), x.std(0)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = ((x - mu) / sd) @ w + b
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")).sum()
        loss = loss + 1e-4 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w = (w / sd).detach()
    return w.numpy(), float(b.detach() - (w * mu).sum())


def auroc(digits: np.ndarray, others: np.ndarray) -> float:
    """P(a digit scores above a non-digit), ties counted half."""
    both = np.concatenate([digits, others])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    sorted_both = both[order]  # average ranks over ties
    _, start, counts = np.unique(sorted_both, return_index=True, return_counts=True)
    for s, c in zip(start[counts > 1], counts[counts > 1], strict=True):
        ranks[order[s : s + c]] = s + (c + 1) / 2
    r = ranks[: len(digits)].sum()
    return float((r - len(digits) * (len(digits) + 1) / 2) / (len(digits) * len(others)))


def fpr_at_tpr(digits: np.ndarray, others: np.ndarray, tpr: float = 0.95) -> float:
    """The share of non-digits passed by the threshold that keeps ``tpr`` of the digits."""
    return float(np.mean(others >= np.quantile(digits, 1 - tpr)))
