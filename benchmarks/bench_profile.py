"""Where the time goes: torch.profiler over training steps, and the data pipeline alone.

1. Steps of an epoch of digitsum's default recipe (``TrainConfig()``, the default network, in-memory
   ``NumberMixture.epoch_batches``) and of the notebook replica (per-item Dataset + DataLoader,
   seed network, Adam lr 0.01, batch 100), each under ``torch.profiler`` after a few warm-up
   steps: the split into data / forward / backward / optimizer, and the top operators by self
   CPU time.
2. The pipeline alone: the seed network with the notebook's hyper-parameters, fed by the
   notebook's DataLoader (A) or by digitsum's in-memory batches (B), interleaved A B A B, each
   trial a fresh model trained for one epoch; the figure is the ratio of the medians.

    python benchmarks/bench_profile.py [--quick] [--data-dir DIR] [--threads N]
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from digitsum.config import ModelConfig, TrainConfig
from digitsum.data import Split, load_mnist
from digitsum.mixture import Batch, NumberMixture, split_train_val
from digitsum.model import Logits, build_model
from digitsum.training.objective import digitsum_loss, make_optimizer
from notebook import (
    BATCH_SIZE,
    PHASES,
    mixture_batches,
    notebook_loader,
    notebook_loss,
    run_epoch,
    seed_model_and_optimizer,
)

TOP_OPS = 15
# A whole notebook epoch under the profiler is ~1M events (per-item ops): measured, 100 steps took 2 GB and a
# minute to analyse. Steady-state steps after a warm-up show the same shares at a fraction of the cost.
PROFILE_STEPS, WARMUP_STEPS = 50, 5
QUICK = {"limit": 2000, "steps": 5, "warmup": 1, "pairs": 2}  # a smoke run, not a measurement

# The notebook's loading, digitsum's way: batches of BATCH_SIZE in a fresh order, no augmentation.
UNAUGMENTED = TrainConfig(seed=0, batch_size=BATCH_SIZE, max_shift=0, stretch=0.0, negatives=0.0)


@dataclasses.dataclass
class Profile:
    """Profiled steps: wall seconds, seconds per phase, and the top operators."""

    name: str
    steps: int
    warmup: int  # steps trained before the profiler started
    seconds: float
    phases: dict[str, float]  # phase -> CPU seconds, children included
    ops: list[tuple[str, int, float]]  # (operator, calls, self CPU seconds), most first
    self_total: float  # self CPU seconds of every event


def digitsum_step_loss(cfg: TrainConfig):
    """digitsum's loss (both cross-entropies and the agreement term) in ``run_epoch``'s argument order."""
    return lambda digit_logits, sum_logits, numbers, digits, sums: digitsum_loss(
        Logits(digit_logits, sum_logits), Batch(None, numbers, digits, sums), cfg)


def profiled(name: str, model, opt, batches, sched=None, steps: int = PROFILE_STEPS,
             warmup: int = WARMUP_STEPS, loss_fn=notebook_loss) -> Profile:
    """Train ``warmup`` steps, then ``steps`` more under torch.profiler (fewer if the data runs out)."""
    it = iter(batches)
    if warmup:
        run_epoch(model, opt, it, sched, warmup, loss_fn)
    served = 0

    def counted():
        nonlocal served
        for batch in it:
            served += 1
            yield batch

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = run_epoch(model, opt, counted(), sched, steps, loss_fn)
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in PHASES}
    ops = sorted(((e.key, e.count, e.self_cpu_time_total / 1e6) for e in events if e.key not in PHASES),
                 key=lambda op: -op[2])
    return Profile(name, served, warmup, seconds, phases, ops[:TOP_OPS],
                   sum(e.self_cpu_time_total for e in events) / 1e6)


def profile_digitsum(train: Split, threads: int, steps: int = PROFILE_STEPS, warmup: int = WARMUP_STEPS,
                     limit: int = 0) -> Profile:
    """Steps of epoch 1 of digitsum's default recipe (``TrainConfig()``: its loss, schedule and layout)."""
    cfg = dataclasses.replace(TrainConfig(), threads=threads, limit=limit)
    train_mix, _ = split_train_val(train, cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(ModelConfig()).to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg, train_mix.steps_per_epoch(cfg.batch_size))
    shifts_only = dataclasses.replace(cfg, stretch=0.0, negatives=0.0)  # the recipe's steps, without non-digits
    batches = mixture_batches(train_mix.epoch_batches(1, shifts_only), torch.channels_last)
    return profiled("digitsum default", model, opt, batches, sched, steps, warmup, loss_fn=digitsum_step_loss(cfg))


def profile_notebook(train: Split, steps: int = PROFILE_STEPS, warmup: int = WARMUP_STEPS,
                     limit: int = 0) -> Profile:
    """Steps of the notebook replica's first epoch."""
    images, labels = train.images[: limit or None], train.labels[: limit or None]
    model, opt = seed_model_and_optimizer()
    return profiled("notebook replica", model, opt, notebook_loader(images, labels), None, steps, warmup)


def pipeline_ab(train: Split, pairs: int = 3, max_steps: int = 0, limit: int = 0) -> dict[str, list[float]]:
    """Seconds per trial of the seed recipe fed by the notebook's DataLoader (A) or in-memory batches (B)."""
    images, labels = train.images[: limit or None], train.labels[: limit or None]
    mixture = NumberMixture(images, labels)
    times: dict[str, list[float]] = {"A": [], "B": []}
    for trial in range(pairs):
        for arm in ("A", "B"):
            model, opt = seed_model_and_optimizer()
            if arm == "A":
                batches = notebook_loader(images, labels, seed=trial)
            else:
                batches = mixture_batches(mixture.epoch_batches(trial + 1, UNAUGMENTED))
            times[arm].append(run_epoch(model, opt, batches, max_steps=max_steps))
    return times


def render_profile(p: Profile) -> list[str]:
    lines = [f"### {p.name}: {p.steps} steps after {p.warmup} warm-up steps, {p.seconds:.2f} s under the profiler",
             "", "| phase | CPU s | share of the profiled time |", "| --- | ---: | ---: |"]
    lines += [f"| {phase} | {p.phases.get(phase, 0.0):.2f} | {100 * p.phases.get(phase, 0.0) / p.seconds:.1f}% |"
              for phase in PHASES]
    lines += ["", f"Top {len(p.ops)} operators by self CPU time:", "",
              "| operator | calls | self CPU s | share of self CPU |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{name}` | {calls:,} | {secs:.3f} | {100 * secs / p.self_total:.1f}% |"
              for name, calls, secs in p.ops]
    return lines + [""]


def render(profiles: list[Profile], times: dict[str, list[float]], threads: int, command: str) -> str:
    """The Markdown section: both profiles, then the pipeline A/B."""
    a, b = statistics.median(times["A"]), statistics.median(times["B"])
    lines = ["## Where the time goes", "",
             f"Measured by `{command}` with {threads} torch threads. Phases are the `record_function` labels of "
             "`benchmarks/notebook.py:run_epoch` (children included); an operator's self time excludes its "
             "children. The profiler itself slows the steps; read the shares, not the seconds. "
             f"{PROFILE_STEPS} steady-state steps rather than a whole epoch: a notebook epoch under the profiler "
             "records about a million per-item events, too many to analyse in memory.", ""]
    for p in profiles:
        lines += render_profile(p)
    lines += ["### The pipeline alone", "",
              "Seed network, Adam lr 0.01, batch 100, fresh model per trial; A: the notebook's per-item Dataset + "
              "DataLoader, B: digitsum's in-memory `NumberMixture.epoch_batches`; run A B A B.", "",
              "| trial | A: DataLoader s | B: in-memory s |", "| ---: | ---: | ---: |"]
    pairs = zip(times["A"], times["B"], strict=True)
    lines += [f"| {i + 1} | {ta:.2f} | {tb:.2f} |" for i, (ta, tb) in enumerate(pairs)]
    lines += ["", f"Median A {a:.2f} s, median B {b:.2f} s: the in-memory pipeline is **{a / b:.2f}x** "
              "as fast on the same network and hyper-parameters."]
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 0) -> str:
    """Run the benchmark (``quick``: a smoke run at tiny size) and return its Markdown section."""
    flags = (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    command = f"python benchmarks/bench_profile.py{flags}"
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    train = load_mnist(data_dir)["train"]
    if quick:
        steps, warmup, limit, pairs, ab_steps = QUICK["steps"], QUICK["warmup"], QUICK["limit"], QUICK["pairs"], 5
    else:
        steps, warmup, limit, pairs, ab_steps = PROFILE_STEPS, WARMUP_STEPS, 0, 3, 0  # A/B: whole epochs
    profiles = [profile_digitsum(train, threads, steps, warmup, limit), profile_notebook(train, steps, warmup, limit)]
    times = pipeline_ab(train, pairs, ab_steps, limit)
    return render(profiles, times, threads, command)


if __name__ == "__main__":
    from run_all import standalone

    sys.exit(standalone(run, __doc__.splitlines()[0]))
