"""The run directory: what a new run writes first, and the training/validation split it records."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from . import __version__, resume
from .checkpoint import CONFIG, METRICS, WEIGHTS
from .config import ModelConfig, TrainConfig
from .data import Split, data_digests
from .mixture import VAL_NUMBER_SEED, NumberMixture

HISTORY = "metrics.jsonl"
RUN_FILES = (CONFIG, WEIGHTS, HISTORY, METRICS, resume.RESUME)


class RunDirError(Exception):
    """The output directory cannot be used for a new run, or holds no run to resume."""


def split_train_val(train: Split, cfg: TrainConfig) -> tuple[NumberMixture, NumberMixture]:
    """Hold out the last ``val_size`` training images; keep the first ``limit`` of the rest."""
    n_train = len(train.images) - cfg.val_size
    if cfg.limit:
        n_train = min(n_train, cfg.limit)
    val = slice(len(train.images) - cfg.val_size, None)
    return (
        NumberMixture(train.images[:n_train], train.labels[:n_train]),
        NumberMixture.fixed(train.images[val], train.labels[val], VAL_NUMBER_SEED),
    )


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
    resume.remove_states(out)
    for name in existing:
        if name != resume.RESUME:
            (out / name).unlink()


def run_config(model_cfg: ModelConfig, cfg: TrainConfig, n_train: int) -> dict:
    """What config.json records: enough to rebuild the model and repeat the run."""
    return {
        "model": model_cfg.to_dict(),
        "train": cfg.to_dict(),
        "seed": cfg.seed,
        "data": {"sha256": data_digests(), "train_images": n_train, "val_images": cfg.val_size,
                 "val_number_seed": VAL_NUMBER_SEED},
        "versions": {"digitsum": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
