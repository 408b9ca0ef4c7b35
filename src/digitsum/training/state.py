"""Where a run stands besides its model and optimizer, and that whole state as tensors + JSON.

``EpochTally`` holds the running sums of the epoch in progress, ``RunState`` the run's
position, history and best epoch, ``TrainState`` all that training changes: model, optimizer,
schedule and RunState. ``encode`` turns a TrainState into (safetensors bytes, a JSON-ready
dict); ``restore`` loads a verified state back into one.
Training draws its randomness only from generators seeded by (seed, epoch) (mixture.py), and
the model's initial weights are seeded once; so no global random state needs saving.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from ..errors import CheckpointError

FORMAT = 1
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
class TrainState:
    """Everything training changes: the model, its optimizer and schedule, and where the run stands."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    run: RunState


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


def encode(ts: TrainState, global_step: int, config: dict) -> tuple[bytes, dict]:
    """The state as (safetensors bytes, JSON-ready dict).

    Tensors: the model's weights and buffers (``model.*``), the best epoch's weights (``best.*``),
    the optimizer's moments and step counts (``optimizer.<param>.<key>``) and the epoch's running
    sums (``tally.*``). JSON: the position (epoch, step), the schedule's and optimizer's settings,
    the history and best epoch so far, and the SHA-256 of the run's config and of the tensors.
    """
    opt, sched, state = ts.opt, ts.sched, ts.run
    optim = opt.state_dict()
    tensors = {**_cpu(ts.model.state_dict(), "model."), **_cpu(state.best_weights, "best."),
               **_cpu(state.tally.sums, "tally.")}
    for i, per_param in optim["state"].items():
        tensors.update(_cpu(per_param, f"optimizer.{i}."))
    blob = save_safetensors(tensors)
    meta = {
        "format": FORMAT, "epoch": state.epoch, "step": state.tally.step, "global_step": global_step,
        "seconds": state.tally.seconds, "best_score": state.best_score, "best_epoch": state.best_epoch,
        "history": state.history, "scheduler": sched.state_dict(), "optimizer_groups": optim["param_groups"],
        "config_sha256": config_digest(config), "state_sha256": sha256(blob),
    }
    return blob, meta


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


def restore(saved: SavedState, ts: TrainState, keep_sums: bool = True) -> None:
    """Load a verified state into a fresh TrainState: its model, optimizer, schedule and run state.

    ``keep_sums=False`` starts the epoch's sums from zero (ranks other than 0: rank 0
    carries the sums of every rank, all-reduced when the state was saved). States written by
    earlier versions also hold random-number-generator states; they are not needed and ignored.
    """
    meta, tensors, model, opt = saved.meta, saved.tensors, ts.model, ts.opt
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
    ts.sched.load_state_dict(meta["scheduler"])
    device = next(model.parameters()).device
    tally = EpochTally.start(device, meta["step"], meta["seconds"])
    if keep_sums:
        tally.sums = {k: v.to(device) for k, v in _strip(tensors, "tally.").items()}
    ts.run = RunState(meta["epoch"], tally, meta["history"], meta["best_score"], meta["best_epoch"],
                      _strip(tensors, "best."))
