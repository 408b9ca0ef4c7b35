"""A report's figures, drawn with matplotlib off-screen (Agg, no display): each function returns PNG bytes.

matplotlib is imported inside the functions that draw, never at ``import digitsum``.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .tables import ModelTables, Sample

FIGURE_FILES = ("curves.png", "digit_confusion.png", "sum_confusion.png", "pair_accuracy.png",
                "reliability.png", "samples.png", "mistakes.png", "embeddings.png")


class Drawn(NamedTuple):
    """One figure of the page: its file name, heading, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def new_figure(width: float, height: float):
    """A matplotlib Figure of ``width`` x ``height`` inches at 100 dpi, not tied to any GUI."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def to_png(fig) -> bytes:
    """Render a figure with the Agg backend into PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_curves(history: list[dict]) -> bytes:
    """Loss, digit accuracy and sum accuracy per epoch, train vs validation."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = new_figure(15, 4.6)
    loss, digit, total = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]
    losses = [h["train_loss"] for h in history]
    loss.plot(epochs, losses, marker="o", color="tab:purple", label="train")
    loss.set(title="Training loss", ylabel="cross-entropy, digit + sum (log scale)", yscale="log")
    loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1 rather than 10^-1
    within_decade = max(losses) < 5 * min(losses)  # few minor ticks in view: label each one
    loss.yaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if within_decade or f"{v:.0e}"[0] in "235" else ""))
    for ax, head in ((digit, "digit"), (total, "sum")):
        ax.plot(epochs, [100 * h[f"train_{head}_accuracy"] for h in history], marker="o", label="train")
        ax.plot(epochs, [100 * h[f"val_{head}_accuracy"] for h in history], marker="s", label="validation")
        ax.set(title=f"{head.capitalize()} accuracy", ylabel="accuracy (%)")
    for ax in (loss, digit, total):
        ax.set(xlabel="epoch", xlim=(epochs[0] - 0.5, epochs[-1] + 0.5))  # whole epochs, even for one
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Learning curves ({len(history)} epoch{'s' * (len(history) != 1)})", fontsize=14)
    return to_png(fig)


def draw_confusion(counts: np.ndarray, title: str, what: str) -> bytes:
    """A (K, K) confusion matrix: log-scaled colours, every non-zero count written in its cell."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm

    k = len(counts)
    blues = ListedColormap(colormaps["Blues"](np.linspace(0.15, 1, 256)))  # a count of 1 stands out from blank
    side = 6.5 if k <= 10 else 10.5
    fig = new_figure(side + 1.4, side)
    ax = fig.subplots()
    norm = LogNorm(vmin=1, vmax=max(int(counts.max()), 2))
    image = ax.imshow(np.ma.masked_equal(counts, 0), cmap=blues, norm=norm)
    fig.colorbar(image, ax=ax, shrink=0.85, label="test items (log scale; blank: none)")
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=10 if k <= 10 else 8.5,
                    color="white" if norm(count) > 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set(xlabel=f"predicted {what}", ylabel=f"true {what}", title=title)
    return to_png(fig)


def draw_pair_accuracy(accuracy: np.ndarray, held_out: np.ndarray | None = None) -> bytes:
    """Sum accuracy (10, 10) per (true digit, number), the weakest cell outlined (of equal cells, the one
    with the smaller digit, then the smaller number), and, dashed in blue, the combinations ``held_out``
    (10, 10) bool of training."""
    from matplotlib.patches import Rectangle

    percent = 100 * accuracy
    fig = new_figure(8.4, 7)
    ax = fig.subplots()
    image = ax.imshow(percent, cmap="RdYlGn", vmin=min(math.floor(percent.min()), 99), vmax=100)
    fig.colorbar(image, ax=ax, shrink=0.85, label="sum accuracy (%)")
    for (i, j), value in np.ndenumerate(percent):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=9)
    row, col = np.unravel_index(percent.argmin(), percent.shape)
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.5))
    for i, j in np.argwhere(held_out) if held_out is not None else ():
        ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="blue", linewidth=2, ls="--"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set(xlabel="number", ylabel="true digit of the image",
           title=f"Sum accuracy for every test image with every number\n"
                 f"weakest: digit {row} + number {col} ({percent[row, col]:.1f}%)"
                 + ("; dashed: held out of training" if held_out is not None else ""))
    return to_png(fig)


def draw_reliability(reliability: dict) -> bytes:
    """For each head, accuracy against confidence per bin, without and with calibration, and the diagonal;
    below, how many test items each bin holds (few items: a noisy point)."""
    fig = new_figure(12, 7.5)
    axes = fig.subplots(2, 2, height_ratios=(3, 1.3), sharex="col")
    styles = (("raw", dict(marker="o", color="tab:orange")), ("calibrated", dict(marker="s", color="tab:blue")))
    for column, head in enumerate(("digit", "sum")):
        table, ax, counts = reliability[head], axes[0, column], axes[1, column]
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
        for kind, style in styles:
            points = table[kind]
            ax.plot([p[0] for p in points], [p[1] for p in points], **style,
                    label=f"{kind} (ECE {100 * table['ece'][kind]:.2f}%)")
            counts.plot([p[0] for p in points], [p[2] for p in points], **style, label=kind)
        low = min(p[0] for kind, _ in styles for p in table[kind])
        ax.set(xlim=(max(0.0, low - 0.05), 1.0), ylim=(max(0.0, low - 0.05), 1.0), ylabel="accuracy in the bin",
               title=f"{head.capitalize()} head")
        counts.set(yscale="log", xlabel="confidence (bin mean)", ylabel="test items in the bin")
        for a in (ax, counts):
            a.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.suptitle("Reliability on the test set: how often a prediction of a given confidence is right", fontsize=13)
    return to_png(fig)


def draw_samples(samples: list[Sample], columns: int = 8) -> bytes:
    """A grid of test items: image, number, predicted digit and sum, truth; mistakes in red."""
    rows = math.ceil(len(samples) / columns)
    fig = new_figure(1.75 * columns, 2.15 * rows + 0.5)
    grid = fig.subplots(rows, columns, squeeze=False)
    for ax in grid.flat:
        ax.set_axis_off()  # also blanks the unused cells of the last row
    for ax, s in zip(grid.flat, samples, strict=False):
        ax.imshow(s.image.numpy(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"number {s.number}\npredicted {s.predicted_digit}, sum {s.predicted_sum}\n"
                     f"true {s.digit}, sum {s.digit + s.number}",
                     fontsize=9, color="tab:green" if s.correct else "tab:red")
    fig.suptitle(f"The first {len(samples)} test items (green: digit and sum right, red: a mistake)", fontsize=13)
    return to_png(fig)


def draw_probabilities(ax, probs: np.ndarray, truth: int, what: str) -> None:
    """Bars of one probability vector: the truth green, a wrong prediction red."""
    predicted = int(probs.argmax())
    colours = ["lightgray"] * len(probs)
    colours[predicted] = "tab:red"
    colours[truth] = "tab:green"
    ax.bar(range(len(probs)), probs, color=colours)
    ax.set_xticks(range(len(probs)))
    ax.tick_params(labelsize=8)
    ax.set(ylim=(0, 1), ylabel="probability")
    ax.set_title(f"{what}: predicted {predicted} ({probs[predicted]:.0%}), true {truth} ({probs[truth]:.0%})",
                 fontsize=10)


def draw_mistakes(mistakes: list[Sample]) -> bytes:
    """Each mistake on a row: its image, the digit probabilities and the sum probabilities."""
    fig = new_figure(14, 2.1 * len(mistakes) + 0.6)
    axes = fig.subplots(len(mistakes), 3, squeeze=False, width_ratios=[1, 2.6, 4.4])
    for (image, digit, total), s in zip(axes, mistakes, strict=True):
        image.imshow(s.image.numpy(), cmap="gray_r", vmin=0, vmax=255)
        image.set_title(f"number {s.number}", fontsize=10)
        image.set_axis_off()
        draw_probabilities(digit, s.digit_probs.numpy(), s.digit, "digit")
        draw_probabilities(total, s.sum_probs.numpy(), s.digit + s.number, "sum")
    axes[-1, 1].set_xlabel("digit")
    axes[-1, 2].set_xlabel("sum")
    fig.suptitle("The test set's most confident mistakes (green: truth, red: the wrong prediction)", fontsize=13)
    return to_png(fig)


def draw_all(history: list[dict], tables: ModelTables | None) -> list[Drawn]:
    """Every figure the data allows: curves if there is a history, the rest if there are tables."""
    drawn = []
    if history:
        drawn.append(Drawn("curves.png", "Learning curves", "Per epoch: the mean training loss, and digit and "
                           "sum accuracy on the training batches (shifted images, fresh numbers) and on the "
                           "held-out validation images.", draw_curves(history)))
    if tables is None:
        return drawn
    summary = tables.summary()
    drawn += [
        Drawn("digit_confusion.png", "Digit confusion", "Rows: the true digit; columns: the predicted one.",
              draw_confusion(tables.digit_confusion.numpy(), f"Digit confusion on the test set "
                             f"(n={summary['n']:,}, {100 * summary['digit_accuracy']:.2f}% right)", "digit")),
        Drawn("sum_confusion.png", "Sum confusion", "Rows: the true digit + number; columns: the predicted sum.",
              draw_confusion(tables.sum_confusion.numpy(), f"Sum confusion on the test set "
                             f"(n={summary['n']:,}, {100 * summary['sum_accuracy']:.2f}% right)", "sum")),
        Drawn("pair_accuracy.png", "Where addition is weakest", "Every test image paired with every number "
              "0-9: the share of right sums for each (true digit, number) cell.",
              draw_pair_accuracy(tables.pair_accuracy.numpy(), tables.held_out)),
        Drawn("samples.png", "Test samples", "The first test items with their fixed numbers.",
              draw_samples(tables.samples)),
    ]
    if tables.reliability:
        drawn.insert(-1, Drawn("reliability.png", "Reliability of the probabilities", "Test predictions grouped "
                               "into 15 bins of confidence: each bin's mean confidence against the share right, "
                               "before (raw) and after calibration (temperatures fitted on the validation split).",
                               draw_reliability(tables.reliability)))
    if tables.mistakes:
        drawn.append(Drawn("mistakes.png", "Most confident mistakes", "Test items whose digit or sum is wrong, "
                           "ranked by the probability the model gave its wrong answer.",
                           draw_mistakes(tables.mistakes)))
    return drawn
