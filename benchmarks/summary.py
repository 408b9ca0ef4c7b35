"""How a section states a figure measured more than once: a timing as the median of its rounds
(or seeds) with their min-max, an accuracy over seeds as the mean with its min-max. A single
value (one round of a ``--quick`` smoke run, or the one seed that got there) stands alone."""

from __future__ import annotations

import statistics


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """The median with its min-max, each written with ``fmt``."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def mean_range(values: list[float]) -> str:
    """Accuracies (0-1): the mean with its min-max, as percentages."""
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(statistics.mean(values))} ({pct(min(values))}-{pct(max(values))})"


def worst_seed(heads: list[tuple[float, float]]) -> str:
    """Of each seed's (digit, sum) accuracies (0-1), the seed whose lower head is lowest: that accuracy, the seed
    and the head, e.g. "99.46% (seed 4, sum)" (a tie between the heads names the digit)."""
    seed, (digit, total) = min(enumerate(heads), key=lambda s: min(s[1]))
    return f"{pct(min(digit, total))} (seed {seed}, {'digit' if digit <= total else 'sum'})"
