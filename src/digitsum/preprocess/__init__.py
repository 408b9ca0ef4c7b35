"""People's images -> MNIST-style 28x28 digits, made the way MNIST itself was made.

``open_image`` (decode.py) reads a path, bytes, a PIL image or a numpy array, refusing absurd
sizes before any pixel is decoded. ``to_mnist`` (digit.py) turns any image into light ink on a
black background (ink.py: alpha flattened, dark-on-light inverted, uneven lighting removed),
crops the ink to its bounding box, brings very thick or thin strokes to MNIST's width
(strokes.py), scales it (Lanczos, resample.py) to fit 20x20 keeping its aspect ratio and places it in 28x28 with its
centre of mass at pixel (14, 14), where MNIST's is. A 28x28 greyscale image of light ink on
black is taken as already MNIST-style and used as is.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ImageError
from .decode import MAX_PIXELS, open_image
from .digit import to_mnist

__all__ = ["MAX_PIXELS", "ImageError", "load_digit", "open_image", "to_mnist"]


def load_digit(source) -> np.ndarray:
    """``to_mnist(open_image(source))``, naming a file source in its errors: uint8 (28, 28)."""
    name = f"image {source}" if isinstance(source, (str, os.PathLike)) else "image"
    return to_mnist(open_image(source), name)
