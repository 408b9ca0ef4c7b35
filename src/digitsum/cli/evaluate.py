"""``digitsum evaluate``: test-set figures of a checkpoint."""

from __future__ import annotations

import json

from .common import add_checkpoint, add_data_dir, format_metrics


def add(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the MNIST test set",
                       description="Test-set figures of a checkpoint (the bundled model by default): digit and "
                       "sum accuracy, consistency, all-pairs sum accuracy, per-digit accuracy.")
    add_checkpoint(p)
    add_data_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_mnist
    from ..evaluate import evaluate

    checkpoint = load_checkpoint(args.checkpoint)
    metrics = evaluate(checkpoint.model, load_mnist(args.data_dir, splits=("test",))["test"])
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(format_metrics(metrics))
    print("per digit: " + "  ".join(f"{d}: {100 * a:.2f}%" for d, a in metrics["per_digit_accuracy"].items()))
    return 0
