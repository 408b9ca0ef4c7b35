"""A faithful replica of the notebook digitsum is measured against.

The notebook trains the seed network (conv 6 and 12 channels, fc 120, number embedding,
fc 60) with Adam at lr 0.01, batch 100, for 10 epochs, on data served one item at a time:

* a per-item ``Dataset`` whose ``__getitem__`` converts one uint8 image to a float tensor
  and draws a random number 0-9 for it (a new one each time the item is read, so each
  epoch pairs the images with new numbers);
* a shuffled ``torch.utils.data.DataLoader`` that collates 100 items into a batch.

Normalisation: MNIST mean and std (``digitsum.mixture.MEAN``/``STD``) rather than the
notebook's ``(x - 0.5) / 0.5``. Both cost one subtract and one divide per item; this choice
lets both networks be scored by the same ``digitsum.evaluate.infer`` on identical inputs.
The notebook trains on all 60,000 training images; digitsum holds 5,000 out for validation.

``run_epoch`` is the one training loop both pipelines go through in the benchmarks, so that a
difference in time is the pipeline's or the recipe's, never the loop's. Its ``record_function``
labels (data, forward, backward, optimizer) let ``bench_profile`` split an epoch's time; they
cost nothing measurable when no profiler is running.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.profiler import record_function
from torch.utils.data import DataLoader, Dataset

from digitsum.config import ModelConfig
from digitsum.mixture import MEAN, STD
from digitsum.model import DigitSumNet, build_model

BATCH_SIZE, LR, EPOCHS = 100, 0.01, 10  # the notebook's hyper-parameters
PHASES = ("data", "forward", "backward", "optimizer")

# (images (B, 1, 28, 28) float32, numbers (B,) int64, digits (B,) int64, sums (B,) int64)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class NotebookDataset(Dataset):
    """MNIST served one item at a time, each paired with a freshly drawn random number."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int = 0):
        self.images = images  # (N, 28, 28) uint8
        self.labels = labels  # (N,) int64
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        """(image (1, 28, 28) float32, number, digit, digit + number)."""
        image = self.images[i].to(torch.float32).div(255.0).unsqueeze(0)  # (1, 28, 28)
        image = (image - MEAN) / STD
        number = self.rng.randint(0, 9)
        digit = int(self.labels[i])
        return image, number, digit, digit + number


def notebook_loader(images: torch.Tensor, labels: torch.Tensor, seed: int = 0,
                    batch_size: int = BATCH_SIZE) -> DataLoader:
    """The notebook's pipeline: a per-item dataset behind a shuffled DataLoader (no workers)."""
    order = torch.Generator().manual_seed(seed)
    return DataLoader(NotebookDataset(images, labels, seed), batch_size=batch_size, shuffle=True, generator=order)


def mixture_batches(batches: Iterable, memory_format=torch.contiguous_format) -> Iterator[Batch]:
    """digitsum ``Batch`` objects (from ``NumberMixture.epoch_batches``) as plain tuples."""
    for b in batches:
        yield b.images.contiguous(memory_format=memory_format), b.numbers, b.digits, b.sums


def seed_model_and_optimizer(seed: int = 0) -> tuple[DigitSumNet, torch.optim.Optimizer]:
    """The notebook's network, freshly initialised from ``seed``, and its Adam (lr 0.01)."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch="seed"))
    return model, torch.optim.Adam(model.parameters(), lr=LR)


def notebook_loss(digit_logits, sum_logits, numbers, digits, sums) -> torch.Tensor:
    """The notebook's loss: cross-entropy on both heads."""
    return F.cross_entropy(digit_logits, digits) + F.cross_entropy(sum_logits, sums)


def run_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: Iterable[Batch],
              sched: torch.optim.lr_scheduler.LRScheduler | None = None, max_steps: int = 0,
              loss_fn=notebook_loss) -> float:
    """Train on ``batches`` (at most ``max_steps`` of them if non-zero); returns the wall seconds.

    The step is the notebook's, and digitsum's: forward, the loss (``loss_fn(digit_logits,
    sum_logits, numbers, digits, sums)``; the notebook's by default), backward, optimizer step
    (and ``sched`` step, if given).
    """
    model.train()
    start = time.perf_counter()
    it = iter(batches)
    steps = 0
    while not max_steps or steps < max_steps:
        with record_function("data"):
            batch = next(it, None)
        if batch is None:
            break
        images, numbers, digits, sums = batch
        with record_function("forward"):
            digit_logits, sum_logits = model(images, numbers)[:2]  # (B, 10), (B, 19); a verdict is not trained
            loss = loss_fn(digit_logits, sum_logits, numbers, digits, sums)
        with record_function("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("optimizer"):
            opt.step()
            if sched is not None:
                sched.step()
        steps += 1
    return time.perf_counter() - start


@dataclass
class NotebookRun:
    """The replica's trained network and its per-epoch training seconds."""

    model: DigitSumNet
    seconds: list[float]


def train_notebook(images: torch.Tensor, labels: torch.Tensor, epochs: int = EPOCHS, seed: int = 0,
                   on_epoch=None) -> NotebookRun:
    """Train the replica; ``on_epoch(epoch, seconds, model)`` runs after each epoch, untimed."""
    model, opt = seed_model_and_optimizer(seed)
    loader = notebook_loader(images, labels, seed)
    seconds = []
    for epoch in range(1, epochs + 1):
        seconds.append(run_epoch(model, opt, loader))
        if on_epoch:
            on_epoch(epoch, seconds[-1], model)
    return NotebookRun(model, seconds)
