"""``digitsum predict``: the digit and the sum for your own image, or for every row of a CSV manifest."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from .common import add_checkpoint, add_quiet, load_predictor, progress


def number_arg(value: str) -> int:
    from ..errors import InputError
    from ..predict import check_number

    try:
        return check_number(value)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add(sub) -> None:
    p = sub.add_parser("predict", help="read the digit in your image and add a number to it",
                       description="Predict the digit in an image (PNG, JPEG, BMP, WebP...; any size, dark on "
                       "light or light on dark, transparent or not) and digit + N, with the bundled model "
                       "unless --checkpoint is given. With --manifest, predict every row of a CSV file.")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="the image file")
    p.add_argument("--number", type=number_arg, metavar="N", help="the number 0-9 to add to the digit")
    p.add_argument("--manifest", metavar="FILE.csv",
                   help="CSV with a header and the columns image,number (paths relative to the CSV's folder)")
    add_checkpoint(p, onnx=True)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image: image, number, digit, sum, digit_probability, "
                   "sum_probability, is_digit, is_digit_score (or error, for a manifest row that failed)")
    add_quiet(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.manifest is not None:
        if args.image is not None or args.number is not None:
            raise ConfigError("give either IMAGE --number N, or --manifest FILE.csv, not both")
        return run_manifest(args)
    if args.image is None or args.number is None:
        raise ConfigError("give an IMAGE and --number N (or --manifest FILE.csv)")
    from ..manifest import Predicted
    from ..preprocess import load_digit

    digit = load_digit(args.image)  # (28, 28): a bad image fails before the model loads
    predictor = load_predictor("predict", args.checkpoint, args.runtime)
    prediction = predictor.predict_arrays(digit[None], [args.number])[0]
    print_answer(Predicted(args.image, args.number, prediction), args.json)
    return 0


def run_manifest(args) -> int:
    from ..manifest import Failed, predict_rows, read_manifest

    rows = read_manifest(args.manifest)
    predictor = load_predictor("predict", args.checkpoint, args.runtime)
    failed = 0
    bar = progress(len(rows), "predict", args.quiet, unit="image")
    try:
        for answer in predict_rows(predictor, rows, on_batch=bar.update):
            failed += isinstance(answer, Failed)
            print_answer(answer, args.json)
    finally:
        bar.close()
    if failed:
        print(f"digitsum predict: error: {failed} of {len(rows)} rows failed", file=sys.stderr)
    return 1 if failed else 0


def print_answer(answer, as_json: bool) -> None:
    """One line per image (a manifest.Predicted or Failed): JSON, or ``image + n: digit d (p%), sum s (p%)`` for
    humans (``not a digit (best guess d, p%)`` when the image does not look like one)."""
    from ..answers import answer_json
    from ..manifest import Failed

    if as_json:
        print(json.dumps(answer_json(answer)), flush=True)
        return
    head = f"{answer.image} + {answer.number}"
    if isinstance(answer, Failed):
        print(f"{head}: error: {answer.error}", flush=True)
        return
    p = answer.prediction
    if not p.is_digit:
        print(f"{head}: not a digit (best guess {p.digit}, {100 * p.digit_probability:.0f}%)", flush=True)
    else:
        print(f"{head}: digit {p.digit} ({100 * p.digit_probability:.1f}%), "
              f"sum {p.sum} ({100 * p.sum_probability:.1f}%)", flush=True)
