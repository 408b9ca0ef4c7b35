"""The default recipe's accuracy choices, each against its alternative, over several seeds.

Each variant is the default recipe (``TrainConfig()``, ``ModelConfig()``) with one choice undone,
trained from scratch for every seed (2 torch threads) and scored on:

* the MNIST test set (digit, sum, consistency),
* real handwriting from other writers: USPS test and optdigits (evaluation sets: recipe choices
  are compared on them, never trained, validated or selected on),
* the share of Omniglot's non-Latin characters the verdict flags, and of MNIST test digits it keeps.

Reported: the mean over seeds with its min-max. A full run trains variants x seeds models (about
a hundred seconds each on 2 cores); ``--quick`` trains tiny ones.

    python benchmarks/choices.py [--quick] [--seeds 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import handwriting
from digitsum.config import ModelConfig, TrainConfig
from digitsum.predict import load_model
from digitsum.training import train

SEEDS = 3
QUICK = {"epochs": 1, "limit": 2000, "val_size": 1000}
VARIANTS = {  # name -> (TrainConfig changes, ModelConfig changes)
    "default": ({}, {}),
    "agreement term with a detached target": ({"detach_target": True}, {}),
    "no stretching (stretch 0)": ({"stretch": 0.0}, {}),
    "no verdict head, no non-digits": ({"negatives": 0.0}, {"verdict": False}),
}


def score(run: Path, limit: int | None) -> dict:
    """MNIST test figures (from the run), USPS test and optdigits accuracy, and the verdict's shares."""
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    predictor = load_model(run)
    out = {"digit": metrics["digit_accuracy"], "sum": metrics["sum_accuracy"], "consistency": metrics["consistency"]}
    for name, digits in (("USPS test", handwriting.usps(split="test")), ("optdigits", handwriting.optdigits())):
        images, labels = digits.images[:limit], digits.labels[:limit]
        predictions = predictor.predict_batch(list(images), [0] * len(labels))
        out[name] = float(np.mean([p.digit == y for p, y in zip(predictions, labels, strict=True)]))
    if "is_digit_rate" in metrics:
        alphabets = handwriting.omniglot()
        files = [f for name, fs in alphabets.items() if name != handwriting.LATIN for f in fs[:limit]]
        out["kept"] = metrics["is_digit_rate"]
        out["flagged"] = 1 - float(np.mean([p.is_digit for p in predictor.predict_batch(files, [0] * len(files))]))
    return out


def measure(seeds: int, data_dir: str | None, quick: bool) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for name, (train_changes, model_changes) in VARIANTS.items():
        results[name] = []
        for seed in range(seeds):
            cfg = dataclasses.replace(TrainConfig(), seed=seed, threads=2, **train_changes, **(QUICK if quick else {}))
            with tempfile.TemporaryDirectory(prefix="digitsum-choices-") as out:
                train(ModelConfig(**model_changes), cfg, out, data_dir=data_dir)
                results[name].append(score(Path(out), 200 if quick else None))
    return results


def spread(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f})"


def render(results: dict[str, list[dict]], command: str, seeds: int) -> str:
    columns = [("digit", "MNIST digit"), ("sum", "MNIST sum"), ("consistency", "consistency"),
               ("USPS test", "USPS test digit"), ("optdigits", "optdigits digit"),
               ("kept", "MNIST kept as digits"), ("flagged", "Omniglot non-Latin flagged")]
    lines = ["## The default's accuracy choices, over seeds", "",
             f"Measured by `{command}`: each variant trained from scratch with seeds 0-{seeds - 1} on 2 threads; the "
             "mean over seeds (min-max). USPS and optdigits are read through the public API; recipe choices are "
             "compared on them, never trained, validated or selected on.", "",
             "| variant | " + " | ".join(title for _, title in columns) + " |",
             "| --- |" + " ---: |" * len(columns)]
    for name, runs in results.items():
        cells = [spread([r[key] for r in runs]) if all(key in r for r in runs) else "" for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, seeds: int = SEEDS) -> str:
    before = torch.get_num_threads()
    try:
        results = measure(1 if quick else seeds, data_dir, quick)
    finally:
        torch.set_num_threads(before)
    flags = " --quick" if quick else (f" --seeds {seeds}" if seeds != SEEDS else "")
    return render(results, f"python benchmarks/choices.py{flags}", 1 if quick else seeds)


def main(argv: list[str] | None = None) -> int:
    from run_all import add_bench_flags

    parser = add_bench_flags(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per variant (default: {SEEDS})")
    args = parser.parse_args(argv)
    print(run(args.quick, args.data_dir, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
