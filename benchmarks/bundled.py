"""The bundled model's report card on the MNIST test set, as ``digitsum evaluate --json`` gives it.

    python benchmarks/bundled.py [--data-dir DIR]
"""

from __future__ import annotations

import sys

from digitsum.checkpoint import load_checkpoint
from digitsum.data import load_mnist
from digitsum.evaluate import evaluate


def run(quick: bool = False, data_dir: str | None = None) -> str:
    """The bundled model's test figures (the same with ``quick``: one evaluation takes seconds)."""
    checkpoint = load_checkpoint()
    m = evaluate(checkpoint.inference_model, load_mnist(data_dir, splits=("test",))["test"], checkpoint.calibration)
    trained = checkpoint.metrics  # the bundled run's metrics.json, as load_checkpoint read it
    train = checkpoint.config.get("train", {})
    rows = [("digit accuracy", m["digit_accuracy"]), ("sum accuracy", m["sum_accuracy"]),
            ("all-pairs sum accuracy", m["all_pairs_sum_accuracy"]), ("consistency", m["consistency"]),
            ("expected calibration error, digit head", m["digit_ece"]),
            ("expected calibration error, sum head", m["sum_ece"])]
    if "is_digit_rate" in m:
        rows.append(("test digits read as digits (is_digit)", m["is_digit_rate"]))
    lines = ["## The bundled model", "",
             "Measured by `python benchmarks/bundled.py` (what `digitsum evaluate --json` prints): the model in "
             f"`src/digitsum/weights/`, trained by `scripts/bundle_model.sh` (`digitsum train --seed "
             f"{train.get('seed', '?')} --threads {train.get('threads', '?')}`: {train.get('epochs', '?')} epochs, "
             f"{trained.get('train_seconds', float('nan')):.1f} s of training, best epoch "
             f"{trained.get('best_epoch', '?')}), on the {m['n']:,} MNIST test images with their fixed numbers "
             f"(all pairs: {m['all_pairs_n']:,}).", "", "| figure | |", "| --- | ---: |"]
    lines += [f"| {name} | {100 * value:.2f}% |" for name, value in rows]
    lines += ["", "Per digit: " + ", ".join(f"{d}: {100 * a:.2f}%" for d, a in m["per_digit_accuracy"].items())
              + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from run_all import plain_main

    sys.exit(plain_main(run, __doc__.splitlines()[0]))
