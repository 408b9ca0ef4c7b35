"""The resumable states of a run on disk: ``RUN/resume/step-NNNNNNN/`` (NNNNNNN: optimizer steps done).

Each holds ``state.safetensors`` and ``state.json`` (see state.py). A state is written into a
temporary folder that is renamed into place once complete; the two newest complete states are
kept, so a damaged newest one still leaves the one before it. Reading verifies the JSON, the
format and the SHA-256 of the tensors before anything is loaded. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from ..errors import CheckpointError
from ..files import CONFIG, METRICS, RESUME, atomic_write_bytes, read_json
from .state import FORMAT, SavedState, sha256

TENSORS, META = "state.safetensors", "state.json"
KEEP = 2  # complete states kept: the newest and the one before it
STATE_NAME = re.compile(r"step-(\d+)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(run_dir: Path, blob: bytes, meta: dict) -> Path:
    """Write an encoded state as ``RUN/resume/step-N/`` (temporary folder, then rename); keep the newest two."""
    root = run_dir / RESUME
    root.mkdir(exist_ok=True)
    final = root / f"step-{meta['global_step']:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        atomic_write_bytes(tmp / TENSORS, blob)
        atomic_write_bytes(tmp / META, (json.dumps(meta) + "\n").encode())  # last: marks the folder complete
        if final.exists():  # a state of this very step is already complete: keep it
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
            _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in complete_states(run_dir)[KEEP:]:
        shutil.rmtree(old)
    return final


def complete_states(run_dir: Path) -> list[Path]:
    """The run's complete resumable states, newest first (temporary folders are not listed)."""
    root = Path(run_dir) / RESUME
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STATE_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(STATE_NAME.fullmatch(p.name)[1]), reverse=True)


def remove_states(run_dir: Path) -> None:
    """Delete the run's resumable states (once the run is complete)."""
    shutil.rmtree(Path(run_dir) / RESUME, ignore_errors=True)


def _fallback(states: list[Path]) -> str:
    if len(states) > 1:
        return f"remove that folder to resume from the one before it ({states[1].name})"
    return "start the run again with --overwrite"


def read_newest(run_dir: Path) -> tuple[Path, bytes, bytes]:
    """(folder, state.json bytes, state.safetensors bytes) of the newest complete state."""
    states = complete_states(run_dir)
    if not states:
        raise CheckpointError(f"{run_dir} holds no resumable state ({RESUME}/step-*/): "
                              "it is not a run directory of this digitsum, or the run already finished")
    try:
        return states[0], (states[0] / META).read_bytes(), (states[0] / TENSORS).read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read resumable state {states[0]}: {error.strerror}; "
                              f"{_fallback(states)}") from None


def resume_point(run_dir: Path) -> tuple[int, int] | None:
    """(epoch, step) the newest complete state resumes at, or None if there is none readable."""
    states = complete_states(run_dir)
    try:
        meta = json.loads((states[0] / META).read_bytes())
        return int(meta["epoch"]), int(meta["step"])
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return None


def parse_state(folder: Path, meta_bytes: bytes, blob: bytes) -> SavedState:
    """Verify and decode a state read by ``read_newest`` (CheckpointError if damaged)."""
    states = complete_states(folder.parent.parent) or [folder]  # folder is RUN/resume/step-N
    damaged = f"resumable state {folder} is damaged"
    try:
        meta = json.loads(meta_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{damaged} ({META} is not valid JSON); {_fallback(states)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{damaged} ({META} is not a format-{FORMAT} state); {_fallback(states)}")
    if meta.get("state_sha256") != sha256(blob):
        raise CheckpointError(f"{damaged} ({TENSORS} is truncated or altered: its SHA-256 does not match "
                              f"{META}); {_fallback(states)}")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"{damaged} ({error}); {_fallback(states)}") from None
    return SavedState(folder, meta, tensors)


def read_run(run_dir: Path) -> tuple[bytes, bytes, bytes, bytes]:
    """What rank 0 reads to resume a run: (config.json, the state's folder, state.json, state.safetensors),
    as bytes that ``World.broadcast_bytes`` can send to the other ranks, which verify them with ``parse_state``."""
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} not found; give the --out of the run to resume")
    if (run_dir / METRICS).exists():
        raise CheckpointError(f"{run_dir} is a finished run ({METRICS} written): there is nothing to resume")
    folder, meta, blob = read_newest(run_dir)
    config = read_json(run_dir / CONFIG, "run config")
    return json.dumps(config).encode(), str(folder).encode(), meta, blob
