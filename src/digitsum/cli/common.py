"""What every sub-command shares: the one-line-error parser and the flags several commands take."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad flags: reported on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and no usage dump."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder with the MNIST files (default: $DIGITSUM_DATA, then the cache)")


def add_checkpoint(p: argparse.ArgumentParser, onnx: bool = False) -> None:
    """``--checkpoint``; with ``onnx``, also ``--runtime`` (and .onnx files as checkpoints)."""
    from ..predict import RUNTIMES

    also = "; with --runtime onnx, also an .onnx file" if onnx else ""
    p.add_argument("--checkpoint", help=f"run directory or .safetensors file (default: the bundled model){also}")
    if onnx:
        p.add_argument("--runtime", choices=list(RUNTIMES), default="torch",
                       help="inference runtime (default: torch)")


def resolve_checkpoint(command: str, checkpoint: str | None, runtime: str) -> str | None:
    """The file ``load_model`` opens for ``checkpoint`` under ``runtime``: the checkpoint itself, or, for the onnx
    runtime given a checkpoint, its ONNX export, made once into the user cache (``export.cached_export``; said on
    stderr when it makes one)."""
    if runtime != "onnx" or str(checkpoint or "").endswith(".onnx"):
        return checkpoint
    import sys

    from ..errors import require
    from ..export import cached_export

    require("onnxruntime", "onnx", "the onnx runtime")  # before anything is exported
    path, exported = cached_export(checkpoint)
    if exported:
        print(f"digitsum {command}: exported {checkpoint or 'the bundled model'} to ONNX for the onnx runtime: "
              f"{path} (digitsum export writes one where you choose)", file=sys.stderr)
    return str(path)


def load_predictor(command: str, checkpoint: str | None, runtime: str):
    """``predict.load_model`` for a sub-command, on the file ``resolve_checkpoint`` names."""
    from ..predict import load_model

    return load_model(resolve_checkpoint(command, checkpoint, runtime), runtime)


def int_in(low: int, high: int | None = None):
    """argparse type: an integer from ``low`` to ``high`` (no upper bound when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {low}-{high}" if high is not None
                                             else f"{value} is too small: give {low} or more")
        return value

    return parse


def positive_number(unit: str):
    """argparse type: a number above 0 (of ``unit``, as the error says)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value

    return parse


def device(text: str) -> str:
    """argparse type: a device this machine has (cpu, cuda, cuda:N, mps or auto)."""
    from ..errors import ConfigError
    from ..runtime import pick_device

    try:
        pick_device(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def format_metrics(m: dict) -> str:
    """Test figures on one line (and, for a run that held pairs out, theirs on a second)."""
    return (f"digit {100 * m['digit_accuracy']:.2f}%  sum {100 * m['sum_accuracy']:.2f}%  "
            f"all-pairs sum {100 * m['all_pairs_sum_accuracy']:.2f}%  "
            f"consistency {100 * m['consistency']:.2f}%  (n={m['n']})" + held_out_line(m))


def held_out_line(m: dict) -> str:
    """For a run with held-out pairs, their sum accuracy beside that of the pairs trained on ("" otherwise)."""
    if "held_out_pairs" not in m:
        return ""
    return (f"\nheld-out pairs {','.join(m['held_out_pairs'])}: sum {100 * m['held_out_sum_accuracy']:.2f}% "
            f"(seen pairs {100 * m['seen_sum_accuracy']:.2f}%; digit head + number "
            f"{100 * m['held_out_digit_plus_number_accuracy']:.2f}% and "
            f"{100 * m['seen_digit_plus_number_accuracy']:.2f}%)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar on the terminal")


class NoBar:
    """What ``progress`` returns when no bar is shown: the same calls, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, description: str, quiet: bool = False, unit: str = "it", initial: int = 0):
    """A tqdm progress bar on stderr when it is a terminal (and not ``quiet``, and this is rank 0 under
    torchrun); otherwise a NoBar, so that piped output stays as it was."""
    import sys

    from ..launch import env_rank

    if quiet or not sys.stderr.isatty() or env_rank() != 0:
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, initial=initial, leave=False, dynamic_ncols=True,
                file=sys.stderr)
