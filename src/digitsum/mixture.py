"""NumberMixture: MNIST images paired with numbers 0-9, served as in-memory batches.

Each image is paired with a number; the targets are the digit and digit + number.
Images stay in memory as one uint8 tensor and batches are built by indexing it, with
normalisation (and, for training, a random shift) applied to the whole batch.

* Training numbers, order and shifts are drawn anew each epoch from a generator seeded
  by ``(seed, epoch)``: any process can rebuild epoch ``k`` without replaying epochs
  before it, which is what resuming and distributed training rely on.
* Validation and test numbers are fixed by a seed of their own, so every evaluation of
  every model sees the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .augment import draw_shifts, draw_stretches, shift, stretch
from .config import NUM_NUMBERS, TrainConfig
from .pairs import avoid_pairs, pair_mask, parse_pairs

MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics (on a 0-1 scale)
VAL_NUMBER_SEED = 1_000_003
TEST_NUMBER_SEED = 2_000_003
IGNORE = -100  # the target of a non-digit's digit and sum: cross-entropy leaves it out


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 28, 28) -> float32 (B, 1, 28, 28), normalised as in training."""
    x = images.to(torch.float32).unsqueeze(1).div_(255.0)
    return x.sub_(MEAN).div_(STD)


def fixed_numbers(n: int, seed: int) -> torch.Tensor:
    """``n`` numbers 0-9 drawn from a generator seeded with ``seed``."""
    return torch.randint(0, NUM_NUMBERS, (n,), generator=torch.Generator().manual_seed(seed))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that draws epoch ``epoch``'s order, numbers and shifts."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def augment_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that draws epoch ``epoch``'s stretches and non-digits (apart from the one above, so that
    a run without them draws exactly what it always drew)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919_000_000)


@dataclass
class Batch:
    """One batch: normalised images and their numbers and targets."""

    images: torch.Tensor  # (B, 1, 28, 28) float32
    numbers: torch.Tensor  # (B,) int64, 0-9
    digits: torch.Tensor  # (B,) int64, 0-9; IGNORE for a non-digit
    sums: torch.Tensor  # (B,) int64, 0-18; IGNORE for a non-digit
    real: torch.Tensor | None = None  # (B,) bool: a digit (True) or a synthetic non-digit; None: all digits

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``, its images channels-last (oneDNN's fastest CPU layout)."""
        return Batch(self.images.to(device, memory_format=torch.channels_last), self.numbers.to(device),
                     self.digits.to(device), self.sums.to(device), None if self.real is None else self.real.to(device))


class NumberMixture:
    """MNIST images with numbers: fixed numbers for evaluation, redrawn ones for training."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, numbers: torch.Tensor | None = None,
                 negatives: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must be uint8 (N, 28, 28), got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images) or (numbers is not None and len(numbers) != len(images)):
            raise ValueError("images, labels and numbers must have the same length")
        self.images = images  # (N, 28, 28) uint8
        self.labels = labels  # (N,) int64
        self.numbers = numbers  # (N,) int64 or None: drawn per epoch
        self.negatives = negatives  # (M, 28, 28) uint8 synthetic non-digits to train on, or None

    @classmethod
    def fixed(cls, images: torch.Tensor, labels: torch.Tensor, seed: int) -> NumberMixture:
        """An evaluation mixture whose numbers are fixed by ``seed``."""
        return cls(images, labels, fixed_numbers(len(images), seed))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        """(image (1, 28, 28) float, number, digit, sum): the notebook's per-item view."""
        if self.numbers is None:
            raise TypeError("a training mixture draws its numbers per epoch; use epoch_batches")
        number, digit = int(self.numbers[i]), int(self.labels[i])
        return normalize(self.images[i : i + 1])[0], number, digit, digit + number

    def _batch(self, idx: torch.Tensor, numbers: torch.Tensor, images: torch.Tensor | None = None) -> Batch:
        digits = self.labels[idx]
        raw = self.images[idx] if images is None else images
        return Batch(normalize(raw), numbers, digits, digits + numbers)

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        """Items ``start:stop`` in order, with their fixed numbers (for evaluation)."""
        if self.numbers is None:
            raise TypeError("a training mixture has no fixed numbers; use epoch_batches")
        stop = len(self) if stop is None else stop
        for i in range(start, stop, batch_size):
            idx = torch.arange(i, min(i + batch_size, stop))
            yield self._batch(idx, self.numbers[idx])

    def epoch_batches(self, epoch: int, cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Epoch ``epoch``'s shuffled batches with fresh numbers (and shifts, stretches and non-digits), as
        ``cfg`` sets them: its seed, its (global) batch size, ``max_shift``, ``stretch`` and ``negatives``.

        Every rank draws the same permutation, numbers and augmentations; rank ``r`` of
        ``world_size`` takes items ``r, r + W, r + 2W, ...`` of each global batch of
        ``cfg.batch_size`` items, so the global batch is the same whatever W is.
        ``cfg.stretch`` of the digits are stretched toward their box (augment.py); with
        ``cfg.negatives``, that many non-digits per digit are drawn from the mixture's bank of
        non-digits and appended to each batch, with ``real`` False and IGNORE targets.
        """
        seed, max_shift, negative_share = cfg.seed, cfg.max_shift, cfg.negatives
        g, extra = epoch_generator(seed, epoch), augment_generator(seed, epoch)
        n = len(self)
        order = torch.randperm(n, generator=g)
        numbers = torch.randint(0, NUM_NUMBERS, (n,), generator=g)
        if cfg.hold_out_pairs:  # draws more only for a run that holds combinations out
            numbers = avoid_pairs(self.labels[order], numbers, pair_mask(parse_pairs(cfg.hold_out_pairs)), g)
        global_batch = cfg.batch_size // world_size * world_size
        bank = self.negatives if negative_share > 0 else None
        k = round(negative_share * global_batch) if bank is not None else 0
        mine = slice(rank, None, world_size)
        for i in range(0, n - global_batch + 1 if n >= global_batch else 1, global_batch):
            chunk = torch.arange(i, min(i + global_batch, n))
            offsets = draw_shifts(len(chunk), max_shift, g)  # drawn for the global batch: the same on every rank
            stretches = draw_stretches(len(chunk), cfg.stretch, extra)
            idx = order[chunk][mine]
            images = self.images[idx]
            if stretches is not None:
                chosen, how_far = stretches[0][mine], stretches[1][mine]
                images = images.clone()
                images[chosen] = stretch(images[chosen], how_far[chosen])
            images = shift(images, None if offsets is None else offsets[mine], max_shift)
            batch = self._batch(idx, numbers[chunk][mine], images)
            yield batch if not k else self._with_negatives(batch, bank, k, max_shift, extra, mine)

    @staticmethod
    def _with_negatives(batch: Batch, bank: torch.Tensor, k: int, max_shift: int, generator: torch.Generator,
                        mine: slice) -> Batch:
        """``batch`` with this rank's share of ``k`` non-digits drawn from ``bank`` appended."""
        pick = torch.randint(0, len(bank), (k,), generator=generator)[mine]
        numbers = torch.randint(0, NUM_NUMBERS, (k,), generator=generator)[mine]
        offsets = draw_shifts(k, max_shift, generator)
        images = normalize(shift(bank[pick], None if offsets is None else offsets[mine], max_shift))
        m = len(pick)
        ignore = torch.full((m,), IGNORE, dtype=torch.long)
        real = torch.cat([torch.ones(len(batch.digits), dtype=torch.bool), torch.zeros(m, dtype=torch.bool)])
        return Batch(torch.cat([batch.images, images]), torch.cat([batch.numbers, numbers]),
                     torch.cat([batch.digits, ignore]), torch.cat([batch.sums, ignore]), real)

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        """How many batches ``epoch_batches`` yields (the last partial batch is dropped)."""
        return max(1, len(self) // (batch_size * world_size))


def split_train_val(train, cfg: TrainConfig) -> tuple[NumberMixture, NumberMixture]:
    """MNIST's training split (a ``data.Split``) as a training mixture and a validation mixture.

    The last ``cfg.val_size`` images are held out for validation, with numbers fixed by
    VAL_NUMBER_SEED; of the rest, the first ``cfg.limit`` (0: all) are trained on. Neither ever pairs
    a digit with a number ``cfg.hold_out_pairs`` holds out.
    """
    n_train = len(train.images) - cfg.val_size
    if cfg.limit:
        n_train = min(n_train, cfg.limit)
    val = slice(len(train.images) - cfg.val_size, None)
    train_mix = NumberMixture(train.images[:n_train], train.labels[:n_train])
    val_mix = NumberMixture.fixed(train.images[val], train.labels[val], VAL_NUMBER_SEED)
    if pairs := parse_pairs(cfg.hold_out_pairs):  # training avoids them as it draws (epoch_batches)
        val_mix.numbers = avoid_pairs(val_mix.labels, val_mix.numbers, pair_mask(pairs),
                                      torch.Generator().manual_seed(VAL_NUMBER_SEED + 1))
    return train_mix, val_mix
