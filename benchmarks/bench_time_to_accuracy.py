"""Time to accuracy, the headline: the notebook replica, digitsum's default recipe and its fast recipe.

Each recipe trains from scratch for every seed (5 by default) in one process with the same torch
thread count, and is scored on the 10,000 MNIST test images with their fixed numbers after every
quarter of every epoch (``POINTS`` a epoch), all three at the same granularity; scoring is outside
the timed part. The notebook's seconds are its training loop's; digitsum's are those
``digitsum.training.train`` reports (``StepDone.seconds``, hook time excluded), with
``config.recipe``'s values, so the figures are exactly what ``digitsum train [--recipe fast]`` does.
A "time to" is the cumulative training time of the first scored point at which digit AND sum reach
the threshold; across seeds the median with its min-max, and the ratio of the notebook's median to
digitsum's.

    python benchmarks/bench_time_to_accuracy.py [--quick] [--data-dir DIR] [--threads N]
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile

import torch

from digitsum.config import model_for, recipe
from digitsum.data import load_mnist
from digitsum.evaluate import accuracy, fixed_test_mixture, infer
from digitsum.mixture import split_train_val
from digitsum.training import Hooks, train
from notebook import EPOCHS, notebook_loader, run_epoch, seed_model_and_optimizer
from summary import mean_range, pct, spread, worst_seed

SEEDS = 5  # the fast recipe is to reach 99.5% for every one of seeds 0-4
POINTS = 4  # scored after every quarter of an epoch
THRESHOLDS = (0.98, 0.99, 0.995)
RECIPES = ("notebook replica", "digitsum default", "digitsum fast")
QUICK = {"limit": 2000, "epochs": 2, "test": 2000, "val_size": 1000, "seeds": 1}  # a smoke run, not a measurement


@dataclasses.dataclass
class Point:
    """A scored point: epochs done, cumulative training seconds, test accuracies."""

    epoch: float  # 2.75: three quarters into epoch 3
    seconds: float
    digit: float
    sum: float


def score(model, test_mix, stop: int | None) -> tuple[float, float]:
    """(digit, sum) accuracy on the first ``stop`` items of the fixed test mixture."""
    out = infer(model, test_mix, stop=stop)
    n = len(out.digits)
    return accuracy(out.digits, test_mix.labels[:n]), accuracy(out.sums, (test_mix.labels + test_mix.numbers)[:n])


def time_to(points: list[Point], target: float) -> Point | None:
    """The first point whose digit and sum accuracy both reach ``target``."""
    return next((p for p in sorted(points, key=lambda p: p.seconds) if p.digit >= target and p.sum >= target), None)


def notebook_points(images, labels, epochs: int, seed: int, test_mix, stop) -> list[Point]:
    """The replica, scored after every quarter epoch."""
    model, opt = seed_model_and_optimizer(seed)
    loader = notebook_loader(images, labels, seed)
    steps, points, seconds = len(loader), [], 0.0
    for epoch in range(epochs):
        batches = iter(loader)
        for quarter in range(POINTS):
            take = steps * (quarter + 1) // POINTS - steps * quarter // POINTS
            seconds += run_epoch(model, opt, batches, max_steps=take)
            points.append(Point(epoch + (quarter + 1) / POINTS, seconds, *score(model, test_mix, stop)))
    return points


def digitsum_points(name: str, seed: int, threads: int, limit: int, data_dir, test_mix, stop,
                    quick: dict | None) -> list[Point]:
    """digitsum's ``name`` recipe ("default" or "fast"), scored after every quarter epoch."""
    cfg = dataclasses.replace(recipe(name), seed=seed, threads=threads, limit=limit)
    if quick:
        cfg = dataclasses.replace(cfg, epochs=quick["epochs"], val_size=quick["val_size"])
    points, done_seconds = [], [0.0]  # the training seconds of the epochs done, cumulative

    def on_step(done):  # the first POINTS - 1 quarters of each epoch
        quarters = [done.steps * q // POINTS for q in range(1, POINTS)]
        if done.step in quarters:
            epoch = len(done_seconds) - 1 + (quarters.index(done.step) + 1) / POINTS
            points.append(Point(epoch, done_seconds[-1] + done.seconds, *score(done.model, test_mix, stop)))

    def on_epoch(record, model):  # and its end
        done_seconds.append(done_seconds[-1] + record.seconds)
        points.append(Point(record.epoch, done_seconds[-1], *score(model, test_mix, stop)))

    with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out:
        train(model_for(cfg), cfg, out, data_dir=data_dir, hooks=Hooks(on_step=on_step, on_epoch=on_epoch))
    return points


def measure(data_dir: str | None = None, threads: int = 0, quick: dict | None = None) -> dict:
    """recipe -> [points of each seed]; and the setup."""
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    data = load_mnist(data_dir)
    test_mix, stop = fixed_test_mixture(data["test"]), (quick or {}).get("test")
    limit = (quick or {}).get("limit", 0)
    images, labels = data["train"].images, data["train"].labels
    if limit:
        images, labels = images[:limit], labels[:limit]
    seeds = range((quick or {}).get("seeds", SEEDS))
    epochs = quick["epochs"] if quick else EPOCHS
    results = {"notebook replica": [notebook_points(images, labels, epochs, s, test_mix, stop) for s in seeds]}
    for name in ("default", "fast"):
        results[f"digitsum {name}"] = [digitsum_points(name, s, threads, limit, data_dir, test_mix, stop, quick)
                                       for s in seeds]
    n_digitsum = len(split_train_val(data["train"], recipe("default"))[0]) if not limit else limit
    setup = {"threads": threads, "seeds": len(seeds), "notebook_images": len(images),
             "digitsum_images": n_digitsum, "test_images": stop or len(test_mix)}
    return {"runs": results, "setup": setup}


def times_to(runs: list[list[Point]], target: float) -> tuple[list[float], int]:
    """(seconds to ``target`` of the seeds that reached it, how many did not)."""
    reached = [time_to(points, target) for points in runs]
    return [p.seconds for p in reached if p], sum(p is None for p in reached)


def when(runs: list[list[Point]], target: float) -> str:
    seconds, missed = times_to(runs, target)
    if not seconds:
        return "never"
    epochs = [time_to(points, target).epoch for points in runs if time_to(points, target)]
    text = f"{spread(seconds)} s (epoch {spread(epochs, '{:.2f}')})"
    return text + (f"; {missed} seed(s) never" if missed else "")


def worst(runs: list[list[Point]]) -> str:
    """The seed whose final point has the lowest head: that accuracy, the seed and the head."""
    return worst_seed([(points[-1].digit, points[-1].sum) for points in runs])


def render(result: dict, command: str) -> str:
    runs, setup = result["runs"], result["setup"]
    notebook = runs["notebook replica"]
    final = [points[-1] for points in notebook]
    notebook_final = min(statistics.mean(p.digit for p in final), statistics.mean(p.sum for p in final))
    replica_seconds = statistics.median(p.seconds for p in final)
    lines = [
        "## Time to accuracy",
        "",
        f"Measured by `{command}`: {setup['threads']} torch threads; each recipe trained from scratch for "
        f"{setup['seeds']} seed(s) and scored on {setup['test_images']:,} MNIST test images with their fixed numbers "
        f"after every quarter of every epoch (all three recipes at the same granularity; scoring excluded from the "
        f"seconds). Notebook replica: per-item Dataset + shuffled DataLoader, seed network, Adam lr 0.01, batch 100, "
        f"on {setup['notebook_images']:,} images. digitsum: `digitsum train` (default) and "
        f"`digitsum train --recipe fast`, on {setup['digitsum_images']:,} images. Accuracies are the mean over "
        "seeds (min-max); seconds the median (min-max).",
        "",
        "| | " + " | ".join(RECIPES) + " |",
        "| --- |" + " ---: |" * len(RECIPES),
    ]

    def row(title: str, cell) -> str:
        return f"| {title} | " + " | ".join(cell(runs[name]) for name in RECIPES) + " |"

    lines += [
        row("epochs", lambda r: f"{r[0][-1].epoch:g}"),
        row("final test digit", lambda r: mean_range([p[-1].digit for p in r])),
        row("final test sum", lambda r: mean_range([p[-1].sum for p in r])),
        row("worst seed: the lower of its final digit and sum", worst),
        row("training seconds, all epochs", lambda r: spread([p[-1].seconds for p in r])),
        row("training time, relative to the notebook replica's (ratio of the medians)",
            lambda r: f"{statistics.median(p[-1].seconds for p in r) / replica_seconds:.2f}x"),
    ]
    for target in THRESHOLDS:
        lines.append(row(f"time to >= {pct(target)} digit and sum", lambda r, t=target: when(r, t)))
    lines.append(row(f"time to the notebook's final accuracy ({pct(notebook_final)}, the lower of its mean digit "
                     "and sum)", lambda r: when(r, notebook_final)))
    lines += ["", "Speed-up of each digitsum recipe over the notebook replica (ratio of the median times; "
              "the same quarter-epoch scoring for all):", "", "| threshold | digitsum default | digitsum fast |",
              "| --- | ---: | ---: |"]
    for title, target in [(pct(t), t) for t in THRESHOLDS] + [("the notebook's final accuracy", notebook_final)]:
        base, _ = times_to(notebook, target)
        cells = []
        for name in ("digitsum default", "digitsum fast"):
            mine, _ = times_to(runs[name], target)
            if not mine:
                cells.append("not reached")
            elif not base:
                cells.append("the notebook never gets there")
            else:
                cells.append(f"{statistics.median(base) / statistics.median(mine):.1f}x")
        lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 0) -> str:
    """Run the benchmark (``quick``: a smoke run at tiny size) and return its Markdown section."""
    flags = (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    result = measure(data_dir, threads, QUICK if quick else None)
    return render(result, f"python benchmarks/bench_time_to_accuracy.py{flags}")


if __name__ == "__main__":
    from run_all import standalone

    sys.exit(standalone(run, __doc__.splitlines()[0]))
