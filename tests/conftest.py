"""Shared fixtures: real MNIST from ../shared (or $DIGITSUM_DATA) and one small real run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digitsum.config import ModelConfig, TrainConfig
from digitsum.data import load_mnist, missing_files

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("DIGITSUM_DATA"):  # made absolute: some tests run commands in other folders
    os.environ["DIGITSUM_DATA"] = str(Path(os.environ["DIGITSUM_DATA"]).resolve())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST folder; a missing one fails the tests rather than skipping them."""
    folder = Path(os.environ.get("DIGITSUM_DATA") or REPO.parent / "shared" / "data" / "mnist")
    missing = missing_files(folder)
    if missing:
        pytest.fail(f"MNIST files missing from {folder}: {missing}; set DIGITSUM_DATA", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Both splits, parsed and verified."""
    return load_mnist(mnist_dir, download=False)


@pytest.fixture(scope="session")
def small_run(mnist_dir, tmp_path_factory) -> Path:
    """A real training run on the first 8,000 MNIST images (a few seconds of CPU)."""
    from digitsum.training import train

    out = tmp_path_factory.mktemp("runs") / "small"
    cfg = TrainConfig(epochs=3, batch_size=64, limit=8000, threads=1, seed=0)  # 1 thread: leaves torch at 1
    train(ModelConfig(), cfg, out, data_dir=str(mnist_dir))
    return out
