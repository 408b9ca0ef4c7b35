"""Batch prediction from a CSV manifest: one result record per row, a failed row never stops the rest.

A manifest has a header with at least the columns ``image`` and ``number`` (others are
ignored); image paths are relative to the manifest's folder, or absolute. The model runs
on batches of the rows that preprocess cleanly; every row gets a record, in order.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ManifestError
from .predict import BATCH_SIZE, Prediction, Predictor, check_number
from .preprocess import load_digit

COLUMNS = ("image", "number")


@dataclass(frozen=True)
class Row:
    """One manifest row: the image and number as written, and the image's resolved path."""

    image: str
    number: str
    path: Path


def read_manifest(path: str | os.PathLike) -> list[Row]:
    """The rows of a CSV manifest, image paths resolved against the manifest's folder."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ManifestError(f"manifest {path} needs a header with the columns image,number "
                                    f"(missing: {', '.join(missing)}; found: {', '.join(header) or 'nothing'})")
            reader.fieldnames = header
            records = list(reader)
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} not found") from None
    except IsADirectoryError:
        raise ManifestError(f"manifest {path} is a folder, not a CSV file") from None
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {path} is not a UTF-8 text CSV file") from None
    except csv.Error as error:
        raise ManifestError(f"manifest {path} is not a valid CSV file ({error})") from None
    rows = []
    for fields in records:
        image, number = ((fields.get(c) or "").strip() for c in COLUMNS)
        rows.append(Row(image, number, path.parent / image))
    return rows


def record(image: str, number, prediction: Prediction) -> dict:
    """The JSON object digitsum prints for one prediction."""
    return {"image": image, "number": number, "digit": prediction.digit, "sum": prediction.sum,
            "digit_probability": prediction.digit_probability, "sum_probability": prediction.sum_probability}


def error_record(image: str, number, error: Exception) -> dict:
    """The JSON object digitsum prints for a row that failed."""
    return {"image": image, "number": number, "error": str(error)}


def predict_rows(predictor: Predictor, rows: list[Row], batch_size: int = BATCH_SIZE) -> Iterator[dict]:
    """One record per row, in order; the model runs once per batch of up to ``batch_size`` rows."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        done: dict[int, dict] = {}
        good, images, numbers = [], [], []
        for i, row in enumerate(chunk):
            try:
                if not row.image:
                    raise InputError("row has no image path")
                number = check_number(row.number)
                images.append(load_digit(row.path))  # (28, 28) uint8
            except InputError as error:
                done[i] = error_record(row.image, _as_written(row.number), error)
                continue
            good.append(i)
            numbers.append(number)
        if good:
            predictions = predictor.predict_arrays(np.stack(images), numbers, batch_size)
            for i, number, prediction in zip(good, numbers, predictions, strict=True):
                done[i] = record(chunk[i].image, number, prediction)
        yield from (done[i] for i in range(len(chunk)))


def _as_written(number: str):
    """A row's number for its error record: an int when it is one, else the text as written."""
    try:
        return int(number)
    except ValueError:
        return number
