"""The training loop, top to bottom: set up one training state, train epoch by epoch, finish.

``train`` sets up a run (a new one, or an interrupted one resumed from its newest state); each
epoch takes the optimizer steps of ``digitsum_loss(outputs, batch, cfg)``, validates, keeps the
best weights (``model.safetensors``) and saves a resumable state (resume.py); the finish calibrates
and tests the best epoch's weights (``calibration.json``, ``metrics.json``; files.py lists a run's
files). Under ``torchrun`` every rank runs this same loop on its share of each global batch
(distributed.py); only rank 0 writes files and calls the hooks.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path

import torch

from ..checkpoint import save_weights
from ..config import ModelConfig, TrainConfig, pair
from ..data import Split, load_mnist
from ..evaluate import calibrate, evaluate
from ..files import CALIBRATION, METRICS, WEIGHTS, atomic_write_json
from ..mixture import NumberMixture, split_train_val
from ..model import build_model
from ..novelty import THRESHOLD, fit_novelty, with_novelty
from ..pairs import parse_pairs
from ..runtime import seeded
from ..runtime import threads as torch_threads
from . import resume
from .distributed import StopRequest, World, session
from .epoch import EpochRecord, Hooks, Started, StepDone, epoch_figures, validate
from .objective import digitsum_loss, make_optimizer
from .resume import New, Resume, TrainingInterrupted
from .rundir import prepare_run_dir, run_config, write_config, write_history
from .sources import initial_weights, with_bank, with_extra_digits
from .state import EpochTally, RunState, TrainState
from .store import remove_states

clock = time.perf_counter  # the training clock (a test replaces it to count time without waiting)
NEW, NO_HOOKS = New(), Hooks()


@dataclass
class Run:
    """What the loop reads and does not change: where, how, on which processes, on which data."""

    out: Path
    cfg: TrainConfig  # as the run uses it (``config.pair``)
    world: World
    train_mix: NumberMixture  # with its bank of non-digits when the run trains on them
    val_mix: NumberMixture
    test: Split
    config: dict  # what config.json holds
    init: dict | None = None  # the weights a new run starts from (--init); None: fresh

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch: the same for any number of processes (global batch)."""
        return self.train_mix.steps_per_epoch(self.cfg.batch_size)


def train(model_cfg: ModelConfig | None, cfg: TrainConfig | None, out: str | Path, data_dir: str | None = None,
          *, start: New | Resume = NEW, hooks: Hooks = NO_HOOKS) -> dict:
    """Train, validate each epoch, keep the best weights, test them; returns the test metrics.

    ``start=Resume()`` continues the interrupted run in ``out`` with its own config (give None for
    both configs). Launched by torchrun, every rank calls this with the same arguments and
    ``cfg.batch_size`` is the global batch. Ctrl-C raises TrainingInterrupted once a resumable
    state is saved. Torch's thread count and global random state are left as they were.
    """
    out = Path(out)
    with session() as world:
        saved = config = None
        if isinstance(start, Resume):
            config, saved, model_cfg, cfg = resume.read_saved(world, out, start)
        with torch_threads(cfg.threads):
            with world.together():  # a failure on any rank stops every rank and is reported once
                run = load_run(world, out, model_cfg, cfg, data_dir, config)
                if run.world.is_main and saved is None:
                    prepare_run_dir(out, start.overwrite)
                    write_config(out, run.config)
            run = replace(run, train_mix=with_bank(run.train_mix, run.cfg))
            ts = fresh_state(run, model_cfg)
            if saved is not None:
                resume.restore_into(ts, saved, run.world, out)
            if hooks.on_start and run.world.is_main:
                hooks.on_start(Started(run.cfg, ts.run.epoch, ts.run.tally.step, saved is not None))
            return run_epochs(run, ts, hooks)


def load_run(world: World, out: Path, model_cfg: ModelConfig, cfg: TrainConfig, data_dir: str | None,
             config: dict | None) -> Run:
    """Place this rank on its device and load the data and a new run's starting weights (sources.py);
    ``config`` (config.json) defaults to a new run's."""
    world = world.on(cfg.device)
    cfg = pair(model_cfg, cfg)  # the one rule for the verdict head and its non-digits; config.json records it
    init, started_from = initial_weights(model_cfg, cfg) if config is None else (None, {})
    data = load_mnist(data_dir)
    train_mix, val_mix = split_train_val(data["train"], cfg)
    train_mix, extra = with_extra_digits(train_mix, cfg)
    world.check_global_batch(cfg.batch_size, len(train_mix))
    config = config or run_config(model_cfg, cfg, len(train_mix), extra, started_from)
    return Run(out, cfg, world, train_mix, val_mix, data["test"], config, init)


def fresh_state(run: Run, model_cfg: ModelConfig) -> TrainState:
    """Model, optimizer, schedule and run state, freshly initialised from the run's seed (the global RNG is
    left as it was)."""
    with seeded(run.cfg.seed, run.world.device):
        model = build_model(model_cfg)
    if run.init is not None:
        model.load_state_dict(run.init)
    # channels-last: the layout oneDNN's CPU convolutions run fastest in (see benchmarks/RESULTS.md)
    model = model.to(run.world.device, memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, run.cfg, run.steps)
    return TrainState(model, opt, sched, RunState(tally=EpochTally.start(run.world.device)))


def run_epochs(run: Run, ts: TrainState, hooks: Hooks) -> dict:
    """Train from where ``ts`` stands to the last epoch, then test the best epoch's weights."""
    net = run.world.wrap(ts.model)  # DistributedDataParallel under torchrun
    main = run.world.is_main
    try:
        with StopRequest(run.world) as stop:
            for epoch in range(ts.run.epoch, run.cfg.epochs + 1):
                if not train_steps(run, net, ts, hooks.on_step if main else None, stop):
                    raise stop_mid_epoch(run, ts)
                record = end_epoch(run, ts, epoch)
                if hooks.on_epoch and main:
                    hooks.on_epoch(record, ts.model)
                if stop():
                    raise TrainingInterrupted(run.out, epoch + 1, 0, run.steps)
    finally:
        del net  # before the process group is left (distributed.session), even while an exception holds this frame
    return finish(run, ts)


def train_steps(run: Run, net: torch.nn.Module, ts: TrainState, on_step, stop=lambda: False) -> bool:
    """Train on epoch ``ts.run.epoch`` from batch ``tally.step`` to its end; False if ``stop()`` came first."""
    net.train()
    tally, world = ts.run.tally, run.world
    batches = run.train_mix.epoch_batches(ts.run.epoch, run.cfg, world.rank, world.size)
    start = clock()
    try:
        for drawn in islice(batches, tally.step, None):  # a resumed epoch redraws, then skips, its first batches
            if stop():
                return False
            batch = drawn.to(world.device)  # images (B, 1, 28, 28), the rest (B,)
            outputs = net(batch.images, batch.numbers)  # Logits: (B, 10), (B, 19), (B,) or None
            loss = digitsum_loss(outputs, batch, run.cfg)
            ts.opt.zero_grad(set_to_none=True)
            loss.backward()
            ts.opt.step()
            ts.sched.step()
            seen = len(batch.digits) if batch.real is None else batch.real.sum()
            tally.sums["loss_sum"] += loss.detach() * seen
            tally.sums["digit_hits"] += (outputs.digit.argmax(1) == batch.digits).sum()  # IGNORE never matches
            tally.sums["sum_hits"] += (outputs.sum.argmax(1) == batch.sums).sum()
            tally.sums["seen"] += seen
            tally.step += 1
            if on_step:
                now = clock()
                on_step(StepDone(tally.step, run.steps, tally.seconds + now - start, ts.model, float(loss.detach())))
                start += clock() - now  # the hook's time (a benchmark's evaluation) is not training
    finally:
        tally.seconds += clock() - start
    return True


def end_epoch(run: Run, ts: TrainState, epoch: int) -> EpochRecord:
    """Validate, record the epoch, keep the best weights; rank 0 writes history, weights and state."""
    state = ts.run
    loss, train_digit, train_sum = epoch_figures(state.tally, run.world)
    val_digit, val_sum = validate(run.world, ts.model, run.val_mix)
    record = EpochRecord(epoch, loss, train_digit, train_sum, val_digit, val_sum, state.tally.seconds,
                         ts.sched.get_last_lr()[0])
    state.history.append(asdict(record))
    state.epoch, state.tally = epoch + 1, EpochTally.start(run.world.device)
    improved = val_digit + val_sum >= state.best_score  # ties go to the later epoch
    if improved:
        state.best_score, state.best_epoch = val_digit + val_sum, epoch
        state.best_weights = {k: v.detach().cpu().clone() for k, v in ts.model.state_dict().items()}
    if run.world.is_main:
        write_history(run.out, state.history)
        if improved:
            save_weights(ts.model, run.out / WEIGHTS)
        resume.save(ts, run.out, run.steps, run.config)
    return record


def stop_mid_epoch(run: Run, ts: TrainState) -> TrainingInterrupted:
    """Save a state between two steps (rank 0 keeps every rank's sums); the interrupt to raise."""
    sums = {k: run.world.sum(v) for k, v in ts.run.tally.sums.items()}
    if run.world.is_main:
        summed = replace(ts, run=replace(ts.run, tally=replace(ts.run.tally, sums=sums)))
        resume.save(summed, run.out, run.steps, run.config)
    return TrainingInterrupted(run.out, ts.run.epoch, ts.run.tally.step, run.steps)


def finish(run: Run, ts: TrainState) -> dict:
    """Calibrate and test the best epoch's weights (rank 0 does, every rank returns the figures); finish the run."""
    model, state = ts.model, ts.run
    model.load_state_dict(state.best_weights)
    metrics = None
    if run.world.is_main:
        save_weights(model, run.out / WEIGHTS)  # those of the state, even if a killed run wrote later ones
        calibration = calibrate(model, run.val_mix, f"validation split: {len(run.val_mix)} MNIST training images "
                                "held out from training")
        atomic_write_json(run.out / CALIBRATION, calibration.to_dict())
        tested = model
        if model.has_verdict:  # the verdict's rule (novelty.py), from the training and validation images
            novelty = fit_novelty(model, run.train_mix.images, run.train_mix.labels, run.val_mix.images,
                                  fitted_on=f"{len(run.train_mix.labels)} MNIST training images; the validation split")
            novelty.save(run.out)
            tested, calibration = with_novelty(model, novelty), replace(calibration, is_digit_threshold=THRESHOLD)
        metrics = evaluate(tested, run.test, calibration, held_out=parse_pairs(run.cfg.hold_out_pairs))
        metrics["train_seconds"] = sum(h["seconds"] for h in state.history)
        metrics["best_epoch"] = state.best_epoch
        atomic_write_json(run.out / METRICS, metrics)
        remove_states(run.out)
    return json.loads(run.world.broadcast_bytes(json.dumps(metrics).encode() if metrics else None))
