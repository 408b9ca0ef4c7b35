"""How the verdict rule's scores are weighed, and how many digits its threshold keeps: the probe behind
"How it got here" in benchmarks/nondigits.md (not part of run_all: its candidates are fixed in the rule).

For each checkpoint, fits novelty.py's rule (as ``digitsum train`` does) and reports, for candidate weightings
of its standardised scores (h: the head, lay: each layer's -log Mahalanobis distance, kn: the kNN similarity),
the digits kept and, per non-digit set of benchmarks/nondigits.py, AUROC / share flagged, at thresholds keeping
99.8% and 99.6% of the validation digits. Plain text, one table per checkpoint and keep level.

    python benchmarks/verdict_weights.py [--stretched] CHECKPOINT [CHECKPOINT ...]   (run directories, or "bundled")

``--stretched`` fits the rule on the training and validation digits plus stretched copies of a share of them, as
training stretches its digits (``augment.stretch``, ``TrainConfig.stretch`` of each split, seeded): a probe of
whether frame-filling digits (USPS) are kept more when the rule has seen them.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import torch

import detectors
import nondigits
from digitsum.augment import draw_stretches, stretch
from digitsum.checkpoint import load_checkpoint
from digitsum.config import TrainConfig
from digitsum.data import load_mnist
from digitsum.mixture import split_train_val
from digitsum.novelty import fit_novelty

KEEPS = (0.998, 0.996)


def sets(limit: int | None = None) -> dict[str, np.ndarray]:
    """name -> uint8 (N, 28, 28): the digit sets ("D:") and the non-digit sets ("N:") of nondigits.py (the first
    ``limit`` of each: a smoke run)."""
    out = {}
    for name, (images, _) in nondigits.digit_sets(None, limit).items():
        out["D:" + name] = nondigits.arrays28(images)
    for name, images in nondigits.nondigit_sets(limit).items():
        out["N:" + name] = nondigits.preprocessed(images)[0]
    return out


def standardised(model, novelty, images: np.ndarray) -> torch.Tensor:
    """(N, 1 + L + 1) standardised scores of the rule for uint8 images."""
    out = detectors.outputs(model, images)
    with torch.inference_mode():
        return novelty.standardised(out["layers"], out["verdict"]).double()


def candidates(z: torch.Tensor) -> dict[str, torch.Tensor]:
    h, lay, kn = z[:, 0], z[:, 1:-1].sum(1), z[:, -1]
    return {"head": h, "kn": kn, "h+lay (before)": h + lay, "h+lay+kn": h + lay + kn,
            "2h+lay+kn (shipped)": 2 * h + lay + kn, "3h+lay+2kn": 3 * h + lay + 2 * kn,
            "2h+lay+2kn": 2 * h + lay + 2 * kn}


def report(checkpoint: str, data: dict[str, np.ndarray], train, val) -> str:
    model = load_checkpoint(None if checkpoint == "bundled" else checkpoint).model.eval()
    novelty = fit_novelty(model, train.images, train.labels, val.images)
    on_val = candidates(standardised(model, novelty, val.images.numpy()))
    scored = {k: candidates(standardised(model, novelty, v)) for k, v in data.items()}
    names, lines = list(on_val), []
    for keep in KEEPS:
        cut = {n: float(np.quantile(v.numpy(), 1 - keep)) for n, v in on_val.items()}
        lines += ["", f"== {checkpoint}, thresholds keeping {100 * keep:.1f}% of the validation digits",
                  "set".ljust(40) + "".join(n.rjust(21) for n in names)]
        for k in (k for k in data if k.startswith("D:")):
            lines.append(k[2:42].ljust(40) + "".join(f"{100 * float((scored[k][n] >= cut[n]).double().mean()):20.2f}%"
                                                     for n in names))
        mnist = scored["D:MNIST test"]
        far = {n: torch.cat([scored[k][n] for k in data if k[2:].startswith(nondigits.FAR)]) for n in names}
        rows = {"far from any digit, pooled": far, **{k[2:]: scored[k] for k in data if k.startswith("N:")}}
        for name, per in rows.items():
            cells = [f"{100 * detectors.auroc(mnist[n].numpy(), per[n].numpy()):7.2f} / "
                     f"{100 * float((per[n] < cut[n]).double().mean()):5.1f}%" for n in names]
            lines.append(name[:40].ljust(40) + "".join(c.rjust(21) for c in cells))
    return "\n".join(lines)


def with_stretched(split, share: float, generator: torch.Generator):
    """``split`` with stretched copies of a ``share`` of its digits added (labels follow)."""
    chosen, far = draw_stretches(len(split.labels), share, generator)
    images = torch.cat([split.images, stretch(split.images[chosen], far[chosen])])
    return SimpleNamespace(images=images, labels=torch.cat([split.labels, split.labels[chosen]]))


def main(argv: list[str]) -> int:
    stretched = "--stretched" in argv
    argv = [a for a in argv if a != "--stretched"]
    if not argv:
        print(next(line.strip() for line in __doc__.splitlines() if "python benchmarks" in line), file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    train, val = split_train_val(load_mnist(None, splits=("train",))["train"], TrainConfig())
    if stretched:
        generator = torch.Generator().manual_seed(0)
        train, val = (with_stretched(s, TrainConfig.stretch, generator) for s in (train, val))
    data = sets()
    for checkpoint in argv:
        print(report(checkpoint, data, train, val))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
