"""Training report: a run directory (or a checkpoint) -> PNG figures and a ``report.html`` page.

A report shows the per-epoch learning curves from ``metrics.jsonl`` and, when the run has
finished, what its model does on the MNIST test set with its fixed numbers: both confusion
matrices, sum accuracy for every (digit, number) pair, a grid of samples and the most
confident mistakes. This module gathers the data; ``report_figures`` draws it and
``report_page`` lays out the page. Everything is computed before anything is written, and
every file is written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import CONFIG, METRICS, WEIGHTS, load_checkpoint, read_json
from .data import Split, load_mnist
from .evaluate import Outputs, all_pairs_sums, fixed_test_mixture, infer
from .files import atomic_write_bytes
from .mixture import NUM_DIGITS, NUM_SUMS, NumberMixture
from .model import DigitSumNet
from .rundir import HISTORY

PAGE = "report.html"
CURVE_KEYS = ("epoch", "train_loss", "train_digit_accuracy", "train_sum_accuracy",
              "val_digit_accuracy", "val_sum_accuracy")


class ReportError(ValueError):
    """A run directory has nothing to report, or its history cannot be read."""


@dataclass
class Sample:
    """One test item with the model's probabilities."""

    image: torch.Tensor  # (28, 28) uint8
    number: int
    digit: int
    digit_probs: torch.Tensor  # (10,)
    sum_probs: torch.Tensor  # (19,)

    @property
    def predicted_digit(self) -> int:
        return int(self.digit_probs.argmax())

    @property
    def predicted_sum(self) -> int:
        return int(self.sum_probs.argmax())

    @property
    def correct(self) -> bool:
        return self.predicted_digit == self.digit and self.predicted_sum == self.digit + self.number


@dataclass
class ModelTables:
    """What a model does on the test set, ready to draw."""

    digit_confusion: torch.Tensor  # (10, 10) counts: rows true digit, columns predicted
    sum_confusion: torch.Tensor  # (19, 19) counts: rows true sum, columns predicted
    pair_accuracy: torch.Tensor  # (10, 10) all-pairs sum accuracy: rows digit, columns number
    samples: list[Sample]
    mistakes: list[Sample]  # most confident first

    def summary(self) -> dict:
        """Headline test figures, read off the tables."""
        per_digit = self.digit_confusion.sum(1)  # (10,) test images of each digit
        n = int(per_digit.sum())
        return {"n": n,
                "digit_accuracy": float(self.digit_confusion.diag().sum()) / n,
                "sum_accuracy": float(self.sum_confusion.diag().sum()) / n,
                "all_pairs_sum_accuracy": float((self.pair_accuracy * per_digit[:, None]).sum()) / (10 * n)}


@dataclass
class ReportSource:
    """What one report is made of."""

    name: str  # the run directory or checkpoint, as the page names it
    config: dict
    metrics: dict  # metrics.json, {} if there is none
    history: list[dict]  # metrics.jsonl, one dict per finished epoch
    model: DigitSumNet | None  # None: curves only
    in_progress: bool = False


@dataclass
class Report:
    """Where a report was written and what it holds."""

    page: Path
    figures: list[str] = field(default_factory=list)
    in_progress: bool = False


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
        config = read_json(run / CONFIG, "config") if (run / CONFIG).is_file() else {}
        return ReportSource(str(run), config, {}, history, None, in_progress=True)
    checkpoint = load_checkpoint(run)  # reads config.json too
    return ReportSource(str(run), checkpoint.config, checkpoint.metrics, history, checkpoint.model)


def checkpoint_source(path: str | os.PathLike | None = None) -> ReportSource:
    """A checkpoint (None: the bundled model); curves if a metrics.jsonl lies beside it."""
    checkpoint = load_checkpoint(path)
    folder = checkpoint.path.parent
    name = "the bundled model" if path is None else str(path)
    return ReportSource(name, checkpoint.config, checkpoint.metrics, read_history(folder / HISTORY), checkpoint.model)


def confusion(truth: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts of each (truth, prediction) pair; both inputs (N,) int64."""
    return torch.bincount(truth * classes + predicted, minlength=classes * classes).view(classes, classes)


def pair_accuracy(model: DigitSumNet, test: Split) -> torch.Tensor:
    """Sum accuracy of every test image with every number, by (true digit, number) -> (10, 10)."""
    sums = all_pairs_sums(model, test.images)  # (N, 10)
    correct = (sums == test.labels[:, None] + torch.arange(10)[None, :]).float()  # (N, 10)
    per_digit = torch.zeros(NUM_DIGITS, 10).index_add_(0, test.labels, correct)
    return per_digit / torch.bincount(test.labels, minlength=NUM_DIGITS).clamp(min=1)[:, None]


def confident_mistakes(out: Outputs, mixture: NumberMixture, k: int) -> torch.Tensor:
    """Indices of up to ``k`` items with a wrong digit or sum, most confidently wrong first."""
    digit_wrong = out.digits != mixture.labels  # (N,)
    sum_wrong = out.sums != mixture.labels + mixture.numbers  # (N,)
    zero = torch.zeros(())
    confidence = torch.maximum(torch.where(digit_wrong, out.digit_probs.max(1).values, zero),
                               torch.where(sum_wrong, out.sum_probs.max(1).values, zero))  # (N,)
    order = confidence.argsort(descending=True)[:k]
    return order[confidence[order] > 0]


def model_tables(model: DigitSumNet, test: Split, samples: int = 32, mistakes: int = 8) -> ModelTables:
    """Confusion matrices, the all-pairs table, the first ``samples`` items and the worst mistakes."""
    mixture = fixed_test_mixture(test)
    out = infer(model, mixture)

    def sample(i: int) -> Sample:
        return Sample(mixture.images[i], int(mixture.numbers[i]), int(mixture.labels[i]),
                      out.digit_probs[i], out.sum_probs[i])

    return ModelTables(
        digit_confusion=confusion(mixture.labels, out.digits, NUM_DIGITS),
        sum_confusion=confusion(mixture.labels + mixture.numbers, out.sums, NUM_SUMS),
        pair_accuracy=pair_accuracy(model, test),
        samples=[sample(i) for i in range(min(samples, len(mixture)))],
        mistakes=[sample(int(i)) for i in confident_mistakes(out, mixture, mistakes)],
    )


def require_matplotlib() -> None:
    """Fail early, in one line, if the optional matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("reports need matplotlib: pip install 'digitsum[report]'") from None


def write_report(source: ReportSource, output: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Report:
    """Draw every figure the source allows and write them with ``report.html`` into ``output``."""
    from .report_figures import FIGURE_FILES, draw_all
    from .report_page import render_page

    require_matplotlib()
    tables = None
    if source.model is not None:
        tables = model_tables(source.model, load_mnist(data_dir, splits=("test",))["test"])
    figures = draw_all(source.history, tables)  # [(file name, title, caption, png bytes)]
    page = render_page(source, tables, figures)
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create report folder {out}: {error.strerror}") from None
    for name, *_, png in figures:
        atomic_write_bytes(out / name, png)
    for stale in set(FIGURE_FILES) - {name for name, *_ in figures}:  # from an earlier report into this folder
        (out / stale).unlink(missing_ok=True)
    atomic_write_bytes(out / PAGE, page.encode())
    return Report(out / PAGE, [name for name, *_ in figures], source.in_progress)


def report_run(run_dir: str | os.PathLike, output: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None) -> Report:
    """Report on a run directory, into ``output`` (default: ``RUN_DIR/report``)."""
    return write_report(run_source(run_dir), Path(run_dir) / "report" if output is None else output, data_dir)


def report_checkpoint(path: str | os.PathLike | None = None, output: str | os.PathLike = "report",
                      data_dir: str | os.PathLike | None = None) -> Report:
    """Report on a checkpoint (None: the bundled model), into ``output``."""
    return write_report(checkpoint_source(path), output, data_dir)
