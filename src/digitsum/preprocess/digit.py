"""An image's ink -> an MNIST-style digit: cropped, strokes evened, fitted to 20x20, centred by mass in 28x28."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..config import BOX, CENTRE, SIDE
from ..errors import ImageError
from .ink import MIN_CONTRAST, border, find_ink
from .pixels import greyscale
from .resample import lanczos
from .strokes import SCALE, even_strokes

CENTRE_TOLERANCE = 0.75  # pixels: how far from CENTRE an image's centre of mass may be to count as MNIST-style
NO_INK = "has no ink: it is blank or too faint (draw the digit darker or thicker)"


def is_mnist_style(image: Image.Image) -> bool:
    """Whether an image already is what to_mnist makes, and is used as is: 28x28, opaque, grey, light
    ink on a black background, the ink within a 20x20 box and its centre of mass within
    ``CENTRE_TOLERANCE`` of pixel (14, 14) on both axes (every MNIST image is: 13.48-14.50). A 28x28 drawing
    that is bigger or off centre goes through the same steps as any other image."""
    if image.size != (SIDE, SIDE) or image.mode not in ("L", "LA", "P", "RGB", "RGBA"):
        return False
    if image.mode == "L":  # grey and opaque: MNIST's own PNGs, and what most clients send
        ink = np.asarray(image, dtype=np.int64)  # (28, 28)
    else:
        x = np.asarray(image.convert("RGBA"), dtype=np.int64)  # (28, 28, 4)
        if not ((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all() and (x[..., 3] == 255).all()):
            return False
        ink = x[..., 0]
    edge = border(ink)
    if not (2 * np.count_nonzero(edge) < edge.size and ink.max() > MIN_CONTRAST):  # the border's median is 0
        return False
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows[-1] - rows[0] >= BOX or cols[-1] - cols[0] >= BOX:
        return False
    mass = int(ink.sum())  # integer sums: exact, as the float ones were
    cy, cx = int(ink.sum(1) @ np.arange(SIDE)) / mass, int(ink.sum(0) @ np.arange(SIDE)) / mass
    return bool(abs(cy - CENTRE) <= CENTRE_TOLERANCE and abs(cx - CENTRE) <= CENTRE_TOLERANCE)


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """Any image -> uint8 (28, 28), light ink on black, cropped, fitted to 20x20 and centred by mass.

    ``name`` (such as ``image my.png``) begins the message of the ImageError for an image without ink.
    """
    if is_mnist_style(image):
        return np.array(image if image.mode == "L" else image.convert("L"), dtype=np.uint8)  # a copy of its own
    x = find_ink(greyscale(image))  # (h, w) 0-1: the ink's box
    if not x.any():
        raise ImageError(f"{name} {NO_INK}")
    x = _fit(x, SCALE * BOX)  # (<=80, <=80), the longer side 80
    x = _fit(_crop(even_strokes(x)), BOX)  # (<=20, <=20), the longer side 20
    return _centre_by_mass(x / max(float(x.max()), 1e-6))  # the ink's core at full intensity, as in MNIST


def _crop(x: np.ndarray) -> np.ndarray:
    """The bounding box of the ink (> 0) of a float image (H, W)."""
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    if not len(rows):
        raise ImageError(f"image {NO_INK}")
    return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(x: np.ndarray, box: int) -> np.ndarray:
    """Resize a float image (H, W) so that its longer side is ``box``, keeping its aspect ratio."""
    h, w = x.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.clip(lanczos(x, size), 0, 1)  # Pillow's LANCZOS resize, its weights kept (resample.py)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place a float (h, w) digit in 28x28 so that its centre of mass lands on pixel (14, 14)."""
    h, w = digit.shape
    mass = float(digit.sum())
    if mass <= 0:
        raise ImageError(f"image {NO_INK}")
    cy = float((digit.sum(1) * np.arange(h)).sum()) / mass
    cx = float((digit.sum(0) * np.arange(w)).sum()) / mass
    top = min(max(round(CENTRE - cy), 0), SIDE - h)  # Python's min and max: np.clip costs more on scalars
    left = min(max(round(CENTRE - cx), 0), SIDE - w)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return np.round(out * 255).astype(np.uint8)
