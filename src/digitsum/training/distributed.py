"""Training on several processes with PyTorch's own engine: launched by ``torchrun``.

``torchrun`` starts one process per rank and tells each, through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), who it is
and where to meet. ``session`` joins that process group (``gloo`` on CPU, ``nccl`` on
CUDA) and yields a ``World``: this process's rank and device, and the few collectives
training needs. Without ``torchrun`` (or with one process) the world is this process
alone and every collective is a no-op, so one code path serves both.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from ..errors import ConfigError, DigitsumError
from ..launch import env_local_rank, env_world_size
from ..runtime import pick_device


class PeerFailed(DigitsumError):
    """Another rank failed; that rank reports the error, this one exits quietly."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes, and their collectives."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports."""
        return self.rank == 0

    def on(self, device_name: str) -> World:
        """This world training on ``device_name``; with several ranks on CUDA, each on its own GPU."""
        if self.size == 1:
            return replace(self, device=pick_device(device_name))
        device = rank_device(device_name, env_local_rank())
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return replace(self, device=device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the training step should call it: DistributedDataParallel if several ranks."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``tensor`` over all ranks (a new tensor on ``tensor``'s device)."""
        total = tensor.detach().to(self.device, copy=True)
        if self.size > 1:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(tensor.device)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if self.size == 1:
            return flag
        return bool(self.sum(torch.tensor([int(flag)])).item())

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's contiguous share ``[start, stop)`` of ``n`` items; shares cover each item once."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def check_global_batch(self, batch_size: int, n_train: int) -> None:
        """``--batch-size`` is the global batch: each of the W ranks takes batch_size / W images of it."""
        if batch_size % self.size:
            raise ConfigError(f"--batch-size {batch_size} is the global batch, split over {self.size} "
                              f"processes: make it a multiple of {self.size}")
        if self.size > 1 and n_train < batch_size:
            raise ConfigError(f"{n_train} training images do not fill one global batch of {batch_size}; "
                              "lower --batch-size or raise --limit")

    def broadcast_bytes(self, data: bytes | None) -> bytes:
        """Rank 0's ``data`` on every rank (others pass None): files only rank 0 can read."""
        if self.size == 1:
            return data
        length = torch.tensor([len(data) if self.is_main else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(length, src=0)
        payload = torch.empty(int(length), dtype=torch.uint8, device=self.device)
        if self.is_main and data:
            payload.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(payload, src=0)
        return data if self.is_main else payload.cpu().numpy().tobytes()

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics), so all evaluate the model rank 0 saves."""
        if self.size == 1:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Run a block on every rank; if it fails on any rank it fails on all.

        The lowest failing rank re-raises its own error (so it is reported once); the
        other ranks raise PeerFailed. With one process this is a plain block.
        """
        error = None
        try:
            yield
        except Exception as caught:  # every rank must reach the collective below, whatever went wrong
            if self.size == 1:
                raise
            error = caught
        if self.size == 1:
            return
        failed = torch.zeros(self.size, dtype=torch.int64)
        failed[self.rank] = error is not None
        failed = self.sum(failed)
        if not failed.any():
            return
        if error is not None and int(failed.nonzero()[0]) == self.rank:
            raise error
        raise PeerFailed(f"rank {int(failed.nonzero()[0])} failed")


class StopRequest:
    """Ctrl-C (SIGINT) asks training to stop at its next clean point instead of at once.

    Calling the object tells whether any rank was asked; it is a collective, so every
    rank calls it at the same points. The handler is installed only inside ``with``.
    """

    def __init__(self, world: World):
        self.world, self.asked, self.previous = world, False, None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, signum, frame) -> None:
        self.asked = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def __call__(self) -> bool:
        return self.world.any(self.asked)


def rank_device(device_name: str, local_rank: int) -> torch.device:
    """The device of one rank of several: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else the CPU."""
    device = pick_device(device_name)
    if device.type == "cuda":
        return torch.device("cuda", local_rank)
    if device.type != "cpu":
        raise ConfigError(f"distributed training runs on cpu or cuda, not {device.type}; use --device cpu")
    return device


@contextmanager
def session() -> Iterator[World]:
    """The world this process trains in: torchrun's process group, or this process alone.

    Joins (and finally leaves) the process group when ``WORLD_SIZE`` > 1: ``gloo`` for
    CPU tensors and, where CUDA is available, ``nccl`` for CUDA tensors. A group the
    caller already initialised is used and left open. The world starts on the CPU;
    ``World.on`` moves it to the run's device.

    Leaving is orderly, so that no rank dies at exit: the DistributedDataParallel wrappers
    (and the gloo work they hold) are collected first, in this thread; after a clean run every
    rank waits at a barrier for the others, so none tears down its connections while a peer
    still uses them; then the group is destroyed while the interpreter is fully alive.
    """
    if env_world_size() == 1 and not dist.is_initialized():
        yield World()
        return
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    clean = False
    try:
        yield World(dist.get_rank(), dist.get_world_size())
        clean = True
    finally:
        if owned:
            gc.collect()
            if clean:
                dist.barrier()
            dist.destroy_process_group()
            gc.collect()
