"""CSV manifests of people's images: predict every row, or evaluate a model on labelled rows.

A manifest has a header naming its columns (others are ignored); image paths are relative to
the manifest's folder, or absolute. ``digitsum predict --manifest`` needs ``image,number``;
``digitsum evaluate --manifest`` needs ``image,digit`` and takes ``number`` when it is there
(else numbers fixed by a seed). The model runs on batches of the rows that preprocess cleanly;
every row gets a result, in order: ``Predicted`` or ``Failed``; a bad row never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .predict import BATCH_SIZE, Prediction, Predictor, check_number
from .preprocess import load_digit
from .rows import EVALUATE_COLUMNS, PREDICT_COLUMNS, Row, check_digit, read_manifest

__all__ = ["EVALUATE_COLUMNS", "MANIFEST_NUMBER_SEED", "PREDICT_COLUMNS", "Failed", "Predicted", "Row",
           "check_digit", "predict_rows", "read_manifest"]

MANIFEST_NUMBER_SEED = 3_000_017  # numbers of an evaluation manifest without a number column


@dataclass(frozen=True)
class Predicted:
    """A row the model read: its image as written, its number and the prediction."""

    image: str
    number: int
    prediction: Prediction


@dataclass(frozen=True)
class Failed:
    """A row that could not be read: its image and number as written, and why."""

    image: str
    number: int | str
    error: str


def predict_rows(predictor: Predictor, rows: list[Row], numbers: list | None = None,
                 batch_size: int = BATCH_SIZE,
                 on_batch: Callable[[int], None] | None = None) -> Iterator[Predicted | Failed]:
    """One result per row, in order; the model runs once per batch of up to ``batch_size`` rows.

    ``numbers`` gives each row's number (default: its ``number`` field). A row whose image, number
    (or, when it has one, digit label) is unusable is ``Failed``. ``on_batch`` is told how many rows
    each batch held (a progress bar).
    """
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        done: dict[int, Predicted | Failed] = {}
        good, images, checked = [], [], []
        for i, row in enumerate(chunk):
            written = row.fields.get("number", "") if numbers is None else numbers[start + i]
            try:
                if not row.image:
                    raise InputError("row has no image path")
                number = check_number(written)
                if "digit" in row.fields:
                    check_digit(row.fields["digit"])
                images.append(load_digit(row.path))  # (28, 28) uint8
            except InputError as error:
                done[i] = Failed(row.image, _as_written(written), str(error))
                continue
            good.append(i)
            checked.append(number)
        if good:
            predictions = predictor.predict_arrays(np.stack(images), checked, batch_size)
            for i, number, prediction in zip(good, checked, predictions, strict=True):
                done[i] = Predicted(chunk[i].image, number, prediction)
        if on_batch:
            on_batch(len(chunk))
        yield from (done[i] for i in range(len(chunk)))


def _as_written(number):
    """A row's number for its error record: an int when it is one, else the text as written."""
    try:
        return int(number)
    except (TypeError, ValueError):
        return number
