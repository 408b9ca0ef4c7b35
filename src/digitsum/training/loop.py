"""The training loop: epochs, validation, the best weights, resumable states, and the final test.

A run directory holds ``config.json``, ``metrics.jsonl`` (one object per epoch),
``model.safetensors`` (the weights of the epoch with the best validation accuracy) and, at
the end, ``metrics.json`` with the test figures. While the run is in progress it also holds
``resume/`` (store.py): a resumable state written after every epoch and when Ctrl-C stops
training; it is removed once the run completes.

Under ``torchrun`` every rank runs this same loop on its share of each global batch
(distributed.py); only rank 0 writes files and calls ``on_epoch`` and ``on_step``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..calibration import Calibration, fit
from ..checkpoint import save_weights
from ..config import ModelConfig, TrainConfig
from ..data import Split, load_mnist
from ..evaluate import evaluate, infer
from ..files import CALIBRATION, METRICS, WEIGHTS, atomic_write_json
from ..mixture import NumberMixture, split_train_val
from ..model import build_model
from ..negatives import BANK as NEGATIVE_BANK
from ..negatives import make_negatives
from ..pairs import parse_pairs
from ..runtime import seeded
from ..runtime import threads as torch_threads
from .distributed import StopRequest, World, session
from .epoch import EpochRecord, StepHook, epoch_figures, train_steps, validate
from .objective import make_optimizer
from .rundir import prepare_run_dir, run_config, write_config, write_history
from .state import EpochTally, RunState, encode
from .store import remove_states, save_state

EpochHook = Callable[[EpochRecord, torch.nn.Module], None]  # (the epoch's record, the model), after validation


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a clean point; ``run_dir`` holds a state to resume from."""

    def __init__(self, run_dir: Path, epoch: int, step: int, steps: int):
        super().__init__(f"training stopped at epoch {epoch}, step {step} of {steps}")
        self.run_dir, self.epoch, self.step, self.steps = run_dir, epoch, step, steps


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


def load_run(world: World, out: Path, model_cfg: ModelConfig, cfg: TrainConfig, data_dir: str | None,
             config: dict | None = None) -> Run:
    """Place this rank on its device and load the data; ``config`` defaults to a new run's.
    A network without a verdict head trains on no synthetic non-digits."""
    world = world.on(cfg.device)
    if not model_cfg.verdict:
        cfg = replace(cfg, negatives=0.0)  # config.json records what is used
    data = load_mnist(data_dir)
    train_mix, val_mix = split_train_val(data["train"], cfg)
    world.check_global_batch(cfg.batch_size, len(train_mix))
    config = config or run_config(model_cfg, cfg, len(train_mix))
    return Run(out, cfg, world, train_mix, val_mix, data["test"], config)


def draw_negatives(run: Run) -> None:
    """The run's bank of synthetic non-digits (negatives.py): as many as an epoch uses, up to the bank's
    size, from the run's seed (the same on every rank)."""
    if run.cfg.negatives:
        count = min(NEGATIVE_BANK, max(1, round(run.cfg.negatives * len(run.train_mix))))
        run.train_mix.negatives = make_negatives(count, run.train_mix.images, run.train_mix.labels, run.cfg.seed)


def start_model(run: Run, model_cfg: ModelConfig):
    """(model, optimizer, schedule), freshly initialised from the run's seed (the global RNG is left as it was)."""
    with seeded(run.cfg.seed, run.world.device):
        model = build_model(model_cfg)
    # channels-last: the layout oneDNN's CPU convolutions run fastest in (see benchmarks/RESULTS.md)
    model = model.to(run.world.device, memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, run.cfg, run.steps)
    return model, opt, sched


def save_resumable(run: Run, model, opt, sched, state: RunState) -> None:
    """Rank 0 writes the resumable state (epoch sums already summed over ranks)."""
    global_step = (state.epoch - 1) * run.steps + state.tally.step
    save_state(run.out, *encode(model, opt, sched, state, global_step, run.config))


def end_epoch(run: Run, model, opt, sched, state: RunState, epoch: int) -> EpochRecord:
    """Validate, record the epoch, keep the best weights; rank 0 writes history, weights and state."""
    loss, train_digit, train_sum = epoch_figures(state.tally, run.world)
    val_digit, val_sum = validate(run.world, model, run.val_mix)
    record = EpochRecord(epoch, loss, train_digit, train_sum, val_digit, val_sum, state.tally.seconds,
                         sched.get_last_lr()[0])
    state.history.append(asdict(record))
    state.epoch, state.tally = epoch + 1, EpochTally.start(run.world.device)
    improved = val_digit + val_sum >= state.best_score  # ties go to the later epoch
    if improved:
        state.best_score, state.best_epoch = val_digit + val_sum, epoch
        state.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if run.world.is_main:
        write_history(run.out, state.history)
        if improved:
            save_weights(model, run.out / WEIGHTS)
        save_resumable(run, model, opt, sched, state)
    return record


def stop_mid_epoch(run: Run, model, opt, sched, state: RunState) -> TrainingInterrupted:
    """Save a state between two steps (rank 0 keeps every rank's sums); the interrupt to raise."""
    sums = {k: run.world.sum(v) for k, v in state.tally.sums.items()}
    if run.world.is_main:
        save_resumable(run, model, opt, sched, replace(state, tally=replace(state.tally, sums=sums)))
    return TrainingInterrupted(run.out, state.epoch, state.tally.step, run.steps)


def calibrate(model, val_mix: NumberMixture) -> Calibration:
    """Temperatures and the verdict's threshold, fitted on the validation split (calibration.py)."""
    out = infer(model, val_mix)
    digits = val_mix.labels
    return fit(out.digit_logits, out.sum_logits, digits, digits + val_mix.numbers, out.is_digit_scores,
               f"validation split: {len(digits)} MNIST training images held out from training")


def finish_run(run: Run, model, state: RunState) -> dict:
    """Calibrate and test the best epoch's weights (rank 0 does, every rank returns the figures); finish the run."""
    model.load_state_dict(state.best_weights)
    metrics = None
    if run.world.is_main:
        save_weights(model, run.out / WEIGHTS)  # those of the state, even if a killed run wrote later ones
        calibration = calibrate(model, run.val_mix)
        atomic_write_json(run.out / CALIBRATION, calibration.to_dict())
        metrics = evaluate(model, run.test, calibration, held_out=parse_pairs(run.cfg.hold_out_pairs))
        metrics["train_seconds"] = sum(h["seconds"] for h in state.history)
        metrics["best_epoch"] = state.best_epoch
        atomic_write_json(run.out / METRICS, metrics)
        remove_states(run.out)
    return json.loads(run.world.broadcast_bytes(json.dumps(metrics).encode() if metrics else None))


def run_epochs(run: Run, model, opt, sched, state: RunState, on_epoch: EpochHook | None,
               on_step: StepHook | None) -> dict:
    """Train from ``state`` to the last epoch, then test the best epoch's weights."""
    net = run.world.wrap(model)  # DistributedDataParallel under torchrun
    main = run.world.is_main
    try:
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
    finally:
        del net  # before the process group is left (distributed.session), even while an exception holds this frame
    return finish_run(run, model, state)


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
    with torch_threads(cfg.threads), session() as world:
        with world.together():  # a failure on any rank stops every rank and is reported once
            run = load_run(world, out, model_cfg, cfg, data_dir)
            if run.world.is_main:
                prepare_run_dir(out, overwrite)
                write_config(out, run.config)
        draw_negatives(run)
        model, opt, sched = start_model(run, model_cfg)
        state = RunState(tally=EpochTally.start(run.world.device))
        return run_epochs(run, model, opt, sched, state, on_epoch, on_step)
