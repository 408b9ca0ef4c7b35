"""Where and how torch runs: the one device picker, and seeding, threads and evaluation mode as
context managers that put back what they changed (a library call leaves the world as it found it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .config import DEVICES
from .errors import ConfigError


def pick_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda[:N]``, ``mps`` or ``auto`` (the best available) as a torch device (ConfigError if not)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use {DEVICES}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r}; use {DEVICES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this torch has no CUDA device; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available; use --device cpu")
    return device


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generator (and ``device``'s, for CUDA) inside the block; restore it after."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Use ``count`` CPU threads for torch's intra-op work inside the block (0: leave torch's setting)."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in evaluation mode inside the block, back in the mode it had after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
