"""MNIST: locate the four files, download what is missing, verify their digests, parse IDX.

The files are found in this order: an explicit folder (``--data-dir``), the ``DIGITSUM_DATA``
environment variable, then the user cache (``$XDG_CACHE_HOME/digitsum/mnist``). Each may be
gzip-compressed or raw; the SHA-256 of the *decompressed* content must match the known digests
(``idx.py``). Only missing files are downloaded, from an ordered list of mirrors
(``download.py``), each verified in memory before it is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import cache_dir
from .download import MIRRORS, ensure_mnist
from .idx import DIGESTS, IMAGE_MAGIC, LABEL_MAGIC, SPLITS, load_file, missing_files, parse_idx

__all__ = ["DIGESTS", "IMAGE_MAGIC", "LABEL_MAGIC", "MIRRORS", "SPLITS", "DataError", "Split", "data_digests",
           "default_cache_dir", "ensure_mnist", "load_file", "load_mnist", "load_split", "missing_files",
           "parse_idx", "resolve_data_dir"]


@dataclass(frozen=True)
class Split:
    """One MNIST split held in memory."""

    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64


def default_cache_dir() -> Path:
    """The user cache folder for MNIST: ``$XDG_CACHE_HOME/digitsum/mnist``."""
    return cache_dir("mnist")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read MNIST from: the argument, ``DIGITSUM_DATA``, or the cache."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("DIGITSUM_DATA"):
        return Path(os.environ["DIGITSUM_DATA"])
    return default_cache_dir()


def load_split(folder: Path, split: str) -> Split:
    """Load the ``train`` or ``test`` split from ``folder`` (no download)."""
    images_name, labels_name, _ = SPLITS[split]
    images, labels = load_file(folder, images_name), load_file(folder, labels_name)
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True,
               splits: tuple[str, ...] = tuple(SPLITS)) -> dict[str, Split]:
    """MNIST's ``splits`` (default: both), from the resolved data folder, downloading missing files."""
    folder = resolve_data_dir(data_dir)
    if download:
        ensure_mnist(folder)
    return {split: load_split(folder, split) for split in splits}


def data_digests() -> dict[str, str]:
    """The SHA-256 digests a run's data was verified against (for config.json)."""
    return dict(DIGESTS)
