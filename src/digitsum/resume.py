"""Resumable training state: everything needed to continue a run exactly where it stopped.

After every epoch, and when Ctrl-C stops a run between two steps, ``train`` writes
``RUN/resume/step-NNNNNNN/`` (NNNNNNN: optimizer steps done) holding

* ``state.safetensors``: plain tensors: the model's weights and buffers (``model.*``),
  the best epoch's weights (``best.*``), the optimizer's moments and step counts
  (``optimizer.<param>.<key>``), the running sums of the epoch in progress
  (``tally.*``) and torch's RNG state (``rng.*``);
* ``state.json``: the position (epoch, step), the scheduler's and the optimizer's
  settings, Python's and NumPy's RNG states, the history and best epoch so far, and the
  SHA-256 of ``config.json`` and of ``state.safetensors``.

A state is written into a temporary folder that is renamed into place once complete;
the two newest complete states are kept, so a damaged newest one still leaves the one
before it. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .checkpoint import CONFIG, METRICS, CheckpointError, read_json
from .config import ConfigError, ModelConfig, TrainConfig
from .files import atomic_write_bytes

RESUME, TENSORS, META = "resume", "state.safetensors", "state.json"
FORMAT = 1
KEEP = 2  # complete states kept: the newest and the one before it
STATE_NAME = re.compile(r"step-(\d+)")
RUN_READ = ("config.json", "state folder", META, TENSORS)  # what read_run returns, in order
SUMS = {"loss_sum": torch.float32, "digit_hits": torch.long, "sum_hits": torch.long, "seen": torch.long}


@dataclass
class EpochTally:
    """Running sums of the epoch in progress: its training figures are computed from them."""

    step: int = 0  # batches of the epoch done
    seconds: float = 0.0  # training time spent on them
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # loss_sum, digit_hits, sum_hits, seen: () each

    @classmethod
    def start(cls, device: torch.device, step: int = 0, seconds: float = 0.0) -> EpochTally:
        """A tally with zero sums, on ``device``."""
        return cls(step, seconds, {k: torch.zeros((), dtype=t, device=device) for k, t in SUMS.items()})

    def totals(self) -> torch.Tensor:
        """(4,) float64: loss sum, digit hits, sum hits, items seen (exact: counts stay below 2**53)."""
        return torch.stack([self.sums[k].double() for k in SUMS])


@dataclass
class RunState:
    """Where a run stands, besides its model, optimizer and schedule."""

    epoch: int = 1  # the epoch in progress, or the next one to start
    tally: EpochTally = field(default_factory=EpochTally)
    history: list[dict] = field(default_factory=list)  # metrics.jsonl's records so far
    best_score: float = -1.0
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # CPU copies of the best epoch's


@dataclass
class SavedState:
    """A resumable state read back from disk and verified."""

    path: Path
    meta: dict
    tensors: dict[str, torch.Tensor]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_digest(config: dict) -> str:
    """SHA-256 of a run's config as canonical JSON: a state resumes only under the config it was saved with."""
    return sha256(json.dumps(config, sort_keys=True).encode())


def _cpu(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def encode(model, opt, sched, state: RunState, global_step: int, config: dict) -> tuple[bytes, dict]:
    """The state as (safetensors bytes, JSON-ready dict)."""
    optim = opt.state_dict()
    tensors = {**_cpu(model.state_dict(), "model."), **_cpu(state.best_weights, "best."),
               **_cpu(state.tally.sums, "tally."), "rng.torch": torch.get_rng_state()}
    for i, per_param in optim["state"].items():
        tensors.update(_cpu(per_param, f"optimizer.{i}."))
    device = next(model.parameters()).device
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    blob = save_safetensors(tensors)
    numpy_state = np.random.get_state()
    meta = {
        "format": FORMAT, "epoch": state.epoch, "step": state.tally.step, "global_step": global_step,
        "seconds": state.tally.seconds, "best_score": state.best_score, "best_epoch": state.best_epoch,
        "history": state.history, "scheduler": sched.state_dict(), "optimizer_groups": optim["param_groups"],
        "rng": {"python": random.getstate(),
                "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]},
        "config_sha256": config_digest(config), "state_sha256": sha256(blob),
    }
    return blob, meta


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(run_dir: Path, blob: bytes, meta: dict) -> Path:
    """Write an encoded state as ``RUN/resume/step-N/`` (temporary folder, then rename); keep the newest two."""
    root = run_dir / RESUME
    root.mkdir(exist_ok=True)
    final = root / f"step-{meta['global_step']:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        atomic_write_bytes(tmp / TENSORS, blob)
        atomic_write_bytes(tmp / META, (json.dumps(meta) + "\n").encode())  # last: marks the folder complete
        if final.exists():  # a state of this very step is already complete: keep it
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
            _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in complete_states(run_dir)[KEEP:]:
        shutil.rmtree(old)
    return final


def complete_states(run_dir: Path) -> list[Path]:
    """The run's complete resumable states, newest first (temporary folders are not listed)."""
    root = Path(run_dir) / RESUME
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STATE_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(STATE_NAME.fullmatch(p.name)[1]), reverse=True)


def read_newest(run_dir: Path) -> tuple[Path, bytes, bytes]:
    """(folder, state.json bytes, state.safetensors bytes) of the newest complete state."""
    states = complete_states(run_dir)
    if not states:
        raise CheckpointError(f"{run_dir} holds no resumable state ({RESUME}/step-*/): "
                              "it is not a run directory of this digitsum, or the run already finished")
    try:
        return states[0], (states[0] / META).read_bytes(), (states[0] / TENSORS).read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read resumable state {states[0]}: {error.strerror}; "
                              f"{_fallback(states)}") from None


def resume_point(run_dir: Path) -> tuple[int, int] | None:
    """(epoch, step) the newest complete state resumes at, or None if there is none readable."""
    states = complete_states(run_dir)
    try:
        meta = json.loads((states[0] / META).read_bytes())
        return int(meta["epoch"]), int(meta["step"])
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return None


def _fallback(states: list[Path]) -> str:
    if len(states) > 1:
        return f"remove that folder to resume from the one before it ({states[1].name})"
    return "start the run again with --overwrite"


def parse_state(folder: Path, meta_bytes: bytes, blob: bytes) -> SavedState:
    """Verify and decode a state read by ``read_newest`` (CheckpointError if damaged)."""
    states = complete_states(folder.parent.parent) or [folder]  # folder is RUN/resume/step-N
    damaged = f"resumable state {folder} is damaged"
    try:
        meta = json.loads(meta_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{damaged} ({META} is not valid JSON); {_fallback(states)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{damaged} ({META} is not a format-{FORMAT} state); {_fallback(states)}")
    if meta.get("state_sha256") != sha256(blob):
        raise CheckpointError(f"{damaged} ({TENSORS} is truncated or altered: its SHA-256 does not match "
                              f"{META}); {_fallback(states)}")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"{damaged} ({error}); {_fallback(states)}") from None
    return SavedState(folder, meta, tensors)


def match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each loaded moment its parameter's memory layout (channels-last convolutions).

    Saved moments come back contiguous. The default AdamW handles any layout, but torch's
    fused AdamW (``make_optimizer(fused=True)``) pairs elements by memory position and
    would apply such a moment to the wrong weights (torch 2.13; tests/test_resume.py).
    """
    for group in opt.param_groups:
        for param in group["params"]:
            moments = opt.state.get(param, {})
            for name, value in moments.items():
                if value.shape == param.shape and value.stride() != param.stride():
                    moments[name] = torch.empty_like(param).copy_(value)


def restore(saved: SavedState, model, opt, sched, keep_sums: bool = True) -> RunState:
    """Load a verified state into model, optimizer, schedule and RNGs; return where the run stands.

    ``keep_sums=False`` starts the epoch's sums from zero (ranks other than 0: rank 0
    carries the sums of every rank, all-reduced when the state was saved).
    """
    meta, tensors = saved.meta, saved.tensors
    try:
        model.load_state_dict(_strip(tensors, "model."), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"resumable state {saved.path} does not fit the run's model: "
                              f"{str(error).strip().splitlines()[-1].strip()}") from None
    per_param: dict[int, dict] = {}
    for key, value in _strip(tensors, "optimizer.").items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["optimizer_groups"]]
    opt.load_state_dict({"state": per_param, "param_groups": groups})
    match_layouts(opt)
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    device = next(model.parameters()).device
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    version, internal, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = meta["rng"]["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    tally = EpochTally.start(device, meta["step"], meta["seconds"])
    if keep_sums:
        tally.sums = {k: v.to(device) for k, v in _strip(tensors, "tally.").items()}
    return RunState(meta["epoch"], tally, meta["history"], meta["best_score"], meta["best_epoch"],
                    _strip(tensors, "best."))


def read_run(run_dir: Path) -> list[bytes]:
    """What rank 0 reads to resume a run (see RUN_READ); every rank then verifies it with ``parse_state``."""
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} not found; give the --out of the run to resume")
    if (run_dir / METRICS).exists():
        raise CheckpointError(f"{run_dir} is a finished run ({METRICS} written): there is nothing to resume")
    folder, meta, blob = read_newest(run_dir)
    config = read_json(run_dir / CONFIG, "config")
    return [json.dumps(config).encode(), str(folder).encode(), meta, blob]


def run_configs(config: dict, run_dir: Path, saved: SavedState) -> tuple[ModelConfig, TrainConfig]:
    """The run's model and training configs, checked against the state being resumed."""
    if saved.meta.get("config_sha256") != config_digest(config):
        raise CheckpointError(f"{run_dir / CONFIG} changed since {saved.path} was saved; "
                              "put the run's config back or start the run again")
    try:
        return ModelConfig.from_dict(config["model"]), TrainConfig.from_dict(config["train"])
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{run_dir / CONFIG} does not describe a run ({error})") from None


def remove_states(run_dir: Path) -> None:
    """Delete the run's resumable states (once the run is complete)."""
    shutil.rmtree(Path(run_dir) / RESUME, ignore_errors=True)
