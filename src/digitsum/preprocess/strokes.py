"""Stroke width: measure it, and bring strokes much thicker or thinner than MNIST's to MNIST's width.

A digit drawn with a marker, or with a one-pixel pen on a large canvas, ends up far from
MNIST's strokes once fitted to 20x20; eroding or dilating it at 4x that size first keeps
its shape and gives the network the strokes it was trained on.
"""

from __future__ import annotations

import numpy as np

# Widths in pixels with the digit's longer side at SCALE x 20. MNIST's 5th, 50th and 95th percentiles
# are 6.6, 10.2 and 15.9; strokes outside [MIN, MAX] are brought to TARGET, the width that measured
# best on benchmarks/user_style.py.
SCALE, MIN, TARGET, MAX = 4, 6, 12, 14


def stroke_width(x: np.ndarray) -> float:
    """Mean stroke width of float ink (H, W), in pixels: twice the ink's area over its boundary's."""
    ink = x > 0.5 * x.max()
    inner = morph(ink, 1, np.minimum, diagonals=False)
    return 2 * float(ink.sum()) / max(float((ink & ~inner).sum()), 1.0)


def even_strokes(x: np.ndarray) -> np.ndarray:
    """Thin strokes thicker than MNIST's and thicken thinner ones (float ink (H, W), longer side 80)."""
    width = stroke_width(x)
    if width > MAX:
        thinner = morph(x, round((width - TARGET) / 2), np.minimum)
        return thinner if thinner.max() > 0.5 else x  # never erase the digit
    if width < MIN:
        steps = round((TARGET - width) / 2)
        wider = np.zeros((x.shape[0] + 2 * steps, x.shape[1] + 2 * steps), dtype=x.dtype)  # room to grow
        wider[steps:-steps, steps:-steps] = x
        return morph(wider, steps, np.maximum)
    return x


def morph(x: np.ndarray, steps: int, op, diagonals: bool = True) -> np.ndarray:
    """Erode (op=np.minimum) or dilate (np.maximum) ``steps`` times, alternating a cross and a square."""
    h, w = x.shape
    p = np.zeros((h + 2, w + 2), dtype=x.dtype)  # outside the image is background
    for step in range(steps):
        p[1:-1, 1:-1] = x
        around = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
        if diagonals and step % 2:
            around += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
        x = x.copy()
        for dy, dx in around[1:]:  # pairwise: op.reduce of a list would stack the shifted copies first
            op(x, p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], out=x)
    return x
