"""An epoch's figures and validation, and what training tells its hooks (``Hooks``) as it goes.

Under ``torchrun`` every rank trains on its share of each global batch; the figures are
summed over all ranks (``World.sum``), so they are exact, not an average of averages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..evaluate import infer
from ..mixture import NumberMixture
from .distributed import World
from .state import EpochTally


@dataclass
class EpochRecord:
    """One line of metrics.jsonl."""

    epoch: int
    train_loss: float
    train_digit_accuracy: float
    train_sum_accuracy: float
    val_digit_accuracy: float
    val_sum_accuracy: float
    seconds: float  # wall time of this epoch's training, evaluation excluded
    lr: float


@dataclass
class StepDone:
    """What ``on_step`` gets after each optimizer step."""

    step: int  # steps done in this epoch
    steps: int  # steps per epoch
    seconds: float  # this epoch's training time so far (on_step's own time excluded)
    model: torch.nn.Module  # in training mode (``evaluate.infer`` leaves it so)
    loss: float = 0.0  # this step's loss (on this rank's share of the batch)


@dataclass
class Started:
    """What ``on_start`` gets once the run is set up, before its first step."""

    cfg: TrainConfig  # the run's config (a resumed run's own)
    epoch: int  # the epoch training starts in
    step: int  # steps of that epoch already done (a resumed run)
    resumed: bool


StepHook = Callable[[StepDone], None]
EpochHook = Callable[[EpochRecord, torch.nn.Module], None]  # (the epoch's record, the model), after validation


@dataclass(frozen=True)
class Hooks:
    """Functions training calls on rank 0 as it goes (each may be None)."""

    on_start: Callable[[Started], None] | None = None
    on_step: StepHook | None = None  # after each optimizer step
    on_epoch: EpochHook | None = None  # after each epoch's validation; gets the model too (a benchmark's test)


def epoch_figures(tally: EpochTally, world: World) -> tuple[float, float, float]:
    """(mean loss, digit accuracy, sum accuracy) of an epoch over every rank's items."""
    loss_sum, digit_hits, sum_hits, seen = world.sum(tally.totals()).tolist()
    return loss_sum / seen, digit_hits / seen, sum_hits / seen


def validate(world: World, model: torch.nn.Module, mixture: NumberMixture) -> tuple[float, float]:
    """(digit, sum) accuracy on an evaluation mixture: each rank infers its share, the hits are summed.

    Exact: the shares cover every item once, nothing is padded or repeated.
    """
    world.broadcast_buffers(model)  # every rank evaluates the weights and statistics rank 0 saves
    start, stop = world.shard(len(mixture))
    hits = torch.zeros(2, dtype=torch.long)
    if stop > start:
        out = infer(model, mixture, start=start, stop=stop)
        digits, numbers = mixture.labels[start:stop], mixture.numbers[start:stop]  # (n,), (n,)
        hits = torch.stack([(out.digits == digits).sum(), (out.sums == digits + numbers).sum()])
    digit_hits, sum_hits = world.sum(hits).tolist()
    return digit_hits / len(mixture), sum_hits / len(mixture)
