"""Does a wider network carry the fast recipe over 99.5% on every seed, and at what cost in time?

Issue 22 allows "a smaller or different network for this recipe". For each third-convolution width
(``ModelConfig.conv3``: 64 is the recipe's network) and each seed this trains ``digitsum train --recipe
fast`` exactly (``config.recipe("fast")``, in this process, 2 threads by default), scores every epoch's
weights on the MNIST test set with its fixed numbers (in an epoch hook, outside the timed part), and
records the epoch the run kept (the best by validation, as ``digitsum train`` keeps it), so that both the
last epoch's figures and the kept epoch's are in one table. The notebook replica's 10 epochs are trained
in the same run for the same seeds, so that the time is a ratio to it (ratio of the medians). Run it once
as this CPU runs and once under a lower capability (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``):
the header line names the capability torch used. A probe for benchmarks/fast_recipe_probes.md, not in
run_all (its answer did not change the recipe).

    python benchmarks/fast_recipe_networks.py [--conv3 64 128] [--seeds 5] [--threads 2] [--quick] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import replace

import torch

from bench_recipe import replica_seconds
from bench_time_to_accuracy import score
from digitsum.config import model_for, recipe
from digitsum.data import load_mnist
from digitsum.evaluate import fixed_test_mixture
from digitsum.training import Hooks, train
from notebook import EPOCHS
from summary import spread, worst_seed

QUICK = {"limit": 2000, "epochs": 1, "val_size": 1000, "test": 1000}  # a smoke run, not a measurement


def run_seed(conv3: int, seed: int, threads: int, data_dir: str | None, test_mix, quick: dict) -> dict:
    """One ``--recipe fast`` run with a ``conv3``-channel third convolution: per epoch its test (digit, sum), the
    epoch it kept, its training seconds."""
    cfg = recipe("fast", seed=seed, threads=threads, **{k: quick[k] for k in ("limit", "epochs", "val_size")
                                                       if k in quick})
    epochs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out:
        metrics = train(replace(model_for(cfg), conv3=conv3), cfg, out, data_dir=data_dir,
                        hooks=Hooks(on_epoch=lambda record, model: epochs.append(
                            score(model, test_mix, quick.get("test")))))
    return {"epochs": epochs, "kept": metrics["best_epoch"], "seconds": metrics["train_seconds"]}


def worst(runs: list[dict], which) -> str:
    """The lowest head over the seeds' ``which(run)`` (digit, sum) figures, with its seed and head."""
    return worst_seed([which(run) for run in runs])


def render(results: dict[int, list[dict]], replica: list[float], replica_epochs: int, threads: int,
           command: str) -> str:
    capability = torch.backends.cpu.get_cpu_capability()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "not set")
    seeds = len(next(iter(results.values())))
    base = statistics.median(replica)
    lines = [
        f"Measured by `{command}`: {threads} torch threads, torch CPU capability {capability}, ONEDNN_MAX_CPU_ISA "
        f"{isa}; the notebook replica's {replica_epochs} epochs {spread(replica)} s in the same run (the same seeds). "
        "Test digit / sum of the last epoch's weights per seed; the kept epoch is the one `digitsum train` keeps "
        "(the best by validation).",
        "",
        "| conv3 | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | worst head, last epoch | worst head, kept "
        "epoch (epochs kept) | training seconds | relative to the replica |",
        "| ---: |" + " ---: |" * (seeds + 4),
    ]
    for conv3, runs in results.items():
        cells = [f"{100 * r['epochs'][-1][0]:.2f} / {100 * r['epochs'][-1][1]:.2f}" for r in runs]
        kept = ", ".join(str(r["kept"]) for r in runs)
        seconds = [r["seconds"] for r in runs]
        lines.append(f"| {conv3} | " + " | ".join(cells) + f" | {worst(runs, lambda r: r['epochs'][-1])} | "
                     f"{worst(runs, lambda r: r['epochs'][r['kept'] - 1])} ({kept}) | {spread(seconds)} | "
                     f"{statistics.median(seconds) / base:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conv3", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run at tiny size, not a measurement")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quick = QUICK if args.quick else {}
    test_mix = fixed_test_mixture(load_mnist(args.data_dir, splits=("test",))["test"])
    results = {conv3: [run_seed(conv3, seed, args.threads, args.data_dir, test_mix, quick)
                       for seed in range(args.seeds)] for conv3 in args.conv3}
    replica = replica_seconds(args.data_dir, args.seeds, quick)
    flags = " ".join(["--conv3", *map(str, args.conv3), "--seeds", str(args.seeds), "--threads", str(args.threads)]
                     + (["--quick"] if args.quick else []))
    command = f"python benchmarks/fast_recipe_networks.py {flags}"
    print(render(results, replica, quick.get("epochs", EPOCHS), args.threads, command), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
