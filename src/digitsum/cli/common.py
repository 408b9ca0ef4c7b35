"""What every sub-command shares: the one-line-error parser, error types, shared flags."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad flags: reported on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and no usage dump."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input, not a bug: reported on one line, no traceback."""
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..data import DataError
    from ..rundir import RunDirError

    return (CheckpointError, ConfigError, DataError, RunDirError, ValueError, OSError)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder with the MNIST files (default: $DIGITSUM_DATA, then the cache)")


RUNTIMES = ("torch", "onnx")


def add_checkpoint(p: argparse.ArgumentParser, onnx: bool = False) -> None:
    """``--checkpoint``; with ``onnx``, also ``--runtime`` (and .onnx files as checkpoints)."""
    also = "; with --runtime onnx, also an .onnx file" if onnx else ""
    p.add_argument("--checkpoint", help=f"run directory or .safetensors file (default: the bundled model){also}")
    if onnx:
        p.add_argument("--runtime", choices=RUNTIMES, default="torch", help="inference runtime (default: torch)")


def format_metrics(m: dict) -> str:
    """Test figures on one line."""
    return (f"digit {100 * m['digit_accuracy']:.2f}%  sum {100 * m['sum_accuracy']:.2f}%  "
            f"all-pairs sum {100 * m['all_pairs_sum_accuracy']:.2f}%  "
            f"consistency {100 * m['consistency']:.2f}%  (n={m['n']})")
