"""Every failure digitsum expects: bad input, data, checkpoints, options, or a missing extra.

Each is a ``DigitsumError``; its message says what is wrong and what to do. The command line
prints such an error on one line and exits with its ``exit_code`` (1, or 2 for bad usage);
anything else is a bug and keeps its traceback. Errors about values a caller passed
(an image, a number, an option) are also ``ValueError``, as Python code expects.
"""

from __future__ import annotations


class DigitsumError(Exception):
    """An expected failure, reported to a person in one line."""

    exit_code = 1


class ConfigError(DigitsumError, ValueError):
    """An option's value is out of range or does not fit the others (exit status 2)."""

    exit_code = 2


class InputError(DigitsumError, ValueError):
    """A value given for prediction is not usable: a number that is not 0-9, lengths that differ."""


class ImageError(InputError):
    """An image that cannot be read or holds no digit: the message says what and why."""


class DataError(DigitsumError):
    """A data file is missing, unreadable, malformed or fails its digest."""


class CheckpointError(DigitsumError):
    """A checkpoint is missing, unreadable, corrupt, or its config does not fit its weights."""


class RunDirError(DigitsumError):
    """The output directory cannot be used for a new run, or holds no run to resume."""


class ManifestError(DigitsumError):
    """A manifest that cannot be read at all: missing, unreadable, or without its header columns."""


class ExportError(DigitsumError):
    """An export failed, or onnxruntime and torch disagree on its outputs: nothing was written."""


class OnnxError(DigitsumError):
    """An ONNX file is unreadable, corrupt, or not a graph digitsum can run."""


class ReportError(DigitsumError):
    """A run directory has nothing to report, or its history cannot be read."""


class ServeError(DigitsumError):
    """The server cannot start: the address cannot be resolved or the port is taken."""


class WriteError(DigitsumError, OSError):
    """A file could not be written (a full disk, no permission); nothing half-written was left."""


class MissingExtra(DigitsumError):
    """An optional package is not installed: the message names the extra that brings it."""


def require(module: str, extra: str, feature: str):
    """Import ``module``, or raise MissingExtra naming ``pip install 'digitsum[extra]'`` for ``feature``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs {module.split('.', maxsplit=1)[0]}, which is not installed: "
                           f"pip install 'digitsum[{extra}]'") from None
