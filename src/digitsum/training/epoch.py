"""One epoch: the training steps over a mixture's batches, and the epoch's figures and validation.

Under ``torchrun`` every rank runs these on its share of each global batch; the figures are
summed over all ranks (``World.sum``), so they are exact, not an average of averages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

import torch

from ..config import TrainConfig
from ..evaluate import infer
from ..mixture import NumberMixture
from .distributed import World
from .objective import digitsum_loss
from .state import EpochTally

clock = time.perf_counter  # the training clock (a test replaces it to count time without waiting)


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


StepHook = Callable[[StepDone], None]


def train_steps(net, opt, sched, mixture: NumberMixture, epoch: int, cfg: TrainConfig, world: World,
                tally: EpochTally, on_step: StepHook | None = None,
                stop: Callable[[], bool] = lambda: False) -> bool:
    """Train on epoch ``epoch`` from batch ``tally.step`` to its end; False if ``stop()`` came first."""
    net.train()
    steps = mixture.steps_per_epoch(cfg.batch_size)
    verdict = getattr(net, "module", net).has_verdict
    batches = mixture.epoch_batches(epoch, cfg.seed, cfg.batch_size // world.size, cfg.max_shift, world.rank,
                                    world.size, cfg.stretch, cfg.negatives if verdict else 0.0)
    start = clock()
    try:
        for batch in islice(batches, tally.step, None):  # a resumed epoch redraws, then skips, its first batches
            if stop():
                return False
            images = batch.images.to(world.device, memory_format=torch.channels_last)  # (B, 1, 28, 28)
            numbers = batch.numbers.to(world.device)  # (B,)
            digits, sums = batch.digits.to(world.device), batch.sums.to(world.device)  # (B,), (B,)
            real = None if batch.real is None else batch.real.to(world.device)  # (B,): digits, not non-digits
            outputs = net(images, numbers, with_verdict=verdict)  # (B, 10), (B, 19)[, (B,)]
            loss = digitsum_loss(*outputs[:2], digits, numbers, sums, cfg, outputs[2] if verdict else None, real)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen = len(digits) if real is None else real.sum()
            tally.sums["loss_sum"] += loss.detach() * seen
            tally.sums["digit_hits"] += (outputs[0].argmax(1) == digits).sum()  # a non-digit's IGNORE never matches
            tally.sums["sum_hits"] += (outputs[1].argmax(1) == sums).sum()
            tally.sums["seen"] += seen
            tally.step += 1
            if on_step:
                now = clock()
                on_step(StepDone(tally.step, steps, tally.seconds + now - start, getattr(net, "module", net),
                                 float(loss.detach())))
                start += clock() - now  # the hook's time (a benchmark's evaluation) is not training
    finally:
        tally.seconds += clock() - start
    return True


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


def train_epoch(model, opt, sched, mixture: NumberMixture, epoch: int, cfg: TrainConfig,
                device: torch.device, on_step: StepHook | None = None) -> tuple[float, float, float]:
    """One pass over the training mixture in this process -> (mean loss, digit accuracy, sum accuracy)."""
    world, tally = World(device=device), EpochTally.start(device)
    train_steps(model, opt, sched, mixture, epoch, cfg, world, tally, on_step)
    return epoch_figures(tally, world)
