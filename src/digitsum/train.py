"""The training loop; writes the run directory.

A run directory holds ``config.json``, ``metrics.jsonl`` (one object per epoch),
``model.safetensors`` (the weights of the epoch with the best validation accuracy)
and, at the end, ``metrics.json`` with the test figures.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import __version__
from .checkpoint import CONFIG, METRICS, WEIGHTS, load_state, save_weights
from .config import ModelConfig, TrainConfig
from .data import Split, data_digests, load_mnist
from .evaluate import accuracy, evaluate, infer
from .files import atomic_write_bytes, atomic_write_json
from .mixture import VAL_NUMBER_SEED, NumberMixture
from .model import build_model
from .runtime import pick_device, set_seed, set_threads

HISTORY = "metrics.jsonl"
RUN_FILES = (CONFIG, WEIGHTS, HISTORY, METRICS)


class RunDirError(Exception):
    """The output directory cannot be used for a new run."""


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
                          "choose another --out or pass --overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create run directory {out}: {error.strerror}") from None
    for name in existing:
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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    """AdamW with a one-cycle learning-rate schedule over ``total_steps``."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25)
    return opt, sched


def train_epoch(model, opt, sched, mixture: NumberMixture, epoch: int, cfg: TrainConfig,
                device: torch.device, on_step: Callable[[int, int], None] | None = None) -> tuple[float, float, float]:
    """One pass over the training mixture -> (mean loss, digit accuracy, sum accuracy)."""
    model.train()
    steps = mixture.steps_per_epoch(cfg.batch_size)
    loss_sum = torch.zeros((), device=device)
    digit_hits = torch.zeros((), dtype=torch.long, device=device)
    sum_hits = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for step, batch in enumerate(mixture.epoch_batches(epoch, cfg.seed, cfg.batch_size, cfg.max_shift)):
        images, numbers = batch.images.to(device), batch.numbers.to(device)
        digits, sums = batch.digits.to(device), batch.sums.to(device)
        digit_logits, sum_logits = model(images, numbers)
        loss = F.cross_entropy(digit_logits, digits) + F.cross_entropy(sum_logits, sums)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach() * len(digits)
        digit_hits += (digit_logits.argmax(1) == digits).sum()
        sum_hits += (sum_logits.argmax(1) == sums).sum()
        seen += len(digits)
        if on_step:
            on_step(step + 1, steps)
    return float(loss_sum) / seen, int(digit_hits) / seen, int(sum_hits) / seen


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    out: str | Path,
    data_dir: str | None = None,
    overwrite: bool = False,
    on_epoch: Callable[[EpochRecord, torch.nn.Module], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict:
    """Train, validate each epoch, keep the best weights, test them; returns the test metrics."""
    out = Path(out)
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    data = load_mnist(data_dir)
    train_mix, val_mix = split_train_val(data["train"], cfg)
    prepare_run_dir(out, overwrite)
    atomic_write_json(out / CONFIG, run_config(model_cfg, cfg, len(train_mix)))

    set_seed(cfg.seed)
    model = build_model(model_cfg).to(device)
    opt, sched = make_optimizer(model, cfg, cfg.epochs * train_mix.steps_per_epoch(cfg.batch_size))
    history, best, best_epoch = [], -1.0, 0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        loss, train_digit, train_sum = train_epoch(model, opt, sched, train_mix, epoch, cfg, device, on_step)
        seconds = time.perf_counter() - start
        val = infer(model, val_mix)
        record = EpochRecord(epoch, loss, train_digit, train_sum,
                             accuracy(val.digits, val_mix.labels),
                             accuracy(val.sums, val_mix.labels + val_mix.numbers),
                             seconds, sched.get_last_lr()[0])
        history.append(asdict(record))
        atomic_write_bytes(out / HISTORY, "".join(json.dumps(h) + "\n" for h in history).encode())
        score = record.val_digit_accuracy + record.val_sum_accuracy
        if score >= best:  # ties go to the later epoch
            best, best_epoch = score, epoch
            save_weights(model, out / WEIGHTS)
        if on_epoch:  # gets the model too, e.g. for a benchmark's test figures
            on_epoch(record, model)

    model.load_state_dict(load_state(out / WEIGHTS))
    metrics = evaluate(model, data["test"])
    metrics["train_seconds"] = sum(h["seconds"] for h in history)
    metrics["best_epoch"] = best_epoch
    atomic_write_json(out / METRICS, metrics)
    return metrics
