"""N torchrun processes with one thread each against one process with N threads (and with one).

Every setup runs ``digitsum train`` with ``TrainConfig()``'s defaults (the global batch is the
same, so is the number of optimizer steps) for ``EPOCHS`` epochs, as a child process: ``python -m
digitsum train --threads T``, or ``python -m torch.distributed.run --standalone --nproc-per-node N
-m digitsum train --threads 1`` (gloo on the CPU). The figures are each epoch's training seconds
(``metrics.jsonl``, evaluation excluded), images per second over the whole training split, the
wall time of the whole command (start-up, data, validation and test included) and the test
figures. The setups run in turn, ``TRIALS`` rounds; the table shows the medians.

    python benchmarks/bench_distributed.py [--quick] [--data-dir DIR] [--threads N]

``--threads N``: the cores to use (default: all of this machine's).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from summary import spread

EPOCHS, TRIALS = 1, 3
QUICK = {"limit": 2000, "epochs": 1, "val_size": 1000, "trials": 1}  # a smoke run, not a measurement


@dataclass
class Trial:
    """One training command's figures."""

    epoch_seconds: list[float]  # training only, per epoch
    wall_seconds: float  # the whole command
    images: int  # training images per epoch
    digit: float  # test figures of the best epoch
    sum: float


def train_command(processes: int, threads: int, out: Path, data_dir: str | None, extra: list[str]) -> list[str]:
    """The command line of one setup: ``processes`` ranks of ``threads`` threads each."""
    flags = ["train", "--out", str(out), "--threads", str(threads), *extra]
    flags += ["--data-dir", data_dir] if data_dir else []
    if processes == 1:
        return [sys.executable, "-m", "digitsum", *flags]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
            "-m", "digitsum", *flags]


def run_trial(command: list[str], out: Path) -> Trial:
    """Run one training command; read its run directory."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:  # name the error, not torchrun's closing banner
        lines = result.stderr.strip().splitlines()
        reason = [line for line in lines if "Error" in line or "error:" in line][-1:] or lines[-1:]
        raise RuntimeError(f"{shlex.join(command)} failed (exit {result.returncode}): {reason}")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return Trial([h["seconds"] for h in history], wall, config["data"]["train_images"],
                 metrics["digit_accuracy"], metrics["sum_accuracy"])


def measure(cores: int, data_dir: str | None, extra: list[str], trials: int) -> dict[tuple[int, int], list[Trial]]:
    """{(processes, threads each): trials} for 1 x 1, 1 x ``cores`` and ``cores`` x 1, in turn."""
    results: dict[tuple[int, int], list[Trial]] = {(1, 1): [], (1, cores): [], (cores, 1): []}
    with tempfile.TemporaryDirectory(prefix="digitsum-bench-ddp-") as tmp:
        for trial in range(trials):
            for (processes, threads), trials_so_far in results.items():
                out = Path(tmp) / f"p{processes}-t{threads}-{trial}"
                trials_so_far.append(run_trial(train_command(processes, threads, out, data_dir, extra), out))
    return results


def row(label: str, trials: list[Trial]) -> str:
    seconds = [statistics.median(t.epoch_seconds) for t in trials]  # each round's seconds per epoch
    rates = [trials[0].images / s for s in seconds]
    digit, total = statistics.mean(t.digit for t in trials), statistics.mean(t.sum for t in trials)
    accuracy = f"{100 * digit:.2f}% / {100 * total:.2f}%"
    return (f"| {label} | {spread(seconds)} | {spread(rates, '{:,.0f}')} | "
            f"{spread([t.wall_seconds for t in trials])} | {accuracy} |")


def run(quick: bool = False, data_dir: str | None = None, threads: int = 0) -> str:
    """Run the benchmark (``quick``: a smoke run at tiny size) and return its Markdown section."""
    cores = threads or os.cpu_count() or 1
    flags = (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    if cores < 2:
        return "## Distributed training\n\nSkipped: one core, nothing to split across processes.\n"
    sizes = QUICK if quick else {"limit": 0, "epochs": EPOCHS, "trials": TRIALS}
    extra = ["--epochs", str(sizes["epochs"]), "--limit", str(sizes["limit"])]
    extra += ["--val-size", str(sizes["val_size"])] if "val_size" in sizes else []
    from run_all import load_average

    load = load_average()
    results = measure(cores, data_dir, extra, sizes["trials"])
    base, threaded, ddp = (statistics.median(statistics.median(t.epoch_seconds) for t in trials)
                           for trials in results.values())
    lines = [
        f"## Distributed training: {cores} processes x 1 thread vs 1 process x {cores} threads",
        "",
        f"`python benchmarks/bench_distributed.py{flags}`: `digitsum train` with the default recipe "
        f"({sizes['epochs']} epoch(s){', ' + str(sizes['limit']) + ' images' if sizes['limit'] else ''}), "
        f"{sizes['trials']} round(s): the median (min-max); test accuracy the mean of the rounds (every round trains "
        f"the same seed); load average {load} at the start"
        f"{' (a smoke run, not a measurement)' if quick else ''}.",
        "",
        "| setup | train seconds per epoch | images/s | wall seconds (whole command) | test digit / sum |",
        "| --- | --- | --- | --- | --- |",
        row("1 process x 1 thread", results[1, 1]),
        row(f"1 process x {cores} threads", results[1, cores]),
        row(f"{cores} processes x 1 thread (torchrun, gloo)", results[cores, 1]),
        "",
        f"Training speed-up over 1 process x 1 thread: {base / threaded:.2f}x with {cores} threads, "
        f"{base / ddp:.2f}x with {cores} processes.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from run_all import standalone

    sys.exit(standalone(run, __doc__.splitlines()[0]))
