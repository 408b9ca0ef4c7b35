"""Fit the verdict's rule (src/digitsum/novelty.py) for a finished run or the bundled model, as training does.

``digitsum train`` fits it at the end of every run; this refits it for a checkpoint trained before the rule
existed (the bundled model's novelty files were written by ``python benchmarks/fit_novelty.py``), from the same
data training uses: the run's training images (Gaussians) and its validation split (standardisation, threshold).

    python benchmarks/fit_novelty.py [RUN] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digitsum.checkpoint import bundled_path, load_checkpoint
from digitsum.config import TrainConfig
from digitsum.data import load_mnist
from digitsum.mixture import split_train_val
from digitsum.novelty import fit_novelty


def fit_run(run: Path, data_dir: str | None = None) -> Path:
    """Fit and write ``run``'s novelty files; returns the folder."""
    checkpoint = load_checkpoint(run)
    train_cfg = checkpoint.config.get("train", {})
    cfg = TrainConfig(limit=train_cfg.get("limit", 0), val_size=train_cfg.get("val_size", TrainConfig.val_size))
    train, val = split_train_val(load_mnist(data_dir, splits=("train",))["train"], cfg)
    novelty = fit_novelty(checkpoint.model, train.images, train.labels, val.images,
                          fitted_on=f"{len(train.labels)} MNIST training images; the validation split")
    folder = checkpoint.path.parent
    novelty.save(folder)
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default=None, help="run directory (default: the bundled model)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    print(f"wrote the novelty files in {fit_run(Path(args.run) if args.run else bundled_path(), args.data_dir)}")
    sys.exit(0)
