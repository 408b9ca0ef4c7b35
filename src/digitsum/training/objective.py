"""What training minimises, and how: digitsum's loss, and AdamW with a one-cycle schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import NUM_DIGITS, TrainConfig
from ..mixture import Batch
from ..model import Logits


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int, fused: bool = False):
    """AdamW with a one-cycle learning-rate schedule over ``cfg.epochs``, warming up for ``cfg.warmup`` of it.

    ``fused`` selects torch's single-kernel AdamW; on this small network it measured no
    faster than the default multi-tensor kernel (benchmarks/RESULTS.md, "The default's
    choices", which also measures the warm-up), so it is off.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
    total = max(cfg.epochs * steps_per_epoch, 8)
    warmup = max(2, round(cfg.warmup * total))  # OneCycleLR divides by (warm-up steps - 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=warmup / total)
    return opt, sched


def implied_sums(digit_logits: torch.Tensor, numbers: torch.Tensor, num_sums: int) -> torch.Tensor:
    """The sum distribution (B, num_sums) the digit head implies: P(sum = d + n) = P(digit = d).

    Row i puts the digit probabilities of item i in columns numbers[i] .. numbers[i] + 9.
    """
    columns = numbers[:, None] + torch.arange(NUM_DIGITS, device=numbers.device)  # (B, 10): the sum of each digit
    probs = digit_logits.softmax(1)  # (B, 10)
    return torch.zeros(len(numbers), num_sums, dtype=probs.dtype, device=probs.device).scatter(1, columns, probs)


def digitsum_loss(outputs: Logits, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy on both heads, plus an agreement term weighted by ``cfg.consistency``, plus, for a
    network with a verdict head, the binary cross-entropy of its verdict.

    The agreement term is KL(implied || sum head): the KL divergence from the sum distribution
    the digit head implies (``implied_sums``) to the sum head's. Its gradient flows into both
    heads: it pulls the sum head toward digit head + number, and the digit head toward what the
    sum head reads. ``cfg.detach_target`` stops the second pull, for comparison: it read MNIST worse
    over three seeds, and other handwriting no differently (benchmarks/choices.py). The term shapes
    training only; the sum is still the sum head's own output.

    ``batch.real`` (B,) marks the digits of a batch that also holds synthetic non-digits (mixture.py):
    the digit, sum and agreement terms read the digits only, the verdict all of them (1 for a
    digit, 0 for a non-digit).
    """
    digit_logits, sum_logits, verdict_logits = outputs  # (B, 10), (B, 19), (B,) or None
    digits, numbers, sums, real = batch.digits, batch.numbers, batch.sums, batch.real  # (B,) each
    if real is not None:
        verdict_target = real.to(digit_logits.dtype)
        digit_logits, sum_logits, digits, numbers, sums = (t[real] for t in (digit_logits, sum_logits, digits,
                                                                           numbers, sums))
    loss = (F.cross_entropy(digit_logits, digits, label_smoothing=cfg.label_smoothing)
            + F.cross_entropy(sum_logits, sums, label_smoothing=cfg.label_smoothing))
    if cfg.consistency:
        implied = implied_sums(digit_logits.detach() if cfg.detach_target else digit_logits, numbers,
                               sum_logits.shape[1])  # (B, 19)
        loss = loss + cfg.consistency * F.kl_div(sum_logits.log_softmax(1), implied, reduction="batchmean")
    if verdict_logits is not None:
        target = verdict_target if real is not None else torch.ones_like(verdict_logits)
        loss = loss + F.binary_cross_entropy_with_logits(verdict_logits, target)
    return loss
