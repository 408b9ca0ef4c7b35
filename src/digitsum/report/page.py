"""The report's HTML page: its figures, the final metrics, the run's config and per-epoch history.

The page is self-contained apart from the PNG files beside it (no scripts, no external
styles), and every value read from the run is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from .figures import Drawn
    from .source import ReportSource
    from .tables import ModelTables

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff4d6; border: 1px solid #e0c060; padding: 0.6em 1em; }
figure { margin: 1.5em 0; }
figcaption { color: #555; margin-bottom: 0.5em; }
"""
HISTORY_COLUMNS = {"epoch": "epoch", "train_loss": "loss", "train_digit_accuracy": "train digit",
                   "train_sum_accuracy": "train sum", "val_digit_accuracy": "val digit",
                   "val_sum_accuracy": "val sum", "seconds": "seconds", "lr": "lr"}


def flatten(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts -> (dotted key, value) rows."""
    rows = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        rows += flatten(value, f"{name}.") if isinstance(value, dict) and value else [(name, value)]
    return rows


def show(key: str, value: object) -> str:
    """A value as the page writes it: accuracies in percent, seconds with a unit, a dict on one line; escaped."""
    if isinstance(value, dict):
        return " &middot; ".join(f"{escape(str(k))}: {show(key, v)}" for k, v in value.items())
    if isinstance(value, float) and ("accuracy" in key or "consistency" in key):
        return f"{100 * value:.2f}%"
    if isinstance(value, float) and "seconds" in key:
        return f"{value:.1f} s"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def key_value_table(rows: list[tuple[str, object]]) -> str:
    """A two-column table of (name, value) rows."""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{show(str(k), v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def history_table(history: list[dict]) -> str:
    """One row per epoch with the columns that metrics.jsonl records."""
    columns = [key for key in HISTORY_COLUMNS if any(key in h for h in history)]
    head = "".join(f"<th>{HISTORY_COLUMNS[key]}</th>" for key in columns)
    rows = "".join("<tr>" + "".join(f'<td class="num">{show(key, h.get(key, ""))}</td>' for key in columns)
                   + "</tr>" for h in history)
    return f"<table><tr>{head}</tr>{rows}</table>"


def notes(source: ReportSource) -> str:
    """What the reader should know before looking: a run in progress, a missing history."""
    if source.in_progress:
        train = source.config.get("train")
        planned = escape(str(train.get("epochs", "?"))) if isinstance(train, dict) else "?"
        return (f'<p class="note">This run is still training (or stopped before it finished): '
                f"{len(source.history)} of {planned} epochs so far. Only the learning curves are shown; "
                "run <code>digitsum report</code> again when training ends for the test-set figures.</p>")
    if not source.history:
        return ('<p class="note">No per-epoch history (metrics.jsonl) beside this model, so no learning '
                "curves; the test-set figures follow.</p>")
    return ""


def metrics_section(source: ReportSource, tables: ModelTables | None) -> str:
    """The final test figures: the run's metrics.json, or those read off the tables."""
    if source.metrics:
        return "<h2>Test set (from metrics.json)</h2>" + key_value_table(list(source.metrics.items()))
    if tables is not None:
        return "<h2>Test set (measured for this report)</h2>" + key_value_table(list(tables.summary().items()))
    return ""


def figure(drawn: Drawn) -> str:
    return (f"<figure><h2>{escape(drawn.title)}</h2><figcaption>{escape(drawn.caption)}</figcaption>"
            f'<img src="{escape(drawn.name, quote=True)}" alt="{escape(drawn.title, quote=True)}"></figure>')


def render_page(source: ReportSource, tables: ModelTables | None, figures: list[Drawn]) -> str:
    """The whole report.html."""
    title = f"digitsum report: {source.name}"
    parts = [
        f"<h1>{escape(title)}</h1>",
        notes(source),
        metrics_section(source, tables),
        *(figure(drawn) for drawn in figures),
        "<h2>Per-epoch history (metrics.jsonl)</h2>" + history_table(source.history) if source.history else "",
        "<h2>Config</h2>" + (key_value_table(flatten(source.config)) if source.config else "<p>No config.json.</p>"),
        f"<p><small>Written by digitsum {escape(__version__)}.</small></p>",
    ]
    body = "\n".join(part for part in parts if part)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
