"""Continue an interrupted run from its newest resumable state, with the run's own config."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, ConfigError
from ..files import CONFIG
from ..runtime import threads as torch_threads
from .distributed import session
from .epoch import StepHook
from .loop import EpochHook, draw_negatives, load_run, run_epochs, start_model
from .rundir import write_history
from .state import SavedState, config_digest, restore
from .store import parse_state, read_run


def run_configs(config: dict, run_dir: Path, saved: SavedState) -> tuple[ModelConfig, TrainConfig]:
    """The run's model and training configs, checked against the state being resumed."""
    if saved.meta.get("config_sha256") != config_digest(config):
        raise CheckpointError(f"{run_dir / CONFIG} changed since {saved.path} was saved; "
                              "put the run's config back or start the run again")
    try:
        return ModelConfig.from_dict(config["model"]), TrainConfig.from_dict(config["train"])
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{run_dir / CONFIG} does not describe a run ({error})") from None


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
        files = [None] * 4
        with world.together():
            if world.is_main:
                files = read_run(out)
        config, folder, meta, blob = (world.broadcast_bytes(f) for f in files)
        with world.together():
            saved = parse_state(Path(folder.decode()), meta, blob)
            config = json.loads(config)
            model_cfg, cfg = run_configs(config, out, saved)
            cfg = replace(cfg, threads=cfg.threads if threads is None else threads, device=device or cfg.device)
        with torch_threads(cfg.threads):
            with world.together():
                run = load_run(world, out, model_cfg, cfg, data_dir, config)
            draw_negatives(run)
            model, opt, sched = start_model(run, model_cfg)
            state = restore(saved, model, opt, sched, keep_sums=run.world.is_main)
            if run.world.is_main:
                write_history(out, state.history)  # drops an epoch a killed run recorded after this state
            return run_epochs(run, model, opt, sched, state, on_epoch, on_step)
