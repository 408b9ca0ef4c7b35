"""How a run starts (``New`` or ``Resume``) and stops (``TrainingInterrupted``), and saving and restoring its
state: the one home of both.

A resumable state (state.py) is written by ``save`` after every epoch and when Ctrl-C stops
training, into the run's folder (store.py). ``read_saved`` reads the newest one back with the
run's own config: rank 0 reads the files, every rank verifies them; ``restore_into`` loads it
into a freshly built TrainState.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, ConfigError
from ..files import CONFIG
from .distributed import World
from .rundir import write_history
from .sources import check_extra_unchanged
from .state import SavedState, TrainState, config_digest, encode, restore
from .store import parse_state, read_run, save_state


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a clean point; ``run_dir`` holds a state to resume from."""

    def __init__(self, run_dir: Path, epoch: int, step: int, steps: int):
        super().__init__(f"training stopped at epoch {epoch}, step {step} of {steps}")
        self.run_dir, self.epoch, self.step, self.steps = run_dir, epoch, step, steps


@dataclass(frozen=True)
class New:
    """Start a new run in ``out``."""

    overwrite: bool = False  # replace a run already there (else RunDirError)


@dataclass(frozen=True)
class Resume:
    """Continue the interrupted run in ``out`` from its newest resumable state, with the run's own config.

    Only where it runs may differ: with the same threads on the CPU the result is bitwise
    that of an uninterrupted run.
    """

    threads: int | None = None  # None: the run's own
    device: str | None = None  # None: the run's own


def run_configs(config: dict, run_dir: Path, saved: SavedState, start: Resume) -> tuple[ModelConfig, TrainConfig]:
    """The run's model and training configs, checked against the state being resumed; ``start`` may change
    where it runs (threads, device)."""
    if saved.meta.get("config_sha256") != config_digest(config):
        raise CheckpointError(f"{run_dir / CONFIG} changed since {saved.path} was saved; "
                              "put the run's config back or start the run again")
    check_extra_unchanged(config, run_dir)
    try:
        model_cfg, cfg = ModelConfig.from_dict(config["model"]), TrainConfig.from_dict(config["train"])
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{run_dir / CONFIG} does not describe a run ({error})") from None
    threads = cfg.threads if start.threads is None else start.threads
    return model_cfg, replace(cfg, threads=threads, device=start.device or cfg.device)


def read_saved(world: World, run_dir: Path, start: Resume) -> tuple[dict, SavedState, ModelConfig, TrainConfig]:
    """(config.json, the newest resumable state, the model and training configs) of the run in ``run_dir``.

    Under torchrun only rank 0 reads the run directory, and sends it to the other ranks.
    """
    files = [None] * 4
    with world.together():
        if world.is_main:
            files = read_run(run_dir)
    config, folder, meta, blob = (world.broadcast_bytes(f) for f in files)
    with world.together():
        saved = parse_state(Path(folder.decode()), meta, blob)
        config = json.loads(config)
        return (config, saved, *run_configs(config, run_dir, saved, start))


def restore_into(ts: TrainState, saved: SavedState, world: World, run_dir: Path) -> None:
    """Load ``saved`` into a fresh ``ts`` (rank 0 keeps the epoch's sums, which it saved for every rank);
    rank 0 rewrites metrics.jsonl, dropping an epoch a killed run recorded after this state."""
    restore(saved, ts, keep_sums=world.is_main)
    if world.is_main:
        write_history(run_dir, ts.run.history)


def save(ts: TrainState, run_dir: Path, steps_per_epoch: int, config: dict) -> None:
    """Rank 0 writes ``ts`` as the run's newest resumable state (its epoch sums already summed over ranks)."""
    global_step = (ts.run.epoch - 1) * steps_per_epoch + ts.run.tally.step
    save_state(run_dir, *encode(ts, global_step, config))
