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
from .manifest import MANIFEST_NUMBER_SEED, Failed, Predicted, Row, check_digit, predict_rows
from .mixture import fixed_numbers
from .predict import Predictor

CONFUSIONS = 5  # the most frequent confusions reported


def rank_confusions(pairs: Counter, k: int = CONFUSIONS) -> list[dict]:
    """The ``k`` most frequent (true digit, read as) pairs: by count, most first; a tie goes to the
    smaller true digit, then to the smaller digit read. (Counter.most_common breaks ties by the
    order rows were met, which depends on which rows a model happens to misread.)"""
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return [{"digit": d, "read_as": p, "count": c} for (d, p), c in ranked[:k]]


@dataclass(frozen=True)
class Misread:
    """A row whose digit or sum the model read wrong, with its true digit."""

    row: Predicted
    true_digit: int


@dataclass
class ManifestReport:
    """What ``evaluate_manifest`` found."""

    metrics: dict  # n, digit_accuracy, sum_accuracy, consistency, per_digit_accuracy, confusions, failed, ...
    misread: list[Misread]  # each row whose digit or sum is wrong, with the truth
    failed: list[Failed]  # each row that could not be read


def row_numbers(rows: list[Row]) -> list:
    """Each row's number: its ``number`` field, or one fixed by MANIFEST_NUMBER_SEED when the manifest has none."""
    if rows and "number" in rows[0].fields:
        return [row.fields["number"] for row in rows]
    return fixed_numbers(len(rows), MANIFEST_NUMBER_SEED).tolist()


def evaluate_manifest(predictor: Predictor, rows: list[Row],
                      on_batch: Callable[[int], None] | None = None) -> ManifestReport:
    """Predict every labelled row and score the ones that could be read."""
    numbers = row_numbers(rows)
    read, misread, failed = [], [], []  # read: (row result, true digit)
    for row, answer in zip(rows, predict_rows(predictor, rows, numbers, on_batch=on_batch), strict=True):
        if isinstance(answer, Failed):
            failed.append(answer)
            continue
        truth, p = check_digit(row.fields["digit"]), answer.prediction
        read.append((answer, truth))
        if p.digit != truth or p.sum != truth + answer.number:
            misread.append(Misread(answer, truth))
    columns = [[t, a.prediction.digit, a.prediction.sum, a.number] for a, t in read]
    truth, digits, sums, numbers_read = torch.tensor(columns, dtype=torch.long).reshape(-1, 4).T  # (N,) each
    card = metrics(digits, sums, truth, numbers_read) if read else {"n": 0}
    pairs = Counter((t, a.prediction.digit) for a, t in read if a.prediction.digit != t)
    card["confusions"] = rank_confusions(pairs)
    card["is_digit_rate"] = sum(a.prediction.is_digit for a, _ in read) / len(read) if read else float("nan")
    card["failed"] = len(failed)
    return ManifestReport(card, misread, failed)
