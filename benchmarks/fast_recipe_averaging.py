"""Does the end of training hold the fast recipe's sum head back? Weight averaging and batch-norm statistics.

Issue 22 asked whether an exponential moving average (EMA) of the last weights, or batch-norm statistics
recomputed at the end, lift the fast recipe's weak seeds to 99.5% on both heads. For each seed this trains
``digitsum train --recipe fast`` exactly (``config.recipe("fast")``, 2 threads), keeps an EMA of every
weight and buffer after each optimizer step (``torch.optim.swa_utils.AveragedModel``, decay ``DECAY``) in a
step hook, and scores on the MNIST test set with its fixed numbers: the recipe's own weights; the same with
batch-norm statistics recomputed over ``BN_IMAGES`` training images (no augmentation, cumulative average);
the EMA weights; the EMA with recomputed statistics. A probe for benchmarks/fast_recipe_probes.md, not in
run_all (its answer did not change the recipe).

    python benchmarks/fast_recipe_averaging.py SEED [SEED ...] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from digitsum.checkpoint import load_checkpoint
from digitsum.config import model_for, recipe
from digitsum.data import load_mnist
from digitsum.evaluate import evaluate
from digitsum.mixture import normalize
from digitsum.training import Hooks, train

DECAY = 0.99  # an EMA over about the last 100 of the recipe's 645 steps
BN_IMAGES, BN_BATCH = 20_000, 500


def recomputed(model: torch.nn.Module, images: torch.Tensor) -> torch.nn.Module:
    """A copy of ``model`` whose batch-norm statistics are the plain average over ``images`` (N, 28, 28) uint8."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average
    model.train()
    numbers = torch.zeros(BN_BATCH, dtype=torch.int64)
    with torch.no_grad():
        for chunk in normalize(images).split(BN_BATCH):
            model(chunk, numbers[: len(chunk)])
    return model.eval()


def probe(seed: int, data_dir: str | None) -> dict[str, tuple[float, float]]:
    cfg = recipe("fast", seed=seed, threads=2)
    ema: list[AveragedModel] = []

    def on_step(step) -> None:
        if not ema:
            ema.append(AveragedModel(step.model, multi_avg_fn=get_ema_multi_avg_fn(DECAY), use_buffers=True))
        ema[0].update_parameters(step.model)

    data = load_mnist(data_dir, splits=("train", "test"))
    with tempfile.TemporaryDirectory() as out:
        train(model_for(cfg), cfg, out, data_dir, hooks=Hooks(on_step=on_step))
        own = load_checkpoint(out).model.eval()
    averaged = ema[0].module.eval()
    images = data["train"].images[:BN_IMAGES]
    models = {"the recipe's weights": own, "+ batch norm recomputed": recomputed(own, images),
              f"EMA {DECAY}": averaged, f"EMA {DECAY} + batch norm recomputed": recomputed(averaged, images)}
    with torch.inference_mode():
        scores = {name: evaluate(m, data["test"]) for name, m in models.items()}
    return {name: (m["digit_accuracy"], m["sum_accuracy"]) for name, m in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="+")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    results = {seed: probe(seed, args.data_dir) for seed in args.seeds}
    names = list(next(iter(results.values())))
    print("| seed | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    for seed, per in results.items():
        print(f"| {seed} | " + " | ".join(f"{100 * d:.2f} / {100 * s:.2f}" for d, s in per.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
