"""The training loop; writes the run directory, and resumes it.

A run directory holds ``config.json``, ``metrics.jsonl`` (one object per epoch),
``model.safetensors`` (the weights of the epoch with the best validation accuracy)
and, at the end, ``metrics.json`` with the test figures. While the run is in progress
it also holds ``resume/`` (see resume.py): a resumable state written after every epoch
and when Ctrl-C stops training; it is removed once the run completes.

Under ``torchrun`` every rank runs this same loop on its share of each global batch
(see distributed.py); only rank 0 writes files and calls ``on_epoch`` and ``on_step``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F

from . import resume
from .checkpoint import CONFIG, METRICS, WEIGHTS, save_weights
from .config import ModelConfig, TrainConfig
from .data import Split, load_mnist
from .distributed import StopRequest, World, session
from .evaluate import evaluate
from .files import atomic_write_bytes, atomic_write_json
from .mixture import NUM_DIGITS, NumberMixture
from .model import build_model
from .resume import EpochTally, RunState
from .rundir import HISTORY, prepare_run_dir, run_config, split_train_val
from .runtime import set_seed, set_threads


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a clean point; ``run_dir`` holds a state to resume from."""

    def __init__(self, run_dir: Path, epoch: int, step: int, steps: int):
        super().__init__(f"training stopped at epoch {epoch}, step {step} of {steps}")
        self.run_dir, self.epoch, self.step, self.steps = run_dir, epoch, step, steps


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
    model: torch.nn.Module  # in training mode; a hook that evaluates it must switch it back


EpochHook = Callable[[EpochRecord, torch.nn.Module], None]  # (the epoch's record, the model), after validation
StepHook = Callable[[StepDone], None]


@dataclass
class Run:
    """Everything the loop needs besides model, optimizer and state."""

    out: Path
    cfg: TrainConfig
    world: World
    train_mix: NumberMixture
    val_mix: NumberMixture
    test: Split
    config: dict  # what config.json holds

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch: the same for any number of processes (global batch)."""
        return self.train_mix.steps_per_epoch(self.cfg.batch_size)


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


def digitsum_loss(digit_logits: torch.Tensor, sum_logits: torch.Tensor, digits: torch.Tensor,
                  numbers: torch.Tensor, sums: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy on both heads, plus an agreement term weighted by ``cfg.consistency``.

    The agreement term is the KL divergence from the sum distribution the digit head
    implies (its probabilities shifted by the number) to the sum head's: it teaches the
    sum head to be consistent with the digit head. It shapes training only; the sum is
    still the sum head's own output.
    """
    loss = (F.cross_entropy(digit_logits, digits, label_smoothing=cfg.label_smoothing)
            + F.cross_entropy(sum_logits, sums, label_smoothing=cfg.label_smoothing))
    if cfg.consistency:
        columns = numbers[:, None] + torch.arange(NUM_DIGITS, device=numbers.device)  # (B, 10): sum of each digit
        implied = torch.zeros_like(sum_logits).scatter(1, columns, digit_logits.softmax(1))  # (B, 19)
        loss = loss + cfg.consistency * F.kl_div(sum_logits.log_softmax(1), implied, reduction="batchmean")
    return loss


def train_steps(net, opt, sched, mixture: NumberMixture, epoch: int, cfg: TrainConfig, world: World,
                tally: EpochTally, on_step: StepHook | None = None,
                stop: Callable[[], bool] = lambda: False) -> bool:
    """Train on epoch ``epoch`` from batch ``tally.step`` to its end; False if ``stop()`` came first."""
    net.train()
    steps = mixture.steps_per_epoch(cfg.batch_size)
    batches = mixture.epoch_batches(epoch, cfg.seed, cfg.batch_size // world.size, cfg.max_shift,
                                    world.rank, world.size)
    start = time.perf_counter()
    try:
        for batch in islice(batches, tally.step, None):  # a resumed epoch redraws, then skips, its first batches
            if stop():
                return False
            images = batch.images.to(world.device, memory_format=torch.channels_last)  # (B, 1, 28, 28)
            numbers = batch.numbers.to(world.device)  # (B,)
            digits, sums = batch.digits.to(world.device), batch.sums.to(world.device)  # (B,), (B,)
            digit_logits, sum_logits = net(images, numbers)  # (B, 10), (B, 19)
            loss = digitsum_loss(digit_logits, sum_logits, digits, numbers, sums, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tally.sums["loss_sum"] += loss.detach() * len(digits)
            tally.sums["digit_hits"] += (digit_logits.argmax(1) == digits).sum()
            tally.sums["sum_hits"] += (sum_logits.argmax(1) == sums).sum()
            tally.sums["seen"] += len(digits)
            tally.step += 1
            if on_step:
                now = time.perf_counter()
                on_step(StepDone(tally.step, steps, tally.seconds + now - start, getattr(net, "module", net)))
                start += time.perf_counter() - now  # the hook's time (a benchmark's evaluation) is not training
    finally:
        tally.seconds += time.perf_counter() - start
    return True


def epoch_figures(tally: EpochTally, world: World) -> tuple[float, float, float]:
    """(mean loss, digit accuracy, sum accuracy) of an epoch over every rank's items."""
    loss_sum, digit_hits, sum_hits, seen = world.sum(tally.totals()).tolist()
    return loss_sum / seen, digit_hits / seen, sum_hits / seen


def train_epoch(model, opt, sched, mixture: NumberMixture, epoch: int, cfg: TrainConfig,
                device: torch.device, on_step: StepHook | None = None) -> tuple[float, float, float]:
    """One pass over the training mixture in this process -> (mean loss, digit accuracy, sum accuracy)."""
    world, tally = World(device=device), EpochTally.start(device)
    train_steps(model, opt, sched, mixture, epoch, cfg, world, tally, on_step)
    return epoch_figures(tally, world)


def end_epoch(run: Run, model, opt, sched, state: RunState, epoch: int) -> EpochRecord:
    """Validate, record the epoch, keep the best weights; rank 0 writes history, weights and state."""
    loss, train_digit, train_sum = epoch_figures(state.tally, run.world)
    val_digit, val_sum = run.world.validate(model, run.val_mix)
    record = EpochRecord(epoch, loss, train_digit, train_sum, val_digit, val_sum, state.tally.seconds,
                         sched.get_last_lr()[0])
    state.history.append(asdict(record))
    state.epoch, state.tally = epoch + 1, EpochTally.start(run.world.device)
    improved = val_digit + val_sum >= state.best_score  # ties go to the later epoch
    if improved:
        state.best_score, state.best_epoch = val_digit + val_sum, epoch
        state.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if run.world.is_main:
        write_history(run, state)
        if improved:
            save_weights(model, run.out / WEIGHTS)
        save_resumable(run, model, opt, sched, state)
    return record


def save_resumable(run: Run, model, opt, sched, state: RunState) -> None:
    """Rank 0 writes the resumable state (epoch sums already summed over ranks)."""
    global_step = (state.epoch - 1) * run.steps + state.tally.step
    resume.save_state(run.out, *resume.encode(model, opt, sched, state, global_step, run.config))


def stop_mid_epoch(run: Run, model, opt, sched, state: RunState) -> TrainingInterrupted:
    """Save a state between two steps (rank 0 keeps every rank's sums); the interrupt to raise."""
    sums = {k: run.world.sum(v) for k, v in state.tally.sums.items()}
    if run.world.is_main:
        save_resumable(run, model, opt, sched, replace(state, tally=replace(state.tally, sums=sums)))
    return TrainingInterrupted(run.out, state.epoch, state.tally.step, run.steps)


def write_history(run: Run, state: RunState) -> None:
    """metrics.jsonl: one line per epoch done (rewritten whole, so a resumed run drops any epoch it redoes)."""
    atomic_write_bytes(run.out / HISTORY, "".join(json.dumps(h) + "\n" for h in state.history).encode())


def finish_run(run: Run, model, state: RunState) -> dict:
    """Test the best epoch's weights (rank 0 evaluates, every rank returns the figures); finish the run."""
    model.load_state_dict(state.best_weights)
    metrics = None
    if run.world.is_main:
        save_weights(model, run.out / WEIGHTS)  # those of the state, even if a killed run wrote later ones
        metrics = evaluate(model, run.test)
        metrics["train_seconds"] = sum(h["seconds"] for h in state.history)
        metrics["best_epoch"] = state.best_epoch
        atomic_write_json(run.out / METRICS, metrics)
        resume.remove_states(run.out)
    return json.loads(run.world.broadcast_bytes(json.dumps(metrics).encode() if metrics else None))


def run_epochs(run: Run, model, opt, sched, state: RunState,
               on_epoch: EpochHook | None,
               on_step: StepHook | None) -> dict:
    """Train from ``state`` to the last epoch, then test the best epoch's weights."""
    net = run.world.wrap(model)  # DistributedDataParallel under torchrun
    main = run.world.is_main
    with StopRequest(run.world) as stop:
        for epoch in range(state.epoch, run.cfg.epochs + 1):
            if not train_steps(net, opt, sched, run.train_mix, epoch, run.cfg, run.world, state.tally,
                               on_step if main else None, stop):
                raise stop_mid_epoch(run, model, opt, sched, state)
            record = end_epoch(run, model, opt, sched, state, epoch)
            if on_epoch and main:  # gets the model too, e.g. for a benchmark's test figures
                on_epoch(record, model)
            if stop():
                raise TrainingInterrupted(run.out, epoch + 1, 0, run.steps)
    return finish_run(run, model, state)


def load_run(world: World, out: Path, model_cfg: ModelConfig, cfg: TrainConfig, data_dir: str | None,
             config: dict | None = None) -> Run:
    """Place this rank on its device and load the data; ``config`` defaults to a new run's."""
    world = world.on(cfg.device)
    data = load_mnist(data_dir)
    train_mix, val_mix = split_train_val(data["train"], cfg)
    world.check_global_batch(cfg.batch_size, len(train_mix))
    config = config or run_config(model_cfg, cfg, len(train_mix))
    return Run(out, cfg, world, train_mix, val_mix, data["test"], config)


def start_model(run: Run, model_cfg: ModelConfig):
    """(model, optimizer, schedule), freshly initialised from the run's seed."""
    set_seed(run.cfg.seed)
    # channels-last: the layout oneDNN's CPU convolutions run fastest in (see benchmarks/RESULTS.md)
    model = build_model(model_cfg).to(run.world.device, memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, run.cfg, run.steps)
    return model, opt, sched


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    out: str | Path,
    data_dir: str | None = None,
    overwrite: bool = False,
    on_epoch: EpochHook | None = None,
    on_step: StepHook | None = None,
) -> dict:
    """Train, validate each epoch, keep the best weights, test them; returns the test metrics.

    Launched by torchrun, every rank calls this with the same arguments and
    ``cfg.batch_size`` is the global batch. Ctrl-C raises TrainingInterrupted once a
    resumable state is saved.
    """
    out = Path(out)
    set_threads(cfg.threads)
    with session() as world:
        with world.together():  # a failure on any rank stops every rank and is reported once
            run = load_run(world, out, model_cfg, cfg, data_dir)
            if run.world.is_main:
                prepare_run_dir(out, overwrite)
                atomic_write_json(out / CONFIG, run.config)
        model, opt, sched = start_model(run, model_cfg)
        state = RunState(tally=EpochTally.start(run.world.device))
        return run_epochs(run, model, opt, sched, state, on_epoch, on_step)


def resume_training(
    run_dir: str | Path,
    data_dir: str | None = None,
    on_epoch: EpochHook | None = None,
    on_step: StepHook | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> dict:
    """Continue a run from its newest resumable state with the run's own config; returns the test metrics.

    Only ``threads`` and ``device`` may differ from the run's config; with the same
    threads on the CPU the result is bitwise that of an uninterrupted run. Under
    torchrun only rank 0 reads the run directory, and sends it to the other ranks.
    """
    out = Path(run_dir)
    with session() as world:
        files = [None] * len(resume.RUN_READ)
        with world.together():
            if world.is_main:
                files = resume.read_run(out)
        config, folder, meta, blob = (world.broadcast_bytes(f) for f in files)
        with world.together():
            saved = resume.parse_state(Path(folder.decode()), meta, blob)
            config = json.loads(config)
            model_cfg, cfg = resume.run_configs(config, out, saved)
            cfg = replace(cfg, threads=cfg.threads if threads is None else threads, device=device or cfg.device)
            set_threads(cfg.threads)
            run = load_run(world, out, model_cfg, cfg, data_dir, config)
        model, opt, sched = start_model(run, model_cfg)
        state = resume.restore(saved, model, opt, sched, keep_sums=run.world.is_main)
        if run.world.is_main:
            write_history(run, state)  # drops an epoch a killed run recorded after this state
        return run_epochs(run, model, opt, sched, state, on_epoch, on_step)
