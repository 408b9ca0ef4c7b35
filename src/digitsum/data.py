"""MNIST files: locate them, download what is missing, verify digests, parse IDX.

The four files are found in this order: an explicit folder (``--data-dir``), the
``DIGITSUM_DATA`` environment variable, then the user cache
(``$XDG_CACHE_HOME/digitsum/mnist``). Each may be gzip-compressed or raw; the
SHA-256 of the *decompressed* content must match the digests below. Only files that
are missing are downloaded, from an ordered list of mirrors, each into a temporary
file that is renamed once its digest verifies.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write_bytes

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 of each file's decompressed content.
DIGESTS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# (images file, labels file, number of items) per split.
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


class DataError(Exception):
    """A data file is missing, unreadable, malformed or fails its digest."""


@dataclass(frozen=True)
class Split:
    """One MNIST split held in memory."""

    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64


def default_cache_dir() -> Path:
    """The user cache folder for MNIST: ``$XDG_CACHE_HOME/digitsum/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digitsum" / "mnist"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read MNIST from: the argument, ``DIGITSUM_DATA``, or the cache."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("DIGITSUM_DATA"):
        return Path(os.environ["DIGITSUM_DATA"])
    return default_cache_dir()


def find_file(folder: Path, name: str) -> Path | None:
    """The path of ``name`` or ``name.gz`` in ``folder``, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    """The decompressed content of a raw or gzip file."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    return decompress(raw, str(path))


def decompress(raw: bytes, source: str) -> bytes:
    """``raw`` itself, or its decompressed content if it is gzip data (``source`` names it in errors)."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{source}: corrupt or truncated gzip data ({error})") from None


def check_digest(name: str, content: bytes, source: str) -> None:
    """Raise DataError unless ``content`` has the known SHA-256 of file ``name``."""
    digest = hashlib.sha256(content).hexdigest()
    if digest != DIGESTS[name]:
        raise DataError(
            f"{source}: SHA-256 of the decompressed content is {digest[:12]}..., "
            f"expected {DIGESTS[name][:12]}... (corrupt or not the MNIST file {name}); "
            "delete it so it can be fetched again"
        )


def parse_idx(content: bytes, source: str, magic: int, count: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic, dimensions and length."""
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{source}: too short for an IDX header ({len(content)} bytes)")
    found = int.from_bytes(content[:4], "big")
    if found != magic:
        raise DataError(f"{source}: bad magic number {found:#010x}, expected {magic:#010x}")
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = [count, 28, 28][:ndim]
    if dims != expected:
        raise DataError(f"{source}: dimensions {dims}, expected {expected}")
    size = int(np.prod(dims))
    if len(content) - header != size:
        raise DataError(
            f"{source}: {len(content) - header} bytes of data, expected {size} "
            "(truncated or padded)"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def load_file(folder: Path, name: str, count: int) -> np.ndarray:
    """Read, verify and parse one MNIST file from ``folder``."""
    path = find_file(folder, name)
    if path is None:
        raise DataError(f"{folder}: missing {name} (or {name}.gz)")
    content = read_bytes(path)
    magic = IMAGE_MAGIC if "images" in name else LABEL_MAGIC
    array = parse_idx(content, str(path), magic, count)  # structure first: clearer errors
    check_digest(name, content, str(path))
    return array


def load_split(folder: Path, split: str) -> Split:
    """Load the ``train`` or ``test`` split from ``folder`` (no download)."""
    images_name, labels_name, count = SPLITS[split]
    images = load_file(folder, images_name, count)
    labels = load_file(folder, labels_name, count)
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def missing_files(folder: Path) -> list[str]:
    """Names of the MNIST files not present (in either form) in ``folder``."""
    return [name for name in DIGESTS if find_file(folder, name) is None]


def download_file(name: str, folder: Path, mirrors: tuple[str, ...], timeout: float) -> list[str]:
    """Fetch ``name.gz`` from the first mirror that serves it intact.

    Returns the list of failures (one line per mirror tried) if none did.
    """
    failures = []
    for mirror in mirrors:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                raw = resp.read()  # about 10 MB at most: verified in memory, written only when intact
            content = decompress(raw, url)
            parse_idx(content, url, IMAGE_MAGIC if "images" in name else LABEL_MAGIC,
                      SPLITS["train" if name.startswith("train") else "test"][2])
            check_digest(name, content, url)
            atomic_write_bytes(folder / f"{name}.gz", raw)
            return []
        except (OSError, http.client.HTTPException, DataError, ValueError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    return failures


def mirrors_from_env() -> tuple[str, ...]:
    """The mirrors to try: ``DIGITSUM_MIRRORS`` (comma-separated base URLs) or the defaults."""
    listed = [m.strip() for m in os.environ.get("DIGITSUM_MIRRORS", "").split(",") if m.strip()]
    return tuple(m if m.endswith("/") else m + "/" for m in listed) or MIRRORS


def ensure_mnist(folder: Path, mirrors: tuple[str, ...] | None = None, timeout: float = 30.0) -> None:
    """Download whatever MNIST files are missing from ``folder``; no network if none are."""
    missing = missing_files(folder)
    if not missing:
        return
    mirrors = mirrors or mirrors_from_env()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{folder}: cannot create the data folder ({error.strerror})") from None
    still_missing = [name for name in missing if download_file(name, folder, mirrors, timeout)]
    if still_missing:
        raise DataError(
            f"MNIST files missing and every mirror failed: {', '.join(still_missing)}. "
            f"Download them (gzip or raw) from one of {', '.join(mirrors)} and put them in "
            f"{folder}, or point --data-dir or DIGITSUM_DATA at a folder that holds them."
        )


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
