"""Reading CSV manifests of people's images: a header naming its columns (others are ignored), one
image a row, image paths relative to the manifest's folder or absolute. What reads them: ``predict
--manifest`` and ``evaluate --manifest`` (manifest.py, labelled.py), ``train --extra-digits`` (extra.py)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from .config import NUM_DIGITS
from .errors import InputError, ManifestError

PREDICT_COLUMNS, EVALUATE_COLUMNS = ("image", "number"), ("image", "digit")


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


def check_digit(value: str) -> int:
    """A row's label as an int 0-9, or an InputError."""
    if value.isdigit() and int(value) < NUM_DIGITS:
        return int(value)
    raise InputError(f"digit must be an integer 0-9, got {value!r}")
