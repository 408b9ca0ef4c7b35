"""Where the ink is: a greyscale image -> light ink on a black background, levelled to 0-1.

Whether a digit has a margin or fills its frame, the same steps find its ink:

1. The background is the level of most of the border; dark ink on a light background is inverted.
   Where ink covers much of the border (a 0 stretched to fill its box, a tight crop), the border
   cannot tell; then four corners that agree do: a digit's strokes rarely fill them (``ink_is_dark``).
2. Lighting is corrected only where the image shows lighting to correct: when the background's
   level (below Otsu's threshold between background and ink) differs by more than ``FLAT_SPREAD``
   from one stretch of the border to another and the image is a photo's size, a smooth surface
   fitted to the dark levels of the image's tiles is subtracted. Tiles full of ink are left out
   of the fit, the surface is used only when most tiles are background, and it stays below the
   ink's level, so it never removes ink. Otherwise the background is one level: the median of the
   pixels below the threshold.
3. The contrast above the background is levelled: below ``INK_FLOOR`` of the peak is background
   (paper texture, JPEG noise), above ``INK_FULL`` full ink.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MIN_CONTRAST = 40  # ink must differ from the background by this much (0-255) to count
INK_FLOOR, INK_FULL = 0.2, 0.8  # of the peak contrast: below is background, above is full ink
FLAT_SPREAD = 24  # a background level that varies less than this along the border has no lighting to correct
LIGHTING_SIDE = 64  # images smaller than this a side (scans of one digit) get no lighting correction
GRID = 8  # tiles per side for the background surface
SPLIT_BORDER = (0.25, 0.75)  # a border with this share of light pixels does not tell ink from background
CORNER = 0.1  # corner squares this share of the shorter side (at least one pixel) decide a split border


LEVELS = np.arange(256, dtype=np.float64)
LEVELS.setflags(write=False)


def border(x: np.ndarray) -> np.ndarray:
    """The pixels of a frame about 2% of the image wide (at least one pixel)."""
    k = max(1, round(0.02 * min(x.shape)))
    return np.concatenate([x[:k].ravel(), x[-k:].ravel(), x[:, :k].ravel(), x[:, -k:].ravel()])


def otsu(histogram: np.ndarray) -> int:
    """Otsu's threshold of a 256-bin histogram: the level t that best splits the pixels into < t and >= t."""
    weight = np.cumsum(histogram, dtype=np.float64)  # pixels below each t + 1
    mass = np.cumsum(histogram * LEVELS)
    total, total_mass = weight[-1], mass[-1]
    below, above = weight[:-1], total - weight[:-1]
    product = below * above  # 0 where a class is empty: no split there
    between = np.divide((mass[:-1] * total - total_mass * below) ** 2, product, out=np.full(255, -1.0),
                        where=product > 0)
    return int(np.argmax(between)) + 1  # classes: < t and >= t


def median(x: np.ndarray) -> float:
    """``np.median`` of an array's finite values, the same number without its overhead, which cost more than
    the rest of the polarity test on a page drawing's border."""
    values = x.ravel()
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    return float(np.partition(values, (half - 1, half))[half - 1 : half + 1].mean())  # as np.median averages


def quantile(histogram: np.ndarray, q: float) -> int:
    """The level below which a share ``q`` of a histogram's pixels lie."""
    counts = np.cumsum(histogram)
    return int(np.searchsorted(counts, q * counts[-1], side="left"))


def background_surface(x: np.ndarray, ink_level: float) -> np.ndarray | None:
    """The background level (H, W) under light ink on a dark background: a quadratic surface fitted to
    the tiles' 10th percentiles, tiles far above the fit (full of ink) left out; None when fewer than
    half the tiles remain (the ink fills the image). It stays MIN_CONTRAST below ``ink_level``."""
    h, w = x.shape
    g = GRID
    th, tw = h // g, w // g  # tile size; the last few rows and columns are left out of the levels
    tiles = x[: g * th, : g * tw].reshape(g, th, g, tw).transpose(0, 2, 1, 3).reshape(g * g, th * tw)
    k = (th * tw) // 10
    levels = np.partition(tiles, k, axis=1)[:, k]  # (g*g,) each tile's background under its ink
    ty = np.repeat((np.arange(g) + 0.5) * th / h - 0.5, g)  # tile centres, -0.5..0.5
    tx = np.tile((np.arange(g) + 0.5) * tw / w - 0.5, g)
    terms = np.stack([np.ones_like(ty), ty, tx, ty * ty, ty * tx, tx * tx], 1)  # (g*g, 6)
    keep = np.ones(len(levels), dtype=bool)
    for _ in range(3):
        if keep.sum() < g * g // 2:
            return None
        coef = np.linalg.lstsq(terms[keep], levels[keep], rcond=None)[0]
        residual = levels - terms @ coef
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep &= residual < max(3 * spread, MIN_CONTRAST / 4)
    y = (np.arange(h, dtype=np.float32) + 0.5)[:, None] / h - 0.5  # (H, 1)
    xx = (np.arange(w, dtype=np.float32) + 0.5)[None, :] / w - 0.5  # (1, W)
    surface = coef[0] + coef[1] * y + coef[2] * xx + coef[3] * y * y + coef[4] * y * xx + coef[5] * xx * xx
    return np.minimum(surface, ink_level - MIN_CONTRAST).astype(np.float32)


def uneven(x: np.ndarray, threshold: int) -> bool:
    """Whether the background's level differs by more than FLAT_SPREAD from one part of the border to another.

    The border is cut into eight stretches (each side in two); a stretch that is mostly background
    (below ``threshold``) gives the median of its background pixels. Ink touching the border, with
    its soft edges, does not count: only the levels of whole stretches of background are compared.
    """
    k = max(1, round(0.02 * min(x.shape)))
    h, w = x.shape
    sides = (x[:k], x[-k:], x[:, :k].T, x[:, -k:].T)
    stretches = [part for side in sides for part in (side[:, : side.shape[1] // 2], side[:, side.shape[1] // 2 :])]
    levels = []
    for stretch in stretches:
        paper = stretch[stretch < threshold]
        if 2 * len(paper) >= stretch.size:
            levels.append(float(np.median(paper)))
    return len(levels) >= 4 and max(levels) - min(levels) > FLAT_SPREAD


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """The mean of each pixel's (2 radius + 1)^2 neighbourhood (clipped at the edges), by integral image."""
    h, w = x.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = x.cumsum(0).cumsum(1)
    y0, y1 = np.clip(np.arange(h) - radius, 0, h), np.clip(np.arange(h) + radius + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - radius, 0, w), np.clip(np.arange(w) + radius + 1, 0, w)
    total = integral[y1][:, x1] - integral[y0][:, x1] - integral[y1][:, x0] + integral[y0][:, x0]
    return total / ((y1 - y0)[:, None] * (x1 - x0)[None, :])


def fills_frame(x: np.ndarray, side: int = 64) -> bool:
    """Whether the ink (light on dark) reaches the border: strokes that stand out from their
    surroundings, found at ``side`` pixels a side where lighting varies too slowly to stand out."""
    scale = side / max(x.shape)
    small = np.asarray(Image.fromarray(x).resize((max(1, round(x.shape[1] * scale)), max(1, round(x.shape[0] * scale))),
                                                 Image.Resampling.BOX), dtype=np.float64)
    strokes = small - box_mean(small, max(2, side // 8)) > MIN_CONTRAST
    return bool(border(strokes).any())


def histogram_of(x: np.ndarray) -> np.ndarray:
    """The 256-bin histogram of greyscale (H, W) 0-255, each value truncated to its level."""
    return np.bincount(np.clip(x, 0, 255).astype(np.uint8).ravel(), minlength=256)


def ink_is_dark(x: np.ndarray, edge: np.ndarray, threshold: int | None = None) -> bool:
    """Whether the ink of greyscale (H, W) is darker than its background; ``edge`` is ``border(x)``,
    ``threshold`` Otsu's threshold of ``histogram_of(x)`` when the caller has it.

    The background is the level of most of the border. When the border is split between the two sides
    of Otsu's threshold (between SPLIT_BORDER of it light), ink covers much of it: then, if all four
    corner squares hold mostly the same side, that side is the background. (A 7's bar fills two
    corners and a bold 9 three, so fewer than four decide nothing: tests/test_polarity.py.)
    """
    background, lowest, highest = median(edge), float(x.min()), float(x.max())
    dark_ink = background - lowest > highest - background  # the border's level is nearer the lightest
    if threshold is None:
        threshold = otsu(histogram_of(x))
    if not SPLIT_BORDER[0] <= np.count_nonzero(edge >= threshold) / edge.size <= SPLIT_BORDER[1]:
        return dark_ink
    k = max(1, round(CORNER * min(x.shape)))
    corners = (x[:k, :k], x[:k, -k:], x[-k:, :k], x[-k:, -k:])
    light_corners = sum(2 * int((c >= threshold).sum()) > c.size for c in corners)
    if light_corners in (0, 4):
        return light_corners == 4  # a light background: dark ink
    return dark_ink


def find_ink(x: np.ndarray) -> np.ndarray:
    """The ink of greyscale (H, W) 0-255 within its bounding box: float32 0-1, light on a 0 background;
    an empty array when there is none."""
    edge = border(x)
    lowest, highest = float(x.min()), float(x.max())
    histogram = histogram_of(x)
    threshold = otsu(histogram)
    if ink_is_dark(x, edge, threshold):
        x, edge, highest = 255.0 - x, 255.0 - edge, 255.0 - lowest
        histogram = histogram_of(x)
        threshold = otsu(histogram)
    present = np.flatnonzero(histogram)
    if present[-1] - present[0] < MIN_CONTRAST:
        return np.zeros((0, 0), dtype=np.float32)
    level = None
    if (min(x.shape) >= LIGHTING_SIDE and float(edge.max() - edge.min()) > FLAT_SPREAD and uneven(x, threshold)
            and not fills_frame(x)):
        level = background_surface(x, float(quantile(histogram, 0.999)))
    if level is None:  # one level: the median of the background's pixels
        below = histogram.copy()
        below[threshold:] = 0
        level = float(quantile(below, 0.5))
        peak = highest - level
        rows, cols = box(x > level + INK_FLOOR * peak)  # only the ink's box is levelled
        x = x[rows, cols]
    else:
        contrast = x - level
        peak = float(contrast.max())
        rows, cols = box(contrast > INK_FLOOR * peak)
        x, level = x[rows, cols], level[rows, cols]
    if peak < MIN_CONTRAST:
        return np.zeros((0, 0), dtype=np.float32)
    return np.clip((x - level) * (1 / ((INK_FULL - INK_FLOOR) * peak)) - INK_FLOOR / (INK_FULL - INK_FLOOR),
                   0, 1).astype(np.float32)


def box(mask: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of the bounding box of a non-empty boolean mask (H, W)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
