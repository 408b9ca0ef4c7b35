"""MNIST's IDX files: find them in a folder, decompress, parse, and verify them against known digests."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

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


def find_file(folder: Path, name: str) -> Path | None:
    """The path of ``name`` or ``name.gz`` in ``folder``, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_files(folder: Path) -> list[str]:
    """Names of the MNIST files not present (in either form) in ``folder``."""
    return [name for name in DIGESTS if find_file(folder, name) is None]


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
        raise DataError(f"{source}: {len(content) - header} bytes of data, expected {size} (truncated or padded)")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def verify(name: str, content: bytes, source: str) -> np.ndarray:
    """The array in the decompressed content of MNIST file ``name``: structure first (clearer errors), then digest."""
    magic = IMAGE_MAGIC if "images" in name else LABEL_MAGIC
    count = SPLITS["train" if name.startswith("train") else "test"][2]
    array = parse_idx(content, source, magic, count)
    check_digest(name, content, source)
    return array


def load_file(folder: Path, name: str) -> np.ndarray:
    """Read, verify and parse one MNIST file from ``folder``."""
    path = find_file(folder, name)
    if path is None:
        raise DataError(f"{folder}: missing {name} (or {name}.gz)")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    return verify(name, decompress(raw, str(path)), str(path))
