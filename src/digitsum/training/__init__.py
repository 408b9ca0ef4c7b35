"""Training: a new run (``train``) or an interrupted one continued (``resume_training``).

The parts, each in the module named after it:

* ``objective``: digitsum's loss and the optimizer with its schedule;
* ``epoch``: one epoch's steps, its figures and validation;
* ``loop``: epochs, best weights, resumable states, the final test;
* ``state`` and ``store``: a run's resumable state, and its folder on disk;
* ``rundir``: config.json and metrics.jsonl;
* ``distributed``: torchrun's process group as a ``World`` (one process: a world of one).

Both entry points leave torch's thread count and global random state as they found them.
"""

from __future__ import annotations

from .epoch import EpochRecord, StepDone
from .loop import TrainingInterrupted, train
from .resume import resume_training

__all__ = ["EpochRecord", "StepDone", "TrainingInterrupted", "resume_training", "train"]
