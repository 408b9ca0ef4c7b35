"""People's images -> MNIST-style 28x28 digits, made the way MNIST itself was made.

``open_image`` reads a path, bytes, a PIL image or a numpy array, refusing absurd sizes
before any pixel is decoded. ``to_mnist`` turns any image into light ink on a black
background: alpha flattened, dark-on-light inverted, the ink cropped to its bounding box,
scaled to fit 20x20 keeping its aspect ratio and placed in 28x28 with its centre of mass
at the centre (MNIST puts it at pixel (14, 14)).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding
MIN_CONTRAST = 40  # ink must differ from the background by this much (0-255) to count
INK_FLOOR, INK_FULL = 0.2, 0.8  # of the peak contrast: below is background, above is full ink
WORK_SIDE = 1024  # larger images are box-reduced to about this before the work starts
BOX, SIDE, CENTRE = 20, 28, 14  # MNIST's box, image side and centre-of-mass position
RESAMPLE = Image.Resampling.LANCZOS
# Stroke widths in pixels with the digit fitted to 4 x 20 (MNIST's 5th, 50th and 95th percentiles: 6.6, 10, 16).
STROKE_SCALE, STROKE_MIN, STROKE_TARGET, STROKE_MAX = 4, 6, 12, 14
NO_INK = "image has no ink: it is blank or too faint (draw the digit darker or thicker)"


class ImageError(ValueError):
    """An image that cannot be read or holds no digit: the message says what and why."""


def open_image(source) -> Image.Image:
    """A decoded PIL image from a path, bytes, a PIL image or a numpy array (H, W) / (H, W, 3|4).

    The declared size is checked against ``MAX_PIXELS`` before pixel data is decoded.
    """
    if isinstance(source, Image.Image):
        _check_size(source.size, "image")
        return source
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
        raise ImageError(f"{what} is {w}x{h} pixels, more than the {MAX_PIXELS // 1_000_000} megapixels "
                         "digitsum accepts: crop or shrink it")


def _decode(file, what: str, nbytes: int) -> Image.Image:
    if nbytes == 0:
        raise ImageError(f"{what} is empty (0 bytes)")
    try:
        image = Image.open(file)  # reads the header only
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageError(f"{what} is not an image digitsum can read (PNG, JPEG, BMP, WebP, GIF, TIFF...)") from None
    except OSError as error:
        raise ImageError(f"cannot read {what}: {error.strerror or error}") from None
    _check_size(image.size, what)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
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


def _grey_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Luminance (H, W) float32 0-255 and alpha (H, W) float32 0-1, or None when fully opaque."""
    if image.mode == "F":  # floats: 0-1, or 0-255 when larger
        grey = np.asarray(image, dtype=np.float32)
        return np.clip(grey * (255.0 if grey.max() <= 1 else 1.0), 0, 255), None
    if image.mode.startswith("I"):  # 16- or 32-bit integers: 0-65535 when any value exceeds 255
        grey = np.asarray(image, dtype=np.float32)
        return np.clip(grey / (257.0 if grey.max() > 255 else 1.0), 0, 255), None
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.float32), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    rgba = image.convert("RGBA") if has_alpha else image.convert("RGB")
    grey = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32)
    if not has_alpha:
        return grey, None
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    return grey, (None if alpha.min() == 1.0 else alpha)


def _flatten(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite onto white, or onto black when the opaque part is a light minority (light ink)."""
    if alpha is None:
        return grey
    opaque = alpha > 0.5
    light_ink = opaque.mean() < 0.5 and opaque.any() and np.median(grey[opaque]) > 127
    background = 0.0 if light_ink else 255.0
    return alpha * grey + (1 - alpha) * background


def _border(x: np.ndarray) -> np.ndarray:
    """The pixels of a frame about 2% of the image wide (at least one pixel)."""
    k = max(1, round(0.02 * min(x.shape)))
    return np.concatenate([x[:k].ravel(), x[-k:].ravel(), x[:, :k].ravel(), x[:, -k:].ravel()])


def ink(image: Image.Image) -> np.ndarray:
    """Ink (H, W) float32 0-1 on a 0 background: flattened, oriented light-on-dark, levelled."""
    image = ImageOps.exif_transpose(image)
    factor = max(image.size) // WORK_SIDE
    if factor > 1:
        image = image.reduce(factor)  # box average: fast, and the digit ends up 20 pixels tall anyway
    x = _flatten(*_grey_alpha(image))  # (H, W) 0-255
    background = float(np.median(_border(x)))
    if background > 127:  # dark ink on a light background: MNIST is light on dark
        x, background = 255.0 - x, 255.0 - background
    contrast = np.clip(x - background, 0, None)
    peak = float(contrast.max())
    if peak < MIN_CONTRAST:
        raise ImageError(NO_INK)
    return np.clip((contrast / peak - INK_FLOOR) / (INK_FULL - INK_FLOOR), 0, 1).astype(np.float32)


def is_mnist_style(image: Image.Image) -> bool:
    """A 28x28 greyscale image of light ink on a black background: used as is."""
    if image.size != (SIDE, SIDE) or image.mode not in ("L", "P", "RGB") or "transparency" in image.info:
        return False
    x = np.asarray(image.convert("RGB"), dtype=np.int16)  # (28, 28, 3)
    grey = (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
    return bool(grey and np.median(_border(x[..., 0])) == 0 and x.max() > MIN_CONTRAST)


def to_mnist(image: Image.Image) -> np.ndarray:
    """Any image -> uint8 (28, 28), light ink on black, cropped, fitted to 20x20 and centred by mass."""
    if is_mnist_style(image):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    x = _fit(_crop(ink(image)), STROKE_SCALE * BOX)  # (<=80, <=80) 0-1
    x = _fit(_crop(even_strokes(x)), BOX)  # (<=20, <=20), the longer side 20
    return _centre_by_mass(x)


def _crop(x: np.ndarray) -> np.ndarray:
    """The bounding box of the ink (> 0) of a float image (H, W)."""
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    if not len(rows):
        raise ImageError(NO_INK)
    return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(x: np.ndarray, box: int) -> np.ndarray:
    """Resize a float image (H, W) so that its longer side is ``box``, keeping its aspect ratio."""
    h, w = x.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.clip(np.asarray(Image.fromarray(x, mode="F").resize(size, RESAMPLE), dtype=np.float32), 0, 1)


def stroke_width(x: np.ndarray) -> float:
    """Mean stroke width of float ink (H, W), in pixels: twice the ink's area over its boundary's."""
    ink = x > 0.5 * x.max()
    inner = _morph(ink, 1, np.minimum, diagonals=False)
    return 2 * float(ink.sum()) / max(float((ink & ~inner).sum()), 1.0)


def even_strokes(x: np.ndarray) -> np.ndarray:
    """Thin strokes thicker than MNIST's, thicken thinner ones (ink (H, W) with the longer side 80)."""
    width = stroke_width(x)
    if width > STROKE_MAX:
        return _morph(x, round((width - STROKE_TARGET) / 2), np.minimum)
    if width < STROKE_MIN:
        steps = round((STROKE_TARGET - width) / 2)
        return _morph(np.pad(x, steps), steps, np.maximum)
    return x


def _morph(x: np.ndarray, steps: int, op, diagonals: bool = True) -> np.ndarray:
    """Erode (op=np.minimum) or dilate (np.maximum) ``steps`` times, alternating a cross and a square."""
    for step in range(steps):
        p = np.pad(x, 1)  # outside the image is background
        h, w = x.shape
        around = [p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
        if diagonals and step % 2:
            around += [p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 1) for dx in (-1, 1)]
        x = op.reduce(around)
    return x


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place a float (h, w) digit in 28x28 so that its centre of mass lands on pixel (14, 14)."""
    h, w = digit.shape
    mass = float(digit.sum())
    if mass <= 0:
        raise ImageError(NO_INK)
    cy = float((digit.sum(1) * np.arange(h)).sum()) / mass
    cx = float((digit.sum(0) * np.arange(w)).sum()) / mass
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - w))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return np.round(out * 255).astype(np.uint8)
