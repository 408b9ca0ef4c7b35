"""What one report is made of: a run directory (finished, or still training) or a checkpoint."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..calibration import Calibration
from ..checkpoint import load_checkpoint
from ..errors import ReportError
from ..files import CONFIG, HISTORY, METRICS, WEIGHTS, read_json
from ..model import DigitSumNet

CURVE_KEYS = ("epoch", "train_loss", "train_digit_accuracy", "train_sum_accuracy",
              "val_digit_accuracy", "val_sum_accuracy")


@dataclass
class ReportSource:
    """What one report is made of."""

    name: str  # the run directory or checkpoint, as the page names it
    config: dict
    metrics: dict  # metrics.json, {} if there is none
    history: list[dict]  # metrics.jsonl, one dict per finished epoch
    model: DigitSumNet | None  # None: curves only
    in_progress: bool = False
    calibration: Calibration = field(default_factory=Calibration)


def read_history(path: Path) -> list[dict]:
    """The epochs recorded in a metrics.jsonl file ([] if it does not exist)."""
    if not path.is_file():
        return []
    history = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReportError(f"{path} line {i} is not valid JSON ({error})") from None
        missing = [key for key in CURVE_KEYS if not isinstance(record, dict) or key not in record]
        if missing:
            raise ReportError(f"{path} line {i} lacks {', '.join(missing)}: not a digitsum training history")
        history.append(record)
    return history


def run_source(run_dir: str | os.PathLike) -> ReportSource:
    """A run directory, finished (everything) or still training (curves only)."""
    run = Path(run_dir)
    if not run.exists():
        raise ReportError(f"run directory {run} not found")
    if not run.is_dir():
        raise ReportError(f"{run} is not a directory; for a .safetensors file use --checkpoint")
    history = read_history(run / HISTORY)
    finished = (run / WEIGHTS).is_file() and (run / METRICS).is_file()
    if not history and not finished:
        raise ReportError(f"{run} has nothing to report: no {HISTORY} or finished model yet; give a run "
                          "directory written by digitsum train, or wait for its first epoch")
    if not finished:
        config = read_json(run / CONFIG, "run config") if (run / CONFIG).is_file() else {}
        return ReportSource(str(run), config, {}, history, None, in_progress=True)
    checkpoint = load_checkpoint(run)  # reads config.json too
    return ReportSource(str(run), checkpoint.config, checkpoint.metrics, history, checkpoint.inference_model,
                        calibration=checkpoint.calibration)


def checkpoint_source(path: str | os.PathLike | None = None) -> ReportSource:
    """A checkpoint (None: the bundled model); curves if a metrics.jsonl lies beside it."""
    checkpoint = load_checkpoint(path)
    folder = checkpoint.path.parent
    name = "the bundled model" if path is None else str(path)
    return ReportSource(name, checkpoint.config, checkpoint.metrics, read_history(folder / HISTORY),
                        checkpoint.inference_model, calibration=checkpoint.calibration)
