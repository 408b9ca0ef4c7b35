"""Other scores from the literature beside the shipped rule, on one network: does any of them flag more?

Issue 19 asks for the best rule measured. benchmarks/nondigits.py compares the rule with the baselines the
issue names; this probe adds the scores of later papers, each alone and added to the rule (standardised on
the validation digits, weight 1), on the same network's features, fitted on MNIST training images and the
validation split only, thresholds keeping ``KEEP`` of the validation digits (as the rule's does):

* ``residual``: minus the norm of the image features outside their top ``D`` principal directions
  (the residual of ViM, Wang et al. 2022);
* ``class Gaussians``: the best class's log-likelihood under its own mean and covariance (no shared one);
* ``relative Mahalanobis``: the nearest class's squared Mahalanobis distance minus the one to a single
  Gaussian of all training features (Ren et al. 2021), negated;
* ``energy``: log-sum-exp of the digit logits (Liu et al. 2020);
* ``kNN, bank B, k K``: the cosine similarity to the K-th nearest of B training images' features (the rule's
  own score is B = 2,000, K = 10);
* ``pixels' residual``: minus the norm of the 28x28 image the network sees (its pixels, 0-1) outside its top ``D``
  principal directions over the training images, and ``pixels' kNN``: its cosine similarity, both centred on the
  training images' mean, to the 10th nearest of 10,000 of them: scores of the input, not of the features;
* ``per-class standardised``: the rule's scores standardised on the validation digits of the class the digit
  head reads, not on all of them;
* the rule at thresholds keeping 99.7% and 99.6% of the validation digits;

and, after the table, the share of each non-Latin Omniglot alphabet the rule flags, with the digits its
digit head reads most often in the characters it passes.

A probe for "How it got here" in benchmarks/nondigits.md, not in run_all (none of them was shipped).

    python benchmarks/verdict_scores.py [CHECKPOINT]   (a run directory; the bundled model by default)
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch

import detectors
import handwriting
import nondigits
import verdict_weights
from digitsum.calibration import KEEP
from digitsum.checkpoint import load_checkpoint
from digitsum.config import NUM_DIGITS, TrainConfig
from digitsum.data import load_mnist
from digitsum.mixture import split_train_val
from digitsum.novelty import HEAD_WEIGHT, covariance, fit_novelty

Outputs = dict  # detectors.outputs of a set of images, with "z": the rule's standardised scores (N, 1 + L + 1)
Score = Callable[[Outputs], torch.Tensor]


def fitted_scores(train: Outputs, labels: torch.Tensor, val: Outputs) -> dict[str, Score]:
    """Every candidate score (higher: more like a digit), fitted on the training outputs and labels (N,)."""
    weights = torch.ones(train["z"].shape[1], dtype=torch.float64)
    weights[0] = HEAD_WEIGHT

    def features(o: Outputs) -> torch.Tensor:
        return o["features"].double()

    def rule(o: Outputs) -> torch.Tensor:  # the shipped rule, before its threshold
        return (o["z"] * weights).sum(1)

    f = features(train)
    mean = f.mean(0)
    means = torch.stack([f[labels == c].mean(0) for c in range(NUM_DIGITS)])  # (10, F)
    shared = torch.linalg.inv(covariance(f - means[labels]))
    overall = torch.linalg.inv(covariance(f - mean))
    own = []
    for c in range(NUM_DIGITS):
        cov = covariance(f[labels == c] - means[c])
        own.append((means[c], torch.linalg.inv(cov), torch.logdet(cov)))

    def residuals(values: Callable[[Outputs], torch.Tensor]) -> Callable[[int], Score]:
        """``residual(kept)``: minus the norm of ``values(o)`` (N, D) outside its top ``kept`` principal directions
        over the training outputs."""
        x = values(train)
        centre = x.mean(0)
        directions = torch.linalg.eigh(covariance(x - centre))[1]  # (D, D), columns by increasing variance

        def residual(kept: int) -> Score:
            rest = directions[:, :-kept]
            return lambda o: -((values(o) - centre) @ rest).norm(dim=1)
        return residual

    residual = residuals(features)

    def class_gaussians(o: Outputs) -> torch.Tensor:
        x = features(o)
        return torch.stack([-(((x - m) @ p) * (x - m)).sum(1) - logdet for m, p, logdet in own], 1).max(1).values

    def relative(o: Outputs) -> torch.Tensor:
        x = features(o)
        nearest = torch.stack([(((x - m) @ shared) * (x - m)).sum(1) for m in means], 1).min(1).values
        return -(nearest - (((x - mean) @ overall) * (x - mean)).sum(1))

    pixel_residual = residuals(lambda o: o["pixels"])
    pixel_mean = train["pixels"].mean(0)

    def energy(o: Outputs) -> torch.Tensor:
        return torch.logsumexp(o["logits"].double(), 1)

    def knn(bank: int, k: int, values: Callable[[Outputs], torch.Tensor] = features) -> Score:
        """The cosine similarity of ``values(o)`` (N, D) to its ``k``-th nearest among ``bank`` training outputs'."""
        x = values(train)
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:bank]
        rows = torch.nn.functional.normalize(x[pick], dim=1)
        return lambda o: torch.cat([(chunk @ rows.T).topk(k, 1).values[:, -1] for chunk in
                                    torch.nn.functional.normalize(values(o), dim=1).split(2000)])

    reads = val["logits"].argmax(1)
    centre = torch.stack([val["z"][reads == c].mean(0) for c in range(NUM_DIGITS)])  # (10, 1 + L + 1)
    spread = torch.stack([val["z"][reads == c].std(0) for c in range(NUM_DIGITS)])

    def per_class(o: Outputs) -> torch.Tensor:
        c = o["logits"].argmax(1)
        return (((o["z"] - centre[c]) / spread[c]) * weights).sum(1)

    alone = {"residual, top 32 directions kept": residual(32), "residual, top 64 directions kept": residual(64),
             "class Gaussians": class_gaussians, "relative Mahalanobis": relative, "energy": energy,
             "pixels' residual, top 32 directions kept": pixel_residual(32),
             "pixels' residual, top 64 directions kept": pixel_residual(64),
             "pixels' kNN, bank 10,000, k 10": knn(10000, 10, lambda o: o["pixels"] - pixel_mean)}

    def plus(score: Score) -> Score:  # the rule plus ``score`` standardised on the validation digits
        v = score(val)
        mu, sd = v.mean(), v.std()
        return lambda o: rule(o) + (score(o) - mu) / sd

    added = {f"rule + {name}": plus(score) for name, score in alone.items()}
    neighbours = {f"kNN, bank {b:,}, k {k}": knn(b, k) for b in (2000, 10000, 50000) for k in (1, 10, 50)}
    return {"rule (shipped)": rule, **alone, **added, **neighbours, "per-class standardised": per_class}


def threshold(score: Score, val: Outputs, keep: float) -> float:
    """The score's threshold keeping ``keep`` of the validation digits."""
    return float(np.quantile(score(val).numpy(), 1 - keep))


def row(name: str, score: Score, val: Outputs, sets: dict[str, Outputs], keep: float) -> str:
    """One table row: digits kept, AUROC / flagged of the far sets pooled, Omniglot and scribbles."""
    cut = threshold(score, val, keep)
    s = {k: score(o).numpy() for k, o in sets.items()}
    mnist = s["D:MNIST test"]
    far = np.concatenate([s[k] for k in s if k[2:].startswith(nondigits.FAR)])
    cells = [f"{100 * (s[k] >= cut).mean():.2f}%" for k in ("D:MNIST test", "D:USPS test", "D:optdigits")]
    for others in (far, s["N:" + nondigits.OMNIGLOT], s["N:" + nondigits.SCRIBBLES]):
        cells.append(f"{100 * detectors.auroc(mnist, others):.2f} / {100 * (others < cut).mean():.1f}%")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str]) -> int:
    checkpoint = argv[0] if argv else None
    torch.set_num_threads(2)
    model = load_checkpoint(checkpoint).model.eval()
    train, val = split_train_val(load_mnist(None, splits=("train",))["train"], TrainConfig())
    novelty = fit_novelty(model, train.images, train.labels, val.images)

    def outputs(images: np.ndarray) -> Outputs:
        out = detectors.outputs(model, images)
        with torch.inference_mode():
            out["z"] = novelty.standardised(out["layers"], out["verdict"]).double()
        out["pixels"] = torch.from_numpy(images.reshape(len(images), -1)).double() / 255
        return out

    on_train, on_val = outputs(train.images.numpy()), outputs(val.images.numpy())
    sets = {name: outputs(images) for name, images in verdict_weights.sets().items()}
    scores = fitted_scores(on_train, train.labels, on_val)
    print(f"`python benchmarks/verdict_scores.py{' ' + checkpoint if checkpoint else ''}`: thresholds keeping "
          f"{100 * KEEP:.1f}% of the validation digits unless the row says otherwise; AUROC / flagged, %")
    print("| score | MNIST test kept | USPS test kept | optdigits kept | far, pooled | Omniglot non-Latin "
          "| scribbles |")
    print("| --- |" + " ---: |" * 6)
    for name, score in scores.items():
        print(row(name, score, on_val, sets, KEEP), flush=True)
    for keep in (0.997, 0.996):
        print(row(f"rule (shipped), keeping {100 * keep:.1f}%", scores["rule (shipped)"], on_val, sets, keep))
    print("\n" + by_alphabet(scores["rule (shipped)"], on_val, sets["N:" + nondigits.OMNIGLOT]))
    return 0


def by_alphabet(score: Score, val: Outputs, omniglot: Outputs) -> str:
    """Per non-Latin alphabet: characters, the share ``score`` flags at the keep level, and the digits the head
    reads most in those it passes (the set holds the alphabets in name order, as nondigits.py builds it)."""
    counts = {name: len(files) for name, files in handwriting.omniglot().items() if name != handwriting.LATIN}
    values, reads = score(omniglot).numpy(), omniglot["logits"].argmax(1).numpy()
    if sum(counts.values()) != len(values):  # preprocessing refused some: the alphabets' slices would not line up
        return f"(per alphabet: not shown, {sum(counts.values()) - len(values)} characters refused by preprocessing)"
    cut = threshold(score, val, KEEP)
    lines = ["| alphabet | characters | flagged by the rule | read most, of those passed |",
             "| --- | ---: | ---: | --- |"]
    start = 0
    for name, n in counts.items():
        passed = reads[start:start + n][values[start:start + n] >= cut]
        top = np.bincount(passed, minlength=NUM_DIGITS).argsort()[::-1][:3]
        common = ", ".join(f"{d} ({int((passed == d).sum())})" for d in top if (passed == d).any())
        lines.append(f"| {name} | {n:,} | {100 * (values[start:start + n] < cut).mean():.1f}% | {common or '-'} |")
        start += n
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
