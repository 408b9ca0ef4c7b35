"""Training: ``train`` runs a new run, or (``start=Resume()``) continues an interrupted one.

The parts, each in the module named after it:

* ``loop``: ``train`` itself, top to bottom: set-up, the epochs and their steps, the finish;
* ``objective``: digitsum's loss and the optimizer with its schedule;
* ``epoch``: an epoch's figures and validation, and what the hooks are told;
* ``resume``: how a run starts (``New``, ``Resume``), and saving and restoring its state;
* ``state`` and ``store``: a run's resumable state as tensors + JSON, and its folder on disk;
* ``rundir``: config.json and metrics.jsonl;
* ``distributed``: torchrun's process group as a ``World`` (one process: a world of one).

``train`` leaves torch's thread count and global random state as it found them.
"""

from __future__ import annotations

from pathlib import Path

from .epoch import EpochHook, EpochRecord, Hooks, Started, StepDone, StepHook
from .loop import train
from .resume import New, Resume, TrainingInterrupted

__all__ = ["EpochRecord", "Hooks", "New", "Resume", "Started", "StepDone", "TrainingInterrupted",
           "resume_training", "train"]


def resume_training(run_dir: str | Path, data_dir: str | None = None, on_epoch: EpochHook | None = None,
                    on_step: StepHook | None = None, threads: int | None = None, device: str | None = None) -> dict:
    """``train``'s resume path under its earlier name: continue the run in ``run_dir`` with its own config."""
    return train(None, None, run_dir, data_dir, start=Resume(threads, device),
                 hooks=Hooks(on_step=on_step, on_epoch=on_epoch))
