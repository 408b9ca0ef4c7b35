"""Time to accuracy, the headline: the notebook replica against digitsum's default recipe.

Both train in one process with the same torch thread count. After every epoch each model is
scored on the MNIST test set with its fixed numbers (``digitsum.evaluate.infer``); scoring is
outside the timed part. The notebook's seconds are its training loop's; digitsum's are
``EpochRecord.seconds`` from ``digitsum.train.train`` with ``TrainConfig()``'s defaults, so the
figure is exactly what ``digitsum train`` does. Accuracies are read at epoch ends, so a "time to"
is the cumulative training time of the first epoch that reaches the target on digit AND sum.

    python benchmarks/bench_time_to_accuracy.py [--quick] [--data-dir DIR] [--threads N]
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile

import torch

from digitsum.config import ModelConfig, TrainConfig
from digitsum.data import load_mnist
from digitsum.evaluate import accuracy, fixed_test_mixture, infer
from digitsum.runtime import set_threads
from digitsum.train import train
from notebook import EPOCHS, train_notebook

TARGETS = {0.990: "", 0.995: " (target <= 180 s on 2 cores)"}  # accuracy -> what the README promises
QUICK = {"limit": 2000, "epochs": 2, "test": 2000, "val_size": 1000}  # a smoke run, not a measurement


@dataclasses.dataclass
class Point:
    """One epoch's end: cumulative training seconds and test accuracies."""

    epoch: int
    seconds: float  # cumulative, training only
    digit: float
    sum: float


def score(model, test_mix, stop: int | None) -> tuple[float, float]:
    """(digit, sum) accuracy on the first ``stop`` items of the fixed test mixture."""
    out = infer(model, test_mix, stop=stop)
    n = len(out.digits)
    return accuracy(out.digits, test_mix.labels[:n]), accuracy(out.sums, (test_mix.labels + test_mix.numbers)[:n])


def time_to(history: list[Point], digit: float, total: float) -> Point | None:
    """The first epoch whose digit accuracy >= ``digit`` and sum accuracy >= ``total``."""
    return next((p for p in history if p.digit >= digit and p.sum >= total), None)


def measure(data_dir: str | None = None, threads: int = 0, limit: int = 0, notebook_epochs: int = EPOCHS,
            test: int = 0, train_cfg: TrainConfig | None = None) -> dict:
    """Train both; returns {"notebook": [Point], "digitsum": [Point], "setup": dict}.

    ``train_cfg`` is digitsum's recipe (default: ``TrainConfig()``; ``threads`` and ``limit`` are
    applied to it). ``limit`` (training images) and ``test`` (test images) shrink the run for smoke
    tests; 0 means all, as the benchmark runs them.
    """
    set_threads(threads)
    threads = torch.get_num_threads()
    data = load_mnist(data_dir)
    test_mix, stop = fixed_test_mixture(data["test"]), test or None
    train_split = data["train"]
    images, labels = train_split.images, train_split.labels
    if limit:
        images, labels = images[:limit], labels[:limit]

    notebook: list[Point] = []

    def notebook_epoch(epoch, seconds, model):
        total = seconds + (notebook[-1].seconds if notebook else 0.0)
        notebook.append(Point(epoch, total, *score(model, test_mix, stop)))

    train_notebook(images, labels, notebook_epochs, on_epoch=notebook_epoch)

    cfg = dataclasses.replace(train_cfg or TrainConfig(), threads=threads, limit=limit)
    ours: list[Point] = []

    def digitsum_epoch(record, model):
        total = record.seconds + (ours[-1].seconds if ours else 0.0)
        ours.append(Point(record.epoch, total, *score(model, test_mix, stop)))

    with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out:
        train(ModelConfig(), cfg, out, data_dir=data_dir, on_epoch=digitsum_epoch)
    n_digitsum = len(train_split.images) - cfg.val_size  # split_train_val holds the last val_size out
    setup = {"threads": threads, "notebook_images": len(images), "test_images": stop or len(test_mix),
             "digitsum_images": min(n_digitsum, limit) if limit else n_digitsum, "train_config": cfg.to_dict()}
    return {"notebook": notebook, "digitsum": ours, "setup": setup}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def when(point: Point | None) -> str:
    return f"{point.seconds:.1f} s (epoch {point.epoch})" if point else "not reached"


def render(result: dict, command: str) -> str:
    """The Markdown section: per-epoch table for both, then the summary."""
    nb, ours, setup = result["notebook"], result["digitsum"], result["setup"]
    cfg = setup["train_config"]
    lines = [
        "## Time to accuracy",
        "",
        f"Measured by `{command}`: {setup['threads']} torch threads for both; accuracies on "
        f"{setup['test_images']:,} MNIST test images with their fixed numbers, after every epoch; seconds are "
        "cumulative training time (evaluation excluded). Notebook replica: per-item Dataset + shuffled "
        f"DataLoader, seed network, Adam lr 0.01, batch 100, {len(nb)} epochs on {setup['notebook_images']:,} "
        f"images. digitsum: `digitsum train` defaults (batch {cfg['batch_size']}, AdamW one-cycle lr {cfg['lr']}, "
        f"max shift {cfg['max_shift']}, {cfg['epochs']} epochs) on {setup['digitsum_images']:,} images.",
        "",
        "| epoch | notebook s | notebook digit | notebook sum | digitsum s | digitsum digit | digitsum sum |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i in range(max(len(nb), len(ours))):
        cells = [str(i + 1)]
        for hist in (nb, ours):
            p = hist[i] if i < len(hist) else None
            cells += [f"{p.seconds:.1f}", pct(p.digit), pct(p.sum)] if p else ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    final = nb[-1]
    match = time_to(ours, final.digit, final.sum)
    speedup = f"{final.seconds / match.seconds:.1f}x" if match else "n/a"
    lines += [
        "",
        "| | notebook replica | digitsum default |",
        "| --- | ---: | ---: |",
        f"| final test digit / sum accuracy | {pct(final.digit)} / {pct(final.sum)} | "
        f"{pct(ours[-1].digit)} / {pct(ours[-1].sum)} |",
        f"| training time, all epochs | {final.seconds:.1f} s | {ours[-1].seconds:.1f} s |",
        f"| time to the notebook's final accuracy | {final.seconds:.1f} s | {when(match)} |",
        f"| speed-up to the notebook's final accuracy (target >= 10x) | 1x | {speedup} |",
    ]
    for target, promise in TARGETS.items():
        lines.append(f"| time to >= {pct(target)} digit and sum{promise} | {when(time_to(nb, target, target))} | "
                     f"{when(time_to(ours, target, target))} |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 0) -> str:
    """Run the benchmark (``quick``: a smoke run at tiny size) and return its Markdown section."""
    flags = (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    command = f"python benchmarks/bench_time_to_accuracy.py{flags}"
    if quick:
        cfg = dataclasses.replace(TrainConfig(), epochs=QUICK["epochs"], val_size=QUICK["val_size"])
        result = measure(data_dir, threads, QUICK["limit"], QUICK["epochs"], QUICK["test"], cfg)
    else:
        result = measure(data_dir, threads)
    return render(result, command)


if __name__ == "__main__":
    from run_all import standalone

    sys.exit(standalone(run, __doc__.splitlines()[0]))
