"""The run directory: what a new run writes first (config.json), and its per-epoch history."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from .. import __version__
from ..config import ModelConfig, TrainConfig
from ..data import data_digests
from ..errors import RunDirError
from ..files import CONFIG, HISTORY, RESUME, RUN_FILES, atomic_write_bytes, atomic_write_json
from ..mixture import VAL_NUMBER_SEED
from .store import remove_states


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse one that already holds a run unless ``overwrite``."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise RunDirError(f"{out} already holds a run ({', '.join(existing)}); "
                          "choose another --out, pass --overwrite, or continue it with --resume")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create run directory {out}: {error.strerror}") from None
    remove_states(out)
    for name in existing:
        if name != RESUME:
            (out / name).unlink()


def run_config(model_cfg: ModelConfig, cfg: TrainConfig, n_train: int, extra: list[dict] | None = None,
               started_from: dict | None = None) -> dict:
    """What config.json records: enough to rebuild the model and repeat the run; ``extra`` the extra digits'
    files with their digests, ``started_from`` the starting weights' (--init); each only when there are some."""
    data = {"sha256": data_digests(), "train_images": n_train, "val_images": cfg.val_size,
            "val_number_seed": VAL_NUMBER_SEED}
    return {
        "model": model_cfg.to_dict(),
        "train": cfg.to_dict(),
        "seed": cfg.seed,
        "data": {**data, **({"extra_digits": extra} if extra else {}), **(started_from or {})},
        "versions": {"digitsum": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def write_config(out: Path, config: dict) -> None:
    """config.json, the first file of a new run."""
    atomic_write_json(out / CONFIG, config)


def write_history(out: Path, history: list[dict]) -> None:
    """metrics.jsonl: one line per epoch done (rewritten whole, so a resumed run drops any epoch it redoes)."""
    atomic_write_bytes(out / HISTORY, "".join(json.dumps(h) + "\n" for h in history).encode())
