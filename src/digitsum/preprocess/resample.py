"""Lanczos resizing of a small float image, as Pillow's ``Image.resize(size, LANCZOS)`` does it for mode "F".

Pillow makes each output pixel a sum of input pixels weighted by a Lanczos kernel (a = 3, widened by
the scale when shrinking), one axis and then the other, the first pass kept in float32. The weights
of an axis depend only on its two sizes; here they are computed once for each pair of sizes and
kept, so each pass is one matrix product. Pillow's own call recomputes them every time, which made the
two resizes of a page drawing a large part of its preprocessing (benchmarks/serve_profile.md). The
products add in another order than Pillow's loop, so a float32 pixel may differ from Pillow's in its
last bits, rarely: tests/test_preprocess.py checks how rarely, and that no digit's 28x28 changes.
Larger images go to Pillow itself.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

SUPPORT = 3.0  # Lanczos-3
KEPT_SIDE = 96  # sizes up to this (a page drawing, a scan of one digit) use kept weights, at most 72 KB each


@lru_cache(maxsize=256)  # the last 256 pairs of sizes used: at most 19 MB
def weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64, read-only: the weight of each input pixel in each output pixel, as Pillow's
    precompute_coeffs makes them (its window, rounding and normalisation), laid out as a matrix."""
    matrix = _weights(in_size, out_size)
    matrix.setflags(write=False)
    return matrix


def _weights(in_size: int, out_size: int) -> np.ndarray:
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support, inverse = SUPPORT * filterscale, 1.0 / filterscale  # Pillow multiplies by the inverse
    centre = (np.arange(out_size) + 0.5) * scale  # (out,)
    low = np.maximum((centre - support + 0.5).astype(np.int64), 0)  # C's (int) truncates toward zero
    high = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    taps = low[:, None] + np.arange(int(np.ceil(support)) * 2 + 1)  # (out, ksize): the window of each output
    inside = taps < high[:, None]
    t = (taps - centre[:, None] + 0.5) * inverse
    w = np.where(inside & (t >= -SUPPORT) & (t < SUPPORT), np.sinc(t) * np.sinc(t / 3), 0.0)  # Lanczos-3
    total = w.sum(1, keepdims=True)
    w = np.divide(w, total, out=w, where=total != 0)
    matrix = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], taps.shape)
    matrix[rows[inside], taps[inside]] = w[inside]
    return matrix


def lanczos(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W) resized to ``size`` = (width, height), as Pillow's LANCZOS resize of mode "F"."""
    x = np.asarray(x, dtype=np.float32)  # Pillow's mode "F" holds float32
    h, w = x.shape
    width, height = size
    if max(h, w, width, height) > KEPT_SIDE:  # a photo's size: Pillow's own call, its weights a small part of it
        return np.asarray(Image.fromarray(x).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    if (width, height) == (w, h):
        return x.copy()
    vertical_first = h - height > 0 and h - height > 2 * (w - width)  # Pillow's order: when the height shrinks
    for axis in (0, 1) if vertical_first else (1, 0):  # more than twice as much as the width
        if axis == 1 and width != w:
            x = (x.astype(np.float64) @ weights(w, width).T).astype(np.float32)
        elif axis == 0 and height != h:
            x = (weights(h, height) @ x.astype(np.float64)).astype(np.float32)
    return x
