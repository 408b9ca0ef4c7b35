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

``--late-agreement W [W ...]`` also trains each width with the agreement term's weight (``consistency``, 0.5 in
the recipe) ramped linearly from the recipe's to ``W`` over the run's last third of steps (issue 22 names "the
agreement term's weight late in the schedule": the sum head is the one that lags, and late in the run the digit
head it is pulled toward is at its best). A row per width and weight.

``--change KEY=VALUE [KEY=VALUE ...]`` also trains each width with one value of the recipe changed (a field of
``TrainConfig``, e.g. ``epochs=4`` or ``stretch=0.35``) or of its network (a field of ``ModelConfig`` other than
``conv3``, e.g. ``hidden=256``): a row per width and change, each change on its own, beside the recipe as it is.

    python benchmarks/fast_recipe_networks.py [--conv3 64 128] [--late-agreement W ...] [--change KEY=VALUE ...]
                                              [--seeds 5] [--threads 2] [--quick] [--data-dir DIR]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
from dataclasses import fields, replace

import torch

from bench_recipe import replica_seconds
from bench_time_to_accuracy import score
from digitsum.cli.common import Parser
from digitsum.config import ModelConfig, TrainConfig, model_for, recipe
from digitsum.data import load_mnist
from digitsum.errors import ConfigError
from digitsum.evaluate import fixed_test_mixture
from digitsum.training import Hooks, loop, train
from digitsum.training.objective import digitsum_loss
from notebook import EPOCHS
from run_all import parse_flags
from summary import spread, worst_seed

QUICK = {"limit": 2000, "epochs": 1, "val_size": 1000, "test": 1000}  # a smoke run, not a measurement


LATE = 2 / 3  # the share of the run's steps after which --late-agreement ramps the agreement weight


def agreement_weight(recipe_weight: float, late: float | None, progress: float) -> float:
    """The agreement term's weight at ``progress`` (steps done / the run's steps): the recipe's, ramped linearly
    to ``late`` over the run's last third when ``late`` is given."""
    if late is None or progress <= LATE:
        return recipe_weight
    return recipe_weight + (late - recipe_weight) * (progress - LATE) / (1 - LATE)


def parse_change(text: str) -> tuple[str, int | float | str]:
    """``KEY=VALUE`` of ``--change``: a TrainConfig field, or a ModelConfig field other than ``conv3`` (``--conv3``
    sets that), with VALUE read as the type of the field's default; ValueError with the reason otherwise."""
    key, _, value = text.partition("=")
    defaults = {f.name: f.default for cls in (TrainConfig, ModelConfig) for f in fields(cls) if f.name != "conv3"}
    if not value or key not in defaults or isinstance(defaults[key], (bool, tuple)) or defaults[key] is None:
        raise ValueError(f"--change takes KEY=VALUE with KEY a number or text field of TrainConfig or ModelConfig "
                         f"other than conv3 (epochs=4, hidden=256), got {text!r}")
    try:
        return key, type(defaults[key])(value)
    except ValueError:
        kind = {int: "a whole number", float: "a number"}.get(type(defaults[key]), "text")
        raise ValueError(f"--change {key} takes {kind}, got {value!r}") from None


def configs(conv3: int, seed: int, threads: int, quick: dict,
            change: tuple[str, int | float | str] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The network and the training of one ``--recipe fast`` run: the recipe's with ``conv3`` channels in the third
    convolution, ``change`` (KEY, VALUE) applied to whichever of the two has KEY, ``quick``'s sizes on top."""
    overrides = {k: quick[k] for k in ("limit", "epochs", "val_size") if k in quick}
    trains = change is not None and change[0] in {f.name for f in fields(TrainConfig)}
    cfg = recipe("fast", seed=seed, threads=threads, **{**({change[0]: change[1]} if trains else {}), **overrides})
    model_cfg = replace(model_for(cfg), conv3=conv3)
    return (model_cfg if trains or change is None else replace(model_cfg, **{change[0]: change[1]})), cfg


@contextlib.contextmanager
def late_agreement(late: float | None):
    """While the block runs, training's loss weighs the agreement term by ``agreement_weight``; yields the
    ``on_step`` hook that counts the steps done (StepDone gives the steps of an epoch, the loss's config the
    epochs)."""
    done = [0, 0]  # steps done, steps per epoch (known from the first StepDone)

    def on_step(step) -> None:
        done[0], done[1] = done[0] + 1, step.steps

    def loss(outputs, batch, cfg):
        progress = done[0] / (done[1] * cfg.epochs) if done[1] else 0.0
        weight = agreement_weight(cfg.consistency, late, progress)
        return digitsum_loss(outputs, batch, cfg if weight == cfg.consistency else replace(cfg, consistency=weight))

    saved, loop.digitsum_loss = loop.digitsum_loss, loss
    try:
        yield on_step
    finally:
        loop.digitsum_loss = saved


def run_seed(conv3: int, seed: int, threads: int, data_dir: str | None, test_mix, quick: dict,
             late: float | None = None, change: tuple[str, int | float | str] | None = None) -> dict:
    """One ``--recipe fast`` run with a ``conv3``-channel third convolution (``late``: see ``late_agreement``;
    ``change``: ``configs``): per epoch its test (digit, sum), the epoch it kept, its training seconds."""
    model_cfg, cfg = configs(conv3, seed, threads, quick, change)
    epochs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="digitsum-bench-") as out, late_agreement(late) as on_step:
        metrics = train(model_cfg, cfg, out, data_dir=data_dir,
                        hooks=Hooks(on_step=on_step, on_epoch=lambda record, model: epochs.append(
                            score(model, test_mix, quick.get("test")))))
    return {"epochs": epochs, "kept": metrics["best_epoch"], "seconds": metrics["train_seconds"]}


def label(conv3: int, late: float | None, change: tuple[str, int | float | str] | None) -> str:
    """A table row's name: the width, and what the run changed."""
    if late is not None:
        return f"{conv3}, late agreement {late:g}"
    if change is None:
        return f"{conv3}"
    key, value = change
    return f"{conv3}, {key} {value if isinstance(value, str) else format(value, 'g')}"


def worst(runs: list[dict], which) -> str:
    """The lowest head over the seeds' ``which(run)`` (digit, sum) figures, with its seed and head."""
    return worst_seed([which(run) for run in runs])


def render(results: dict[str, list[dict]], replica: list[float], replica_epochs: int, threads: int,
           command: str) -> str:
    capability = torch.backends.cpu.get_cpu_capability()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "not set")
    seeds = len(next(iter(results.values())))
    base = statistics.median(replica)
    lines = [
        f"Measured by `{command}`: {threads} torch threads, torch CPU capability {capability}, ONEDNN_MAX_CPU_ISA "
        f"{isa}; the notebook replica's {replica_epochs} epochs {spread(replica)} s in the same run (the same seeds). "
        "Test digit / sum of the last epoch's weights per seed; the kept epoch is the one `digitsum train` keeps "
        "(the best by validation). \"late agreement W\": the agreement term's weight ramped from the recipe's to W "
        "over the run's last third; \"KEY VALUE\": the recipe (or its network) with that one value changed.",
        "",
        "| conv3, change | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | worst head, last epoch | worst "
        "head, kept epoch (epochs kept) | training seconds | relative to the replica |",
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
    parser = Parser(prog="fast_recipe_networks.py", description=__doc__.splitlines()[0])
    parser.add_argument("--conv3", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--late-agreement", type=float, nargs="+", default=[], metavar="W",
                        help="also train each width with the agreement weight ramped to W over the last third")
    parser.add_argument("--change", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also train each width with one recipe or network value changed, each on its own")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run at tiny size, not a measurement")
    parser.add_argument("--data-dir")
    changes: list[tuple[str, int | float | str]] = []

    def check(args) -> None:
        try:
            changes.extend(parse_change(text) for text in args.change)
            for change in changes:
                configs(args.conv3[0], 0, args.threads, {}, change)  # a value the configs refuse, refused here
        except (ValueError, ConfigError) as error:
            parser.error(str(error))

    args = parse_flags(parser, argv, check)
    if args is None:
        return 2
    torch.set_num_threads(args.threads)
    quick = QUICK if args.quick else {}
    test_mix = fixed_test_mixture(load_mnist(args.data_dir, splits=("test",))["test"])
    variants = [(None, None), *((w, None) for w in args.late_agreement), *((None, c) for c in changes)]
    results = {label(conv3, late, change):
               [run_seed(conv3, seed, args.threads, args.data_dir, test_mix, quick, late, change)
                for seed in range(args.seeds)]
               for conv3 in args.conv3 for late, change in variants}
    replica = replica_seconds(args.data_dir, args.seeds, quick)
    late = ["--late-agreement", *(f"{w:g}" for w in args.late_agreement)] if args.late_agreement else []
    changed = ["--change", *args.change] if args.change else []
    flags = " ".join(["--conv3", *map(str, args.conv3), *late, *changed, "--seeds", str(args.seeds), "--threads",
                      str(args.threads)] + (["--quick"] if args.quick else []))
    command = f"python benchmarks/fast_recipe_networks.py {flags}"
    print(render(results, replica, quick.get("epochs", EPOCHS), args.threads, command), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
