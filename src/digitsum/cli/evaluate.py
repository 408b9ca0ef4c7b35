"""``digitsum evaluate``: a checkpoint's figures on the MNIST test set, or on people's own labelled images."""

from __future__ import annotations

import csv
import json
import sys

from .common import add_checkpoint, add_data_dir, add_quiet, format_metrics, load_predictor, progress

ERROR_COLUMNS = ("image", "digit", "number", "predicted_digit", "predicted_sum", "digit_probability",
                 "sum_probability", "is_digit", "is_digit_score")


def add(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the MNIST test set or on your labelled images",
                       description="Figures of a checkpoint (the bundled model by default): digit and sum accuracy, "
                       "consistency, per-digit accuracy; on the MNIST test set also all-pairs sum accuracy and "
                       "calibration; with --manifest, on your own labelled images, with the most frequent "
                       "confusions.")
    add_checkpoint(p, onnx=True)
    add_data_dir(p)
    p.add_argument("--manifest", metavar="FILE.csv", help="your labelled images: a CSV with a header holding "
                   "image,digit and optionally number (without it, numbers fixed by a seed); image paths are "
                   "relative to the CSV's folder, or absolute")
    p.add_argument("--errors", metavar="FILE.csv", help="with --manifest: write every misread row, with its "
                   "prediction and probabilities, to this CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_quiet(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ConfigError

    if args.errors and not args.manifest:
        raise ConfigError("--errors lists the misread rows of a --manifest; give --manifest FILE.csv too")
    if args.manifest:
        return run_manifest(args)
    if args.runtime != "torch":
        raise ConfigError("the MNIST test set is evaluated with --runtime torch; --runtime onnx takes a --manifest")
    from ..checkpoint import load_checkpoint
    from ..data import load_mnist
    from ..evaluate import evaluate
    from ..pairs import parse_pairs

    checkpoint = load_checkpoint(args.checkpoint)
    held_out = parse_pairs(str(checkpoint.config.get("train", {}).get("hold_out_pairs", "")))
    test = load_mnist(args.data_dir, splits=("test",))["test"]
    bar = progress(2 * len(test.labels), "evaluate", args.quiet, unit="image")
    try:
        metrics = evaluate(checkpoint.inference_model, test, checkpoint.calibration, on_batch=bar.update,
                           held_out=held_out)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(format_metrics(metrics))
    print("per digit: " + "  ".join(f"{d}: {100 * a:.2f}%" for d, a in metrics["per_digit_accuracy"].items()))
    return 0


def run_manifest(args) -> int:
    from ..files import atomic_write_bytes
    from ..labelled import evaluate_manifest
    from ..manifest import EVALUATE_COLUMNS, read_manifest

    rows = read_manifest(args.manifest, EVALUATE_COLUMNS)
    predictor = load_predictor("evaluate", args.checkpoint, args.runtime)
    bar = progress(len(rows), "evaluate", args.quiet, unit="image")
    try:
        report = evaluate_manifest(predictor, rows, on_batch=bar.update)
    finally:
        bar.close()
    for failed in report.failed:
        print(f"{failed.image}: error: {failed.error}", file=sys.stderr)
    if args.errors:
        atomic_write_bytes(args.errors, errors_csv(report.misread).encode())
    m = report.metrics
    if args.json:
        print(json.dumps(m))
    else:
        print_manifest_metrics(m)
    if report.failed:
        print(f"digitsum evaluate: error: {len(report.failed)} of {len(rows)} rows failed", file=sys.stderr)
    return 1 if report.failed else 0


def errors_csv(misread: list) -> str:
    """The misread rows as CSV text, one per row, with the truth and the prediction."""
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ERROR_COLUMNS)
    for m in misread:  # labelled.Misread
        p = m.row.prediction
        score = "" if p.is_digit_score is None else f"{p.is_digit_score:.6f}"
        writer.writerow([m.row.image, m.true_digit, m.row.number, p.digit, p.sum,
                         f"{p.digit_probability:.6f}", f"{p.sum_probability:.6f}", p.is_digit, score])
    return out.getvalue()


def print_manifest_metrics(m: dict) -> None:
    if not m["n"]:
        print("no row could be read: nothing to score")
        return
    print(f"digit {100 * m['digit_accuracy']:.2f}%  sum {100 * m['sum_accuracy']:.2f}%  "
          f"consistency {100 * m['consistency']:.2f}%  (n={m['n']})")
    print("per digit: " + "  ".join(f"{d}: {100 * a:.2f}%" for d, a in m["per_digit_accuracy"].items()))
    if m["confusions"]:
        print("most frequent confusions: " + ", ".join(f"{c['digit']} read as {c['read_as']} ({c['count']})"
                                                      for c in m["confusions"]))
