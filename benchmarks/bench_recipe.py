"""The default's choices, one at a time: what each costs or saves against the alternative.

1. Step time. One training step of the default recipe (batch 128: forward, digitsum's loss,
   backward, AdamW, schedule) against the same step with one choice changed: the second
   convolution 5x5 instead of 3x3; AdamW's fused kernel instead of the multi-tensor one the
   default keeps (the fused one measured no faster); contiguous (NCHW) instead of
   channels-last tensors; batch norm and ReLU before the pooling instead of after it; concat
   instead of product fusion. Variants are timed in interleaved rounds (every variant once
   per round), each round ``STEPS`` steps on real batches after warm-up steps; the figure is
   the median over rounds.
2. Early accuracy. The first epoch of the default recipe and of variants that undo its
   accuracy-per-second choices (concat fusion; a warm-up of 0.25 of the run instead of 0.1;
   the previous default, which undid both and the 3x3 convolution), each scored on the MNIST
   test set after every tenth of the epoch (outside the timed part), for ``SEEDS`` seeds: the
   training seconds to >= 98% digit and sum accuracy, about the notebook's final accuracy.
3. The fast recipe's choices. ``digitsum train --recipe fast`` with one of its choices put back
   to the default's, each for ``SEEDS`` seeds: final test digit and sum, the worst seed, training
   seconds, and their ratio to the notebook replica's 10 epochs trained in the same run (the same
   seeds; ratio of the medians: the ratio moves with the CPU, the seconds with its load).

    python benchmarks/bench_recipe.py [--quick] [--data-dir DIR] [--threads N]
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

import torch
from torch import nn

import machine
from bench_profile import digitsum_step_loss
from bench_time_to_accuracy import Point, score, time_to
from digitsum.config import RECIPES, ModelConfig, TrainConfig, recipe
from digitsum.data import load_mnist
from digitsum.evaluate import fixed_test_mixture
from digitsum.mixture import split_train_val
from digitsum.model import build_model
from digitsum.training import loop
from digitsum.training.distributed import World
from digitsum.training.objective import make_optimizer
from digitsum.training.state import EpochTally, RunState, TrainState
from notebook import EPOCHS, mixture_batches, run_epoch, train_notebook
from summary import mean_range, pct, spread, worst_seed

ROUNDS, STEPS, WARMUP_STEPS = 5, 40, 10
POINTS = 10  # scored after every tenth of the epoch
TARGET = 0.98
SEEDS = 3
QUICK = {"limit": 1500, "rounds": 2, "steps": 3, "warmup": 1, "test": 500, "val_size": 500, "seeds": 1,
         "epochs": 1}


@dataclasses.dataclass(frozen=True)
class Variant:
    """The default recipe with some choices undone."""

    name: str
    fusion: str = "product"
    conv2_kernel: int = 3
    pool_first: bool = True
    channels_last: bool = True
    fused_adamw: bool = False
    warmup: float = TrainConfig.warmup


DEFAULT = Variant("default")
STEP_VARIANTS = [
    DEFAULT,
    Variant("second conv 5x5 (default 3x3)", conv2_kernel=5),
    Variant("AdamW fused (default foreach)", fused_adamw=True),
    Variant("contiguous NCHW (default channels-last)", channels_last=False),
    Variant("batch norm + ReLU before pooling (default after)", pool_first=False),
    Variant("concat fusion (default product)", fusion="concat"),
]
PREVIOUS = Variant("previous default: concat, 5x5, warm-up 0.25", fusion="concat", conv2_kernel=5, warmup=0.25)
EARLY_VARIANTS = [DEFAULT, Variant("concat fusion", fusion="concat"), Variant("warm-up 0.25 of the run", warmup=0.25),
                  PREVIOUS]


def build(v: Variant, cfg: TrainConfig, steps_per_epoch: int):
    """(model, optimizer, schedule) of ``v``, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    model = build_model(ModelConfig(fusion=v.fusion))
    blocks = model.image_branch
    if v.conv2_kernel != 3:
        conv = blocks[1][0]
        blocks[1][0] = nn.Conv2d(conv.in_channels, conv.out_channels, v.conv2_kernel, padding=v.conv2_kernel // 2,
                                 bias=False)
    if not v.pool_first:
        for i in range(3):
            conv, pool, norm, relu = blocks[i]
            blocks[i] = nn.Sequential(conv, norm, relu, pool)
    model = model.to(memory_format=torch.channels_last if v.channels_last else torch.contiguous_format)
    opt, sched = make_optimizer(model, dataclasses.replace(cfg, warmup=v.warmup), steps_per_epoch, v.fused_adamw)
    return model, opt, sched


def step_times(train_mix, cfg: TrainConfig, rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per step of every step variant, per round (interleaved)."""
    steps_per_epoch = train_mix.steps_per_epoch(cfg.batch_size)
    loss = digitsum_step_loss(cfg)
    states = {v.name: (v, *build(v, cfg, steps_per_epoch)) for v in STEP_VARIANTS}
    times: dict[str, list[float]] = {name: [] for name in states}
    for r in range(rounds + 1):  # round 0 warms every variant up
        for name, (v, model, opt, sched) in states.items():
            layout = torch.channels_last if v.channels_last else torch.contiguous_format
            shifts_only = dataclasses.replace(cfg, stretch=0.0, negatives=0.0)
            batches = mixture_batches(train_mix.epoch_batches(r + 1, shifts_only), layout)
            n = warmup if r == 0 else steps
            seconds = run_epoch(model, opt, batches, sched, n, loss)
            if r:
                times[name].append(1000 * seconds / n)
    return times


def early_accuracy(train_mix, test_mix, cfg: TrainConfig, v: Variant, stop: int | None) -> list[Point]:
    """Points of ``v``'s first epoch: every tenth, scored on the test mixture, training seconds cumulative."""
    steps = train_mix.steps_per_epoch(cfg.batch_size)
    model, opt, sched = build(v, cfg, steps)
    points: list[Point] = []

    def on_step(done):
        if done.step % max(1, done.steps // POINTS) == 0 or done.step == done.steps:
            points.append(Point(done.step / done.steps, done.seconds, *score(done.model, test_mix, stop)))

    first_epoch(TrainState(model, opt, sched, RunState(tally=EpochTally.start(torch.device("cpu")))), train_mix, cfg,
                on_step)
    return points


def first_epoch(ts: TrainState, train_mix, cfg: TrainConfig, on_step) -> None:
    """Epoch 1 of ``train_mix`` in this process, with digitsum's own training steps (training/loop.py)."""
    loop.train_steps(loop.Run(None, cfg, World(), train_mix, None, None, {}), ts.model, ts, on_step)


def replica_seconds(data_dir: str | None, seeds: int, quick: dict) -> list[float]:
    """The notebook replica's training seconds, all its epochs (on the first ``limit`` training images in a quick
    run), for each seed."""
    train_split = load_mnist(data_dir, splits=("train",))["train"]
    limit = quick.get("limit") or len(train_split.labels)
    epochs = quick.get("epochs", EPOCHS)
    return [sum(train_notebook(train_split.images[:limit], train_split.labels[:limit], epochs, seed).seconds)
            for seed in range(seeds)]


def fast_choices(data_dir: str | None, seeds: int, quick: dict) -> dict[str, list[dict]]:
    """The fast recipe, and it with each of its choices put back to the default's: per seed, the test figures."""
    import tempfile

    from digitsum.training import train

    fast, default = RECIPES["fast"], TrainConfig()
    variants = {"fast": {}}
    variants.update({f"{key} {getattr(default, key):g} (fast: {value:g})": {key: getattr(default, key)}
                     for key, value in fast.items() if key not in ("epochs", "negatives")})
    results = {}
    for name, change in variants.items():
        results[name] = []
        for seed in range(seeds):
            cfg = recipe("fast", seed=seed, threads=torch.get_num_threads(), **change,
                         **{k: quick[k] for k in ("limit", "epochs", "val_size") if k in quick})
            with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out:
                results[name].append(train(ModelConfig(verdict=False), cfg, out, data_dir=data_dir))
    return results


def render(times: dict[str, list[float]], early: dict[str, list[list[Point]]], fast: dict[str, list[dict]],
           replica: list[float], threads: int, command: str) -> str:
    base = statistics.median(times[DEFAULT.name])
    flops = machine.flops_per_image(build_model(ModelConfig()))
    achieved = machine.TRAINING_FACTOR * flops * TrainConfig.batch_size / (base / 1000) / 1e9
    _, how = machine.peak_gflops(threads)
    lines = [
        "## The default's choices",
        "",
        f"Measured by `{command}` with {threads} torch threads. Step time: one training step of the default "
        f"recipe (batch {TrainConfig.batch_size}, digitsum's loss, AdamW and schedule) with one choice changed at a "
        f"time; the median of {len(times[DEFAULT.name])} interleaved rounds of real batches after warm-up "
        "(min-max).",
        "",
        "| variant | ms per step | default's speed-up over it |",
        "| --- | ---: | ---: |",
    ]
    for name, ms in times.items():
        m = statistics.median(ms)
        lines.append(f"| {name} | {spread(ms, '{:.2f}')} | {'' if name == DEFAULT.name else f'{m / base:.2f}x'} |")
    lines += [
        "",
        f"Efficiency: the default network costs {flops / 1e6:.2f} MFLOP per image forward "
        f"(`benchmarks/machine.py` counts its convolutions and linear layers), about {machine.TRAINING_FACTOR}x that "
        f"to train; at {base:.2f} ms per step of {TrainConfig.batch_size} images that is "
        f"{machine.efficiency(achieved, threads)} ({how}).",
        "",
        f"Early accuracy: the first epoch of each variant, scored on the MNIST test set after every tenth of it "
        f"(evaluation excluded from the seconds), seed(s) 0-{len(next(iter(early.values()))) - 1}: seconds the "
        "median (min-max), accuracies the mean (min-max).",
        "",
        f"| variant | time to >= {pct(TARGET)} digit and sum | test digit / sum at 0.5 epoch | at 1 epoch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, runs in early.items():
        reached = [time_to(points, TARGET) for points in runs]
        seconds = [p.seconds for p in reached if p]
        to_target = f"{spread(seconds)} s" if seconds else "not reached"
        to_target += f"; {sum(p is None for p in reached)} seed(s) not" if seconds and None in reached else ""
        half = [min(points, key=lambda p: abs(p.epoch - 0.5)) for points in runs]
        end = [points[-1] for points in runs]
        lines.append(f"| {name} | {to_target} | {mean_range([p.digit for p in half])} / "
                     f"{mean_range([p.sum for p in half])} | {mean_range([p.digit for p in end])} / "
                     f"{mean_range([p.sum for p in end])} |")
    lines += [
        "",
        "The fast recipe's choices: `digitsum train --recipe fast`, and the same with one choice put back to the "
        "default's; test figures of the best epoch's weights, the mean over seeds (min-max); training seconds the "
        f"median (min-max), and relative to the notebook replica's {EPOCHS} epochs trained in the same run, "
        f"{spread(replica)} s (ratio of the medians).",
        "",
        "| variant | test digit | test sum | worst seed: its lower head | training seconds | relative to the replica |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_replica = statistics.median(replica)
    for name, runs in fast.items():
        seconds = spread([r["train_seconds"] for r in runs])
        lines.append(f"| {name} | {mean_range([r['digit_accuracy'] for r in runs])} | "
                     f"{mean_range([r['sum_accuracy'] for r in runs])} | "
                     f"{worst_seed([(r['digit_accuracy'], r['sum_accuracy']) for r in runs])} | {seconds} | "
                     f"{statistics.median(r['train_seconds'] for r in runs) / base_replica:.2f}x |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 0) -> str:
    """Run the benchmark (``quick``: a smoke run at tiny size) and return its Markdown section."""
    if threads:
        torch.set_num_threads(threads)
    flags = (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    size = QUICK if quick else {}
    seeds = size.get("seeds", SEEDS)
    cfg = TrainConfig(limit=size.get("limit", 0), val_size=size.get("val_size", TrainConfig.val_size))
    data = load_mnist(data_dir)
    train_mix, _ = split_train_val(data["train"], cfg)
    times = step_times(train_mix, cfg, size.get("rounds", ROUNDS), size.get("steps", STEPS),
                       size.get("warmup", WARMUP_STEPS))
    test_mix = fixed_test_mixture(data["test"])
    early = {v.name: [early_accuracy(train_mix, test_mix, dataclasses.replace(cfg, seed=seed), v, size.get("test"))
                      for seed in range(seeds)] for v in EARLY_VARIANTS}
    fast = fast_choices(data_dir, seeds, size)
    replica = replica_seconds(data_dir, seeds, size)
    return render(times, early, fast, replica, torch.get_num_threads(), f"python benchmarks/bench_recipe.py{flags}")


if __name__ == "__main__":
    from run_all import standalone

    sys.exit(standalone(run, __doc__.splitlines()[0]))
