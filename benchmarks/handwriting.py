"""Readers for the evaluation-only sets in ``../shared/data``: real handwriting and real non-digits.

These sets measure how digitsum reads other people's digits (USPS, optdigits) and whether it
can tell a drawing that is not a digit (Omniglot). They are never trained, validated or
selected on, and the package itself never reads them: only benchmarks and tests do, through
this module. See ``../shared/data/handwriting/README.md`` and ``../shared/data/nondigits/README.md``.

    usps(folder, "test")        -> Digits: uint8 (2007, 16, 16), light ink on black
    optdigits(folder)           -> Digits: uint8 (2880, 32, 32), ink 255 on 0 (both files)
    omniglot(folder)            -> {alphabet: [PNG bytes, ...]}, 4,840 distinct drawings
"""

from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HANDWRITING = Path(os.environ.get("DIGITSUM_HANDWRITING") or SHARED / "handwriting")
NONDIGITS = Path(os.environ.get("DIGITSUM_NONDIGITS") or SHARED / "nondigits")

USPS_FILES = {"train": "zip.train.gz", "test": "zip.test.gz"}
OPTDIGITS_FILES = ("optdigits-orig.tra", "optdigits-orig.tes")
OMNIGLOT_ARCHIVES = ("images_background_small1.zip", "images_background_small2.zip")
LATIN = "Latin"  # letters such as O, I, S, Z: reported apart from the other alphabets


@dataclass(frozen=True)
class Digits:
    """A labelled set of digit images."""

    name: str
    images: np.ndarray  # (N, H, W) uint8, light ink on a black background
    labels: np.ndarray  # (N,) int64, 0-9

    def __len__(self) -> int:
        return len(self.labels)


def usps(folder: str | os.PathLike = HANDWRITING, split: str = "test") -> Digits:
    """USPS ``split`` ("train": 7,291 digits, "test": 2,007): 16x16 grey values in [-1, 1] -> uint8 0-255."""
    path = Path(folder) / "usps" / USPS_FILES[split]
    rows = np.loadtxt(gzip.open(path, "rt"), dtype=np.float64)  # (N, 257): label, then 256 values
    if rows.ndim != 2 or rows.shape[1] != 257:
        raise ValueError(f"{path}: expected rows of 257 numbers (label + 16x16), got shape {rows.shape}")
    labels = rows[:, 0].astype(np.int64)
    images = np.round((np.clip(rows[:, 1:], -1, 1) + 1) * 127.5).astype(np.uint8).reshape(-1, 16, 16)
    return Digits(f"USPS {split}", images, labels)


def read_optdigits_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``optdigits-orig`` file: a count line, then per digit 32 lines of 32 '0'/'1' and a label line."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    count = int(lines[0])
    body = [line for line in lines[1:] if line]
    if len(body) != 33 * count:
        raise ValueError(f"{path}: {len(body)} lines after the count, expected 33 x {count}")
    images = np.zeros((count, 32, 32), dtype=np.uint8)
    labels = np.zeros(count, dtype=np.int64)
    for i in range(count):
        block = body[33 * i : 33 * i + 33]
        bits = np.array([[c == "1" for c in row] for row in block[:32]])
        if bits.shape != (32, 32):
            raise ValueError(f"{path}: digit {i} is not 32 lines of 32 characters")
        images[i] = bits * 255
        labels[i] = int(block[32])
    return images, labels


def optdigits(folder: str | os.PathLike = HANDWRITING, files: tuple[str, ...] = OPTDIGITS_FILES) -> Digits:
    """optdigits (both files by default: 2,880 digits): 32x32 binary bitmaps, ink 255."""
    parts = [read_optdigits_file(Path(folder) / "optdigits" / name) for name in files]
    return Digits("optdigits", np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def omniglot(folder: str | os.PathLike = NONDIGITS) -> dict[str, list[bytes]]:
    """Omniglot's drawings as PNG files, by alphabet; Greek and Latin (in both archives) counted once."""
    drawings: dict[str, dict[str, bytes]] = {}
    for archive in OMNIGLOT_ARCHIVES:
        with zipfile.ZipFile(Path(folder) / "omniglot" / archive) as z:
            for name in z.namelist():
                parts = name.split("/")  # images_background_smallN/<Alphabet>/<characterNN>/<id>.png
                if len(parts) == 4 and parts[3].endswith(".png"):
                    drawings.setdefault(parts[1], {})["/".join(parts[2:])] = z.read(name)
    return {alphabet: [files[k] for k in sorted(files)] for alphabet, files in sorted(drawings.items())}


def with_margin(images: np.ndarray, share: float = 0.15) -> np.ndarray:
    """Images (N, H, W) on a black margin of ``share`` of their side on every edge."""
    pad = max(1, round(share * images.shape[1]))
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
