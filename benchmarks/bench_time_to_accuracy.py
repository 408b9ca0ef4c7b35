"""Time to accuracy, the headline: the notebook replica against digitsum's default recipe.

Both train in one process with the same torch thread count. After every epoch each model is
scored on the MNIST test set with its fixed numbers (``digitsum.evaluate.infer``); scoring is
outside the timed part. digitsum is also scored after every tenth of its first epoch (through
``train``'s ``on_step`` hook, whose time ``train`` excludes from the epoch's seconds): most of a
fast recipe's accuracy comes within that epoch. The notebook's seconds are its training loop's;
digitsum's are ``EpochRecord.seconds`` and ``StepDone.seconds`` from ``digitsum.training.train`` with
``TrainConfig()``'s defaults, so the figure is exactly what ``digitsum train`` does. A "time to"
is the cumulative training time of the first scored point that reaches the target on digit AND
sum.

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
from digitsum.mixture import split_train_val
from digitsum.training import train
from notebook import EPOCHS, train_notebook

TARGETS = {0.990: "", 0.995: " (target <= 180 s on 2 cores)"}  # accuracy -> what the README promises
FIRST_EPOCH_POINTS = 10  # digitsum is scored after every tenth of its first epoch
QUICK = {"limit": 2000, "epochs": 2, "test": 2000, "val_size": 1000}  # a smoke run, not a measurement


@dataclasses.dataclass
class Point:
    """A scored point: cumulative training seconds and test accuracies."""

    epoch: float  # epochs done: 3 is the end of epoch 3, 0.4 four tenths into the first
    seconds: float  # cumulative, training only
    digit: float
    sum: float


def score(model, test_mix, stop: int | None) -> tuple[float, float]:
    """(digit, sum) accuracy on the first ``stop`` items of the fixed test mixture."""
    out = infer(model, test_mix, stop=stop)
    n = len(out.digits)
    return accuracy(out.digits, test_mix.labels[:n]), accuracy(out.sums, (test_mix.labels + test_mix.numbers)[:n])


def time_to(history: list[Point], digit: float, total: float) -> Point | None:
    """The first point whose digit accuracy >= ``digit`` and sum accuracy >= ``total``."""
    return next((p for p in sorted(history, key=lambda p: p.seconds) if p.digit >= digit and p.sum >= total), None)


def measure(data_dir: str | None = None, threads: int = 0, limit: int = 0, notebook_epochs: int = EPOCHS,
            test: int = 0, train_cfg: TrainConfig | None = None) -> dict:
    """Train both; returns {"notebook": [Point], "digitsum": [Point], "first_epoch": [Point], "setup": dict}.

    "first_epoch" holds digitsum's points within its first epoch, "digitsum" its epoch ends.

    ``train_cfg`` is digitsum's recipe (default: ``TrainConfig()``; ``threads`` and ``limit`` are
    applied to it). ``limit`` (training images) and ``test`` (test images) shrink the run for smoke
    tests; 0 means all, as the benchmark runs them.
    """
    if threads:
        torch.set_num_threads(threads)
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
    first: list[Point] = []

    def digitsum_epoch(record, model):
        total = record.seconds + (ours[-1].seconds if ours else 0.0)
        ours.append(Point(record.epoch, total, *score(model, test_mix, stop)))

    def digitsum_step(done):
        every = max(1, done.steps // FIRST_EPOCH_POINTS)
        if not ours and done.step % every == 0 and done.step < done.steps:  # within the first epoch
            first.append(Point(done.step / done.steps, done.seconds, *score(done.model, test_mix, stop)))
            done.model.train()

    with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out:
        train(ModelConfig(), cfg, out, data_dir=data_dir, on_epoch=digitsum_epoch, on_step=digitsum_step)
    setup = {"threads": threads, "notebook_images": len(images), "test_images": stop or len(test_mix),
             "digitsum_images": len(split_train_val(train_split, cfg)[0]), "train_config": cfg.to_dict()}
    return {"notebook": notebook, "digitsum": ours, "first_epoch": first, "setup": setup}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def when(point: Point | None) -> str:
    if not point:
        return "not reached"
    where = f"epoch {int(point.epoch)}" if point.epoch == int(point.epoch) else f"{point.epoch:.2f} of epoch 1"
    return f"{point.seconds:.1f} s ({where})"


def render(result: dict, command: str) -> str:
    """The Markdown section: per-epoch table for both, digitsum's first epoch, then the summary."""
    nb, ours, first, setup = result["notebook"], result["digitsum"], result["first_epoch"], result["setup"]
    cfg = setup["train_config"]
    lines = [
        "## Time to accuracy",
        "",
        f"Measured by `{command}`: {setup['threads']} torch threads for both; accuracies on "
        f"{setup['test_images']:,} MNIST test images with their fixed numbers, after every epoch (and for "
        f"digitsum after every tenth of its first epoch); seconds are cumulative training time (evaluation "
        f"excluded). Notebook replica: per-item Dataset + shuffled DataLoader, seed network, Adam lr 0.01, "
        f"batch 100, {len(nb)} epochs on {setup['notebook_images']:,} images. digitsum: `digitsum train` "
        f"defaults (batch {cfg['batch_size']}, AdamW one-cycle lr {cfg['lr']} warming up for {cfg['warmup']:g} of the "
        f"run, max shift {cfg['max_shift']}, {cfg['epochs']} epochs) on {setup['digitsum_images']:,} images.",
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
    lines += ["", "digitsum's first epoch:", "", "| epochs done | digitsum s | digitsum digit | digitsum sum |",
              "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {p.epoch:.2f} | {p.seconds:.2f} | {pct(p.digit)} | {pct(p.sum)} |" for p in first + ours[:1]]
    final = nb[-1]
    match = time_to(first + ours, final.digit, final.sum)
    speedup = f"{final.seconds / match.seconds:.1f}x" if match else "n/a"
    own = time_to(nb, final.digit, final.sum)  # the notebook's first epoch end at its final accuracy
    lines += [
        "",
        "| | notebook replica | digitsum default |",
        "| --- | ---: | ---: |",
        f"| final test digit / sum accuracy | {pct(final.digit)} / {pct(final.sum)} | "
        f"{pct(ours[-1].digit)} / {pct(ours[-1].sum)} |",
        f"| training time, all epochs | {final.seconds:.1f} s | {ours[-1].seconds:.1f} s |",
        f"| time to the notebook's final accuracy | {final.seconds:.1f} s (all epochs) | {when(match)} |",
        f"| speed-up to the notebook's final accuracy (target >= 10x) | 1x | {speedup} |",
        f"| first time the notebook itself is at that accuracy (epoch ends) | {when(own)} | "
        f"{f'{own.seconds / match.seconds:.1f}x faster' if match else 'n/a'} |",
    ]
    for target, promise in TARGETS.items():
        lines.append(f"| time to >= {pct(target)} digit and sum{promise} | {when(time_to(nb, target, target))} | "
                     f"{when(time_to(first + ours, target, target))} |")
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
