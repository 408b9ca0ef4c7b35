"""Collecting labelled drawings from the page (``digitsum serve --collect DIR``), to fine-tune on later.

A person corrects or confirms a reading ("this is a 4"): the page sends the PNG it drew and the
label. The collector keeps the drawing as sent, under a name of its own choosing (a counter and a
random part; nothing of the request's file name is used), and a row ``image,digit`` in
``DIR/labels.csv``, the manifest that ``digitsum train --extra-digits`` and ``digitsum evaluate
--manifest`` read. The drawing is written first and the CSV replaced whole by an atomic rename, so a
crash at any moment leaves every row that was acknowledged, each pointing at a complete file. The
folder holds at most ``max_drawings``; past that a save is refused (CollectionFull), never made.
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
from pathlib import Path

from ..errors import DigitsumError, InputError, ServeError
from ..files import atomic_write_bytes
from ..rows import EVALUATE_COLUMNS

LABELS = "labels.csv"
MAX_DRAWINGS = 1000  # default bound of a collection folder: about 10 MB of page drawings


class CollectionFull(DigitsumError):
    """The collection folder already holds its most drawings."""


class Collector:
    """Saves labelled drawings into one folder and its ``labels.csv``; safe to call from many threads."""

    def __init__(self, folder: str | Path, max_drawings: int = MAX_DRAWINGS):
        self.folder, self.max_drawings = Path(folder), max_drawings
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rows = self._read_rows()

    @property
    def labels(self) -> Path:
        return self.folder / LABELS

    def __len__(self) -> int:
        return len(self._rows)

    def _read_rows(self) -> list[tuple[str, int]]:
        """The rows already in ``labels.csv`` (none for a new folder)."""
        if not self.labels.exists():
            return []
        with open(self.labels, newline="", encoding="utf-8") as f:
            return [(row["image"], int(row["digit"])) for row in csv.DictReader(f)]

    def save(self, png: bytes, digit: int) -> str:
        """Keep ``png`` (already checked to be a readable drawing) labelled ``digit``; the file name given it."""
        if not (isinstance(digit, int) and 0 <= digit <= 9):
            raise InputError(f"digit must be an integer 0-9, got {digit!r}")
        with self._lock:
            if len(self._rows) >= self.max_drawings:
                raise CollectionFull(f"the collection folder {self.folder} is full ({self.max_drawings} drawings): "
                                     "move its drawings elsewhere, or restart with a larger --collect-max")
            name = f"{len(self._rows) + 1:05d}-{secrets.token_hex(4)}.png"
            atomic_write_bytes(self.folder / name, png)
            rows = [*self._rows, (name, digit)]
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(EVALUATE_COLUMNS)  # the manifest evaluate --manifest and --extra-digits read
            writer.writerows(rows)
            atomic_write_bytes(self.labels, text.getvalue().encode())
            self._rows = rows
        return name


def open_collector(folder: str | Path, max_drawings: int = MAX_DRAWINGS) -> Collector:
    """A Collector on ``folder`` (made if missing), or a ServeError saying why it cannot be used."""
    try:
        return Collector(folder, max_drawings)
    except FileExistsError:
        raise ServeError(f"--collect {folder} is a file, not a folder: give a folder") from None
    except OSError as error:
        raise ServeError(f"cannot use --collect {folder}: {error.strerror or error}") from None
    except (KeyError, ValueError, csv.Error):
        raise ServeError(f"--collect {folder} holds a {LABELS} that is not one this server wrote "
                         "(columns image,digit): give another folder") from None
