"""CSV manifests of people's images: predict every row, or evaluate a model on labelled rows.

A manifest has a header naming its columns (others are ignored); image paths are relative to
the manifest's folder, or absolute. ``digitsum predict --manifest`` needs ``image,number``;
``digitsum evaluate --manifest`` needs ``image,digit`` and takes ``number`` when it is there
(else numbers fixed by a seed). The model runs on batches of the rows that preprocess cleanly;
every row gets a result, in order: ``Predicted`` or ``Failed``; a bad row never stops the others.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import NUM_DIGITS
from .errors import InputError, ManifestError
from .predict import BATCH_SIZE, Prediction, Predictor, check_number
from .preprocess import load_digit

PREDICT_COLUMNS, EVALUATE_COLUMNS = ("image", "number"), ("image", "digit")
MANIFEST_NUMBER_SEED = 3_000_017  # numbers of an evaluation manifest without a number column


@dataclass(frozen=True)
class Row:
    """One manifest row: its fields as written (stripped), and the image's resolved path."""

    fields: dict[str, str]
    path: Path

    @property
    def image(self) -> str:
        return self.fields["image"]


def read_manifest(path: str | os.PathLike, columns: tuple[str, ...] = PREDICT_COLUMNS) -> list[Row]:
    """The rows of a CSV manifest that has ``columns`` in its header, image paths resolved against its folder."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in columns if c not in header]
            if missing:
                raise ManifestError(f"manifest {path} needs a header with the columns {','.join(columns)} "
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
        clean = {k: (v or "").strip() for k, v in fields.items() if isinstance(k, str)}
        rows.append(Row(clean, path.parent / clean.get("image", "")))
    return rows


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


def check_digit(value: str) -> int:
    """A row's label as an int 0-9, or an InputError."""
    if value.isdigit() and int(value) < NUM_DIGITS:
        return int(value)
    raise InputError(f"digit must be an integer 0-9, got {value!r}")


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
