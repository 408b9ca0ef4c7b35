"""Do several networks tell a non-digit better than one? Their shipped verdicts, averaged.

Every change to one network's training that benchmarks/nondigits.md measures moves the verdict's figures by about
what another seed moves them. Averaging networks trained from other seeds (a deep ensemble, Lakshminarayanan et al.
2017) is the standard way to get past one network's draw. For each run given (``bundled``, or a run directory of
``digitsum train`` with the default recipe), this scores the dev sets of benchmarks/nondigits.py, and MNIST's
validation digits, with the run's own shipped verdict (``is_digit_score`` as ``predict`` returns it); then every
combination of two or more runs by the mean of their verdict logits, with a threshold that keeps ``KEEP`` of the
validation digits, as each run's own rule does. A row per run (as it ships) and per combination; the combinations'
accuracy cell is the mean of their digit and sum probabilities read on MNIST test. A probe for nondigits.md: digitsum
ships one network.

    python benchmarks/verdict_ensemble.py RUN RUN [RUN ...] [--quick]   (MNIST from $DIGITSUM_DATA)
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

import nondigits
import verdict_weights
from digitsum.calibration import KEEP
from digitsum.checkpoint import bundled_path
from digitsum.cli.common import Parser
from digitsum.config import TrainConfig
from digitsum.data import load_mnist
from digitsum.errors import DigitsumError
from digitsum.evaluate import fixed_test_mixture
from digitsum.mixture import split_train_val
from digitsum.predict import load_model
from run_all import parse_flags
from verdict_training import figures, logit, table, verdict_figures

QUICK = 300  # images of each set in a smoke run


def member(run: str, data: dict[str, np.ndarray], val: np.ndarray, test) -> dict:
    """One run's verdict logits on every set and on the validation digits, its (score, passed) as shipped, its test
    metrics, and its digit and sum probabilities on MNIST test with the fixed numbers."""
    path = None if run == "bundled" else run
    predictor = load_model(path)
    shipped = {k: nondigits.shipped(predictor, v) for k, v in data.items()}
    predictions = predictor.predict_arrays(test.images.numpy(), test.numbers.tolist())
    return {"shipped": shipped, "logits": {k: logit(score) for k, (score, _) in shipped.items()},
            "val": logit(nondigits.shipped(predictor, val)[0]),
            "metrics": json.loads(((bundled_path() if path is None else Path(path)) / "metrics.json").read_text()),
            "digit": np.array([p.digit_probabilities for p in predictions]),
            "sum": np.array([p.sum_probabilities for p in predictions])}


def combined(members: list[dict], data: dict[str, np.ndarray], test) -> dict:
    """A row's cells for the mean of ``members``' verdict logits, thresholded to keep ``KEEP`` of the validation
    digits, and the accuracy of their mean digit and sum probabilities."""
    val = np.mean([m["val"] for m in members], 0)
    cut = np.quantile(val, 1 - KEEP)
    scored = {k: (z := np.mean([m["logits"][k] for m in members], 0), z >= cut) for k in data}
    labels = test.labels.numpy()
    digit = np.mean([m["digit"] for m in members], 0).argmax(1) == labels
    total = np.mean([m["sum"] for m in members], 0).argmax(1) == labels + test.numbers.numpy()
    return {"MNIST digit / sum": f"{100 * digit.mean():.2f} / {100 * total.mean():.2f}",
            **verdict_figures(scored, data)}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="verdict_ensemble.py", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="bundled, or run directories of digitsum train")
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK} images of each set (a smoke run)")

    def check(args) -> None:
        if len(args.runs) < 2:
            parser.error(f"give two runs or more to combine, got {len(args.runs)}")
        for run in args.runs:
            if run != "bundled" and not (Path(run) / "metrics.json").is_file():
                parser.error(f"{run} is not a finished run of digitsum train (no metrics.json there)")

    args = parse_flags(parser, argv, check)
    if args is None:
        return 2
    data = verdict_weights.sets(QUICK if args.quick else None)
    val = split_train_val(load_mnist(None, splits=("train",))["train"], TrainConfig())[1].images.numpy()
    test = fixed_test_mixture(load_mnist(None, splits=("test",))["test"])
    try:
        members = [member(run, data, val, test) for run in args.runs]
    except DigitsumError as error:
        print(f"verdict_ensemble: {error}", file=sys.stderr)
        return 2
    rows = {f"`{run}`": figures(m["metrics"], m["shipped"], data) for run, m in zip(args.runs, members, strict=True)}
    for size in range(2, len(members) + 1):
        for chosen in itertools.combinations(range(len(members)), size):
            rows[" + ".join(f"`{args.runs[i]}`" for i in chosen)] = combined([members[i] for i in chosen], data, test)
    print(f"`python benchmarks/verdict_ensemble.py {' '.join(args.runs)}`: AUROC / flagged %, each run's shipped "
          "verdict, and each combination's mean verdict logit at a threshold keeping "
          f"{100 * KEEP:g}% of the validation digits")
    print(table("runs", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
