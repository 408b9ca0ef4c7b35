"""Training report: a run directory (or a checkpoint) -> PNG figures and a ``report.html`` page.

A report shows the per-epoch learning curves from ``metrics.jsonl`` and, when the run has
finished, what its model does on the MNIST test set with its fixed numbers: both confusion
matrices, sum accuracy for every (digit, number) pair (combinations held out of training
outlined), a grid of samples, the most confident mistakes and the number embeddings
(embeddings.py). ``source`` gathers a run's or a checkpoint's data, ``tables`` computes what is drawn,
``figures`` draws it and ``page`` lays out the page; ``write_report`` writes the files.
Everything is computed before anything is written, and every file is written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data import load_mnist
from ..errors import ReportError, require
from ..files import atomic_write_bytes
from ..pairs import parse_pairs
from .embeddings import embedding_figure
from .figures import FIGURE_FILES, draw_all
from .page import render_page
from .source import ReportSource, checkpoint_source, run_source
from .tables import model_tables

PAGE = "report.html"


@dataclass
class Report:
    """Where a report was written and what it holds."""

    page: Path
    figures: list[str] = field(default_factory=list)
    in_progress: bool = False


def require_matplotlib() -> None:
    """Fail early, in one line, if the optional matplotlib is missing."""
    require("matplotlib", "report", "digitsum report")


def write_report(source: ReportSource, output: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Report:
    """Draw every figure the source allows and write them with ``report.html`` into ``output``."""
    require_matplotlib()
    tables = None
    if source.model is not None:
        held_out = parse_pairs(str(source.config.get("train", {}).get("hold_out_pairs", "")))
        tables = model_tables(source.model, load_mnist(data_dir, splits=("test",))["test"], source.calibration,
                              held_out=held_out)
    figures = draw_all(source.history, tables)  # [(file name, title, caption, png bytes)]
    if tables is not None:
        figures.append(embedding_figure(tables.embedding, tables.readout))
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
