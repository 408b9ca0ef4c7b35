"""A model's report card on people's own labelled images: ``digitsum evaluate --manifest labels.csv``.

The manifest's rows (``image,digit[,number]``, manifest.py) are predicted in batches; the figures
are those ``evaluate`` gives for MNIST (digit and sum accuracy, consistency, per-digit accuracy),
with the most frequent confusions, and every misread row with its prediction. Rows that cannot
be read are counted apart and left out of the figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .evaluate import metrics
from .manifest import MANIFEST_NUMBER_SEED, Row, check_digit, predict_rows
from .mixture import fixed_numbers
from .predict import Predictor

CONFUSIONS = 5  # the most frequent confusions reported


def rank_confusions(pairs: Counter, k: int = CONFUSIONS) -> list[dict]:
    """The ``k`` most frequent (true digit, read as) pairs: by count, most first; a tie goes to the
    smaller true digit, then to the smaller digit read. (Counter.most_common breaks ties by the
    order rows were met, which depends on which rows a model happens to misread.)"""
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return [{"digit": d, "read_as": p, "count": c} for (d, p), c in ranked[:k]]


@dataclass
class ManifestReport:
    """What ``evaluate_manifest`` found."""

    metrics: dict  # n, digit_accuracy, sum_accuracy, consistency, per_digit_accuracy, confusions, failed, ...
    misread: list[dict]  # one record per row whose digit or sum is wrong, with the truth
    failed: list[dict]  # one error record per row that could not be read


def row_numbers(rows: list[Row]) -> list:
    """Each row's number: its ``number`` field, or one fixed by MANIFEST_NUMBER_SEED when the manifest has none."""
    if rows and "number" in rows[0].fields:
        return [row.fields["number"] for row in rows]
    return fixed_numbers(len(rows), MANIFEST_NUMBER_SEED).tolist()


def evaluate_manifest(predictor: Predictor, rows: list[Row],
                      on_batch: Callable[[int], None] | None = None) -> ManifestReport:
    """Predict every labelled row and score the ones that could be read."""
    numbers = row_numbers(rows)
    read, misread, failed = [], [], []
    for row, answer in zip(rows, predict_rows(predictor, rows, numbers, on_batch=on_batch), strict=True):
        if "error" in answer:
            failed.append(answer)
            continue
        rec = {**answer, "true_digit": check_digit(row.fields["digit"])}
        read.append(rec)
        if rec["digit"] != rec["true_digit"] or rec["sum"] != rec["true_digit"] + rec["number"]:
            misread.append(rec)
    truth, digits, sums, numbers_read = (torch.tensor([r[k] for r in read], dtype=torch.long)
                                         for k in ("true_digit", "digit", "sum", "number"))
    card = metrics(digits, sums, truth, numbers_read) if read else {"n": 0}
    pairs = Counter((r["true_digit"], r["digit"]) for r in read if r["digit"] != r["true_digit"])
    card["confusions"] = rank_confusions(pairs)
    card["is_digit_rate"] = sum(r["is_digit"] for r in read) / len(read) if read else float("nan")
    card["failed"] = len(failed)
    return ManifestReport(card, misread, failed)
