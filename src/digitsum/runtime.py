"""Where and how torch runs: the one device picker, seeding and thread setting."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda[:N]``, ``mps`` or ``auto`` (the best available) as a torch device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch has no CUDA device; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but MPS is not available; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda, cuda:N, mps or auto")
    return device


def set_seed(seed: int) -> None:
    """Seed every generator a run touches (Python, NumPy, torch)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch's intra-op work (0 leaves torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)
