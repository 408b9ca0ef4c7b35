"""Does it learn to add? Sums of (digit, number) combinations held out of training, against the seen ones.

Every network trains with combinations held out (``digitsum train --hold-out-pairs``): ten drawn at
random (``random:10``) and every combination summing to 9 (``sum:9``: a sum the head never sees as a
target). The test images then meet every number (the all-pairs figures of ``digitsum evaluate``),
and the sum head's own answers are scored apart on held-out and seen combinations, beside the
digit head's answer plus the number (the reference a network that adds would match). Also per
model: the linear read-out of the number from its embedding (digitsum/embedding.py).

The networks: the default (product fusion), the default with concatenation fusion, the default
without the agreement term (``--consistency 0``), the notebook's network (``--arch seed``) and the
default with shift fusion (``--fusion shift``: the number is a learned kernel over offsets, slid
along the digit head's distribution: the same kernel for every digit), three seeds each.

A SHORT recipe, for a 2-core machine shared with other work: the fast recipe (``--recipe fast``,
no verdict head) for ``EPOCHS`` epochs on the first ``LIMIT`` training images, validated on the last
``VAL_SIZE``, one torch thread per run, ``--jobs`` runs at a time. Its MNIST figures are therefore
below the default recipe's.

    python benchmarks/compositional.py [--quick] [--seeds 3] [--jobs 6] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

SEEDS, EPOCHS, LIMIT, VAL_SIZE = 3, 2, 8000, 2000
QUICK = {"epochs": 1, "limit": 1000, "val_size": 500}
SETTINGS = ("random:10", "sum:9")
NETWORKS = {  # name -> (TrainConfig changes, ModelConfig changes)
    "default (product fusion)": ({}, {}),
    "concat fusion (--fusion concat)": ({}, {"fusion": "concat"}),
    "no agreement term (--consistency 0)": ({"consistency": 0.0}, {}),
    "notebook network (--arch seed)": ({}, {"arch": "seed"}),
    "shift fusion (--fusion shift)": ({}, {"fusion": "shift"}),
}
FIGURES = ("digit_accuracy", "sum_accuracy", "held_out_sum_accuracy", "seen_sum_accuracy",
           "held_out_digit_plus_number_accuracy", "readout_accuracy", "pc1_r2")


def train_one(network: str, spec: str, seed: int, quick: bool, data_dir: str | None) -> dict:
    """Train one network with ``spec`` held out; its test figures and its embedding's read-out."""
    from digitsum.checkpoint import load_checkpoint
    from digitsum.config import ModelConfig, recipe
    from digitsum.embedding import describe
    from digitsum.training import train

    train_changes, model_changes = NETWORKS[network]
    sizes = QUICK if quick else {"epochs": EPOCHS, "limit": LIMIT, "val_size": VAL_SIZE}
    cfg = recipe("fast", seed=seed, threads=1, hold_out_pairs=spec, **sizes, **train_changes)
    model_cfg = ModelConfig(**{"verdict": False, **model_changes})  # the fast recipe trains no verdict head
    with tempfile.TemporaryDirectory(prefix="digitsum-compositional-") as out:
        metrics = train(model_cfg, cfg, out, data_dir=data_dir)
        figures = {k: metrics[k] for k in FIGURES if k in metrics}
        figures.update(describe(load_checkpoint(out).model))
    return figures


def measure(seeds: int, quick: bool, data_dir: str | None, jobs: int,
            log: Path | None = None) -> dict[tuple[str, str], list[dict]]:
    """(network, spec) -> one dict of figures per seed; each run's figures are also appended to ``log``
    (JSON lines) as it finishes, so that an interrupted benchmark keeps what it measured."""
    keys = [(network, spec, seed) for network in NETWORKS for spec in SETTINGS for seed in range(seeds)]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(train_one, *key, quick, data_dir): key for key in keys}
        done: dict[tuple[str, str, int], dict] = {}
        try:
            for future in as_completed(futures):
                done[futures[future]] = figures = future.result()
                if log is not None:
                    with open(log, "a") as out:
                        out.write(json.dumps({"run": list(futures[future]), **figures}) + "\n")
        except BaseException:
            pool.shutdown(cancel_futures=True)  # one failure: the runs not yet started are not trained
            raise
    return collect([(key, done[key]) for key in keys])


def collect(runs) -> dict[tuple[str, str], list[dict]]:
    """[((network, spec, seed), figures)] -> (network, spec) -> figures per seed, in NETWORKS' order."""
    results: dict[tuple[str, str], list[dict]] = {}
    for (network, spec, _), figures in sorted(runs, key=lambda r: (list(NETWORKS).index(r[0][0]),
                                                                   SETTINGS.index(r[0][1]), r[0][2])):
        results.setdefault((network, spec), []).append(figures)
    return results


def read_log(path: Path) -> dict[tuple[str, str], list[dict]]:
    """The runs a ``--log`` file recorded, as ``measure`` returns them."""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return collect([(tuple(r.pop("run")), r) for r in runs])


def spread(values: list[float], digits: int = 2, scale: float = 100.0) -> str:
    mean = f"{scale * statistics.mean(values):.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ({scale * min(values):.{digits}f}-{scale * max(values):.{digits}f})"


def render(results: dict[tuple[str, str], list[dict]], command: str, seeds: int, quick: bool) -> str:
    sizes = QUICK if quick else {"epochs": EPOCHS, "limit": LIMIT, "val_size": VAL_SIZE}
    lines = ["## Does it learn to add? Held-out combinations", "",
             f"Measured by `{command}`: each network trained with seeds 0-{seeds - 1} by a short recipe (the fast "
             f"recipe for {sizes['epochs']} epoch(s) on the first {sizes['limit']:,} training images, validated on "
             f"the last {sizes['val_size']:,}, 1 thread), "
             "with the combinations of the setting never trained or validated on. Sums are the sum head's own "
             "answers for every test image with every number, split into held-out and seen combinations; "
             "'digit + number' is the digit head's answer plus the number on the held-out cells (the reference); "
             "read-out: leave-one-out linear read-out of the number from its embedding (share of the 10 numbers "
             "right; digitsum/embedding.py), with R² of the number on the first principal component. Mean over "
             "seeds (min-max), in %.", "",
             "| network | held out | MNIST digit | MNIST sum | held-out sum | seen sum | held-out digit + number "
             "| read-out | PC1 R² |",
             "| --- | --- |" + " ---: |" * 7]
    for (network, spec), runs in results.items():
        cells = [spread([r[k] for r in runs]) for k in FIGURES[:5]]
        cells += [spread([r["readout_accuracy"] for r in runs], 0), spread([r["pc1_r2"] for r in runs], 2, 1.0)]
        lines.append(f"| {network} | `{spec}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, seeds: int = SEEDS, jobs: int = 1) -> str:
    seeds = 1 if quick else seeds
    results = measure(seeds, quick, data_dir, jobs)
    flags = " --quick" if quick else (f" --seeds {seeds}" if seeds != SEEDS else "")
    return render(results, f"python benchmarks/compositional.py{flags}", seeds, quick)


def main(argv: list[str] | None = None) -> int:
    from run_all import add_bench_flags

    parser = add_bench_flags(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per network (default: {SEEDS})")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at a time, one thread each (default: 1)")
    parser.add_argument("--log", type=Path, help="append every finished run's figures to this JSON-lines file")
    parser.add_argument("--from-log", type=Path, help="train nothing: render the runs a --log file recorded")
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    flags = " --quick" if args.quick else (f" --seeds {args.seeds}" if args.seeds != SEEDS else "")
    if args.from_log:
        results = read_log(args.from_log)
        seeds = max(len(runs) for runs in results.values())
        flags += f" --jobs {args.jobs} --log {args.from_log.name}"
    else:
        results = measure(seeds, args.quick, args.data_dir, args.jobs, args.log)
    print(render(results, f"python benchmarks/compositional.py{flags}", seeds, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
