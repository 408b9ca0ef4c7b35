"""Fetch missing MNIST files from an ordered list of mirrors, verifying each before it is written."""

from __future__ import annotations

import http.client
import os
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..files import atomic_write_bytes
from .idx import decompress, missing_files, verify

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def mirrors_from_env() -> tuple[str, ...]:
    """The mirrors to try: ``DIGITSUM_MIRRORS`` (comma-separated base URLs) or the defaults."""
    listed = [m.strip() for m in os.environ.get("DIGITSUM_MIRRORS", "").split(",") if m.strip()]
    return tuple(m if m.endswith("/") else m + "/" for m in listed) or MIRRORS


def download_file(name: str, folder: Path, mirrors: tuple[str, ...], timeout: float) -> list[str]:
    """Fetch ``name.gz`` from the first mirror that serves it intact; the failures (one per mirror) if none did."""
    failures = []
    for mirror in mirrors:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                raw = resp.read()  # about 10 MB at most: verified in memory, written only when intact
            verify(name, decompress(raw, url), url)
            atomic_write_bytes(folder / f"{name}.gz", raw)
            return []
        except (OSError, http.client.HTTPException, DataError, ValueError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    return failures


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
