"""Labelled digits beyond MNIST, to train on: ``digitsum train --extra-digits FILE.csv`` (repeatable).

A file is the manifest ``evaluate --manifest`` reads (``image,digit``, image paths relative to
the CSV's folder, or absolute; ``serve --collect`` writes one). Every image is preprocessed
once, as ``predict`` does, into an MNIST-style 28x28 digit; training then shuffles these with
MNIST's images, pairs them with numbers and augments them the same way. A row that cannot be
read is an error naming the file and the row, before anything trains.

Each file is recorded with a SHA-256 over the CSV's bytes and every image it names, in order,
so that ``--resume`` can refuse a run whose extra digits changed since it started.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ImageError, InputError, ManifestError
from .preprocess import load_digit
from .rows import EVALUATE_COLUMNS, Row, check_digit, read_manifest


@dataclass(frozen=True)
class ExtraDigits:
    """Preprocessed labelled digits and where they came from."""

    images: torch.Tensor  # (N, 28, 28) uint8, MNIST-style
    labels: torch.Tensor  # (N,) int64, 0-9
    sources: tuple[dict, ...]  # per file, in order: {"path", "sha256", "n"}


def source_digest(path: Path, rows: list[Row]) -> str:
    """SHA-256 over a manifest's bytes and the bytes of every image it names, in order."""
    digest = hashlib.sha256(path.read_bytes())
    for row in rows:
        try:
            digest.update(row.path.read_bytes())
        except OSError:
            digest.update(b"\0missing\0" + os.fsencode(row.path))  # read_row names it when the digits are read
    return digest.hexdigest()


def read_row(path: Path, number: int, row: Row) -> tuple[np.ndarray, int]:
    """(28x28 uint8 digit, label) of data row ``number`` (1 = the first after the header), or a ManifestError."""
    where = f"{path} row {number} ({row.image})"
    try:
        return load_digit(row.path), check_digit(row.fields["digit"])
    except (ImageError, InputError) as error:
        message = str(error).removeprefix(f"image {row.path} ")
        raise ManifestError(f"{where}: {message}; fix or remove the row (nothing was trained)") from None


def read_extra_digits(paths: list[str | os.PathLike]) -> ExtraDigits:
    """Every labelled digit of every file in ``paths``; a bad file or row is a ManifestError."""
    images, labels, sources = [], [], []
    for name in paths:
        path = Path(name)
        rows = read_manifest(path, EVALUATE_COLUMNS)
        if not rows:
            raise ManifestError(f"--extra-digits {path} has no rows: give a CSV with at least one image,digit row")
        for number, row in enumerate(rows, start=1):
            image, label = read_row(path, number, row)
            images.append(image)
            labels.append(label)
        sources.append({"path": str(path), "sha256": source_digest(path, rows), "n": len(rows)})
    if not images:
        return ExtraDigits(torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), ())
    return ExtraDigits(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long), tuple(sources))


def changed_sources(recorded: list[dict]) -> list[str]:
    """The files of a run's recorded sources that are gone or whose digest differs now."""
    changed = []
    for source in recorded:
        path = Path(source["path"])
        try:
            rows = read_manifest(path, EVALUATE_COLUMNS)
            same = source_digest(path, rows) == source["sha256"]
        except ManifestError:
            same = False
        if not same:
            changed.append(str(path))
    return changed
