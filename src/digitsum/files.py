"""The files digitsum writes: their names in a run directory, and writing them atomically.

A run directory (and a checkpoint, which is its model part) holds:

* ``config.json``: model and training config, seed, data digests, versions;
* ``model.safetensors``: the weights (safetensors: nothing is ever unpickled);
* ``metrics.jsonl``: one line per epoch; ``metrics.json``: the final test figures;
* ``calibration.json``: the fitted temperatures and the is-a-digit rule;
* ``novelty.safetensors`` and ``novelty.json``: the verdict's rule (novelty.py);
* ``resume/``: while the run is in progress, its resumable states.

Every file is written to a temporary name in the same folder, then renamed, so that readers
see the old file or the new one, never half of one. ``read_json`` reads one of these JSON files
back, for checkpoints, resuming and reports alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import CheckpointError, WriteError

CONFIG, WEIGHTS, HISTORY, METRICS = "config.json", "model.safetensors", "metrics.jsonl", "metrics.json"
CALIBRATION, RESUME = "calibration.json", "resume"
NOVELTY_TENSORS, NOVELTY_RULE = "novelty.safetensors", "novelty.json"
RUN_FILES = (CONFIG, WEIGHTS, HISTORY, METRICS, CALIBRATION, NOVELTY_TENSORS, NOVELTY_RULE, RESUME)


def cache_dir(name: str) -> Path:
    """digitsum's user cache folder ``name``: ``$XDG_CACHE_HOME/digitsum/<name>`` (``~/.cache/digitsum/<name>``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digitsum" / name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    A failure (a full disk, no permission) is a WriteError naming the file; nothing is left behind.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise WriteError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)


def atomic_write_json(path: str | os.PathLike, value) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())


def read_bytes(path: Path, what: str) -> bytes:
    """The bytes of ``path``; CheckpointError naming it as ``what`` (such as "run config") if it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} not found") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {what} {path}: {error.strerror}") from None


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``; CheckpointError naming it as ``what``, with the reason, if it is not one."""
    try:
        value = json.loads(read_bytes(path, what))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{what} {path} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{what} {path} is not a JSON object")
    return value
