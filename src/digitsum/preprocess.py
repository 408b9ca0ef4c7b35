"""People's images -> MNIST-style 28x28 digits, made the way MNIST itself was made.

``open_image`` reads a path, bytes, a PIL image or a numpy array, refusing absurd sizes
before any pixel is decoded. ``to_mnist`` turns any image into light ink on a black
background (``ink``: alpha flattened, dark-on-light inverted, uneven lighting removed),
crops the ink to its bounding box, brings very thick or thin strokes to MNIST's width
(``strokes``), scales it to fit 20x20 keeping its aspect ratio and places it in 28x28
with its centre of mass at pixel (14, 14), where MNIST's is. A 28x28 greyscale image of
light ink on black is taken as already MNIST-style and used as is.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import strokes
from .ink import MIN_CONTRAST, border, find_ink

MAX_PIXELS = 40_000_000  # larger images are refused before decoding
BOX, SIDE, CENTRE = 20, 28, 14  # MNIST's box, image side and centre-of-mass position
RESAMPLE = Image.Resampling.LANCZOS
TOO_BIG = f"more than the {MAX_PIXELS // 1_000_000} megapixels digitsum accepts: crop or shrink it"
NO_INK = "has no ink: it is blank or too faint (draw the digit darker or thicker)"


class ImageError(ValueError):
    """An image that cannot be read or holds no digit: the message says what and why."""


def open_image(source) -> Image.Image:
    """A decoded PIL image from a path, bytes, a PIL image or a numpy array (H, W) / (H, W, 3|4).

    The declared size is checked against ``MAX_PIXELS`` before pixel data is decoded.
    """
    if isinstance(source, Image.Image):
        _check_size(source.size, "image")
        return _load(source, "image")
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), "image bytes", len(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError(f"image {path} not found") from None
        except OSError as error:
            raise ImageError(f"cannot read image {path}: {error.strerror}") from None
        if path.is_dir():
            raise ImageError(f"image {path} is a folder, not an image file")
        return _decode(path, f"image {path}", size)
    raise ImageError(f"cannot read an image from a {type(source).__name__}: give a path, bytes, "
                     "a PIL image or a numpy array")


def _check_size(size: tuple[int, int], what: str) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{what} is empty ({w}x{h} pixels)")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{what} is {w}x{h} pixels, {TOO_BIG}")


def _decode(file, what: str, nbytes: int) -> Image.Image:
    if nbytes == 0:
        raise ImageError(f"{what} is empty (0 bytes)")
    try:
        image = Image.open(file)  # reads the header only
    except Image.DecompressionBombError as error:  # PIL's own cap, far above ours
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageError(f"{what} is {pixels.group(1) if pixels else 'too many'} pixels, {TOO_BIG}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image digitsum can read (PNG, JPEG, BMP, WebP, GIF, TIFF...)") from None
    except OSError as error:
        raise ImageError(f"cannot read {what}: {error.strerror or error}") from None
    try:
        _check_size(image.size, what)
    except ImageError:
        image.close()
        raise
    return _load(image, what)


def _load(image: Image.Image, what: str) -> Image.Image:
    """Decode the pixel data now, so that a truncated or corrupt file is reported here."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        image.close()
        raise ImageError(f"{what} is truncated or corrupt ({error})") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    _check_size((array.shape[1], array.shape[0]), "image array")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("a float image array must hold values from 0 to 1")
        array = np.round(array * 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ImageError("an integer image array must hold values from 0 to 255")
        array = array.astype(np.uint8)
    else:
        raise ImageError(f"an image array must be uint8, integer, bool or float, got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def is_mnist_style(image: Image.Image) -> bool:
    """A 28x28 opaque greyscale image of light ink on a black background: used as is."""
    if image.size != (SIDE, SIDE) or image.mode not in ("L", "LA", "P", "RGB", "RGBA"):
        return False
    x = np.asarray(image.convert("RGBA"), dtype=np.int16)  # (28, 28, 4)
    grey = (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all() and (x[..., 3] == 255).all()
    return bool(grey and np.median(border(x[..., 0])) == 0 and x[..., 0].max() > MIN_CONTRAST)


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """Any image -> uint8 (28, 28), light ink on black, cropped, fitted to 20x20 and centred by mass.

    ``name`` (such as ``image my.png``) begins the message of the ImageError for an image without ink.
    """
    if is_mnist_style(image):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    x = find_ink(image)  # (H, W) 0-1
    if not x.any():
        raise ImageError(f"{name} {NO_INK}")
    x = _fit(_crop(x), strokes.SCALE * BOX)  # (<=80, <=80), the longer side 80
    x = _fit(_crop(strokes.even_strokes(x)), BOX)  # (<=20, <=20), the longer side 20
    return _centre_by_mass(x / max(float(x.max()), 1e-6))  # the ink's core at full intensity, as in MNIST


def load_digit(source) -> np.ndarray:
    """``to_mnist(open_image(source))``, naming a file source in its errors: uint8 (28, 28)."""
    name = f"image {source}" if isinstance(source, (str, os.PathLike)) else "image"
    return to_mnist(open_image(source), name)


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
    return np.clip(np.asarray(Image.fromarray(x).resize(size, RESAMPLE), dtype=np.float32), 0, 1)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place a float (h, w) digit in 28x28 so that its centre of mass lands on pixel (14, 14)."""
    h, w = digit.shape
    mass = float(digit.sum())
    if mass <= 0:
        raise ImageError(f"image {NO_INK}")
    cy = float((digit.sum(1) * np.arange(h)).sum()) / mass
    cx = float((digit.sum(0) * np.arange(w)).sum()) / mass
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - w))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return np.round(out * 255).astype(np.uint8)
