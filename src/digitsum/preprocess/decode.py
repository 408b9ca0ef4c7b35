"""Decoding: a path, bytes, a PIL image or a numpy array -> a decoded PIL image, or one clear ImageError.

Absurd sizes are refused from the header, before any pixel is decoded. Whatever a decoder raises
on bytes it cannot make sense of (each of Pillow's formats has its own exceptions) is reported
as an ImageError naming the file: an image from a user is untrusted input, never a bug.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding
TOO_BIG = f"more than the {MAX_PIXELS // 1_000_000} megapixels digitsum accepts: crop or shrink it"
FORMATS = "PNG, JPEG, BMP, WebP, GIF, TIFF..."
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature, then the IHDR chunk's length and type


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


def declared_pixels(data: bytes) -> int | None:
    """Width x height as an image file's header declares it, read without decoding any pixel; None for bytes
    Pillow does not take for an image (``open_image`` then says what is wrong with them)."""
    if data[:16] == PNG_HEAD and len(data) >= 24:  # a PNG's first chunk, IHDR: its width and height, read here
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")  # (a tenth of Image.open)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - not an image, or a header a format's plugin rejects: open_image's to report
        return None
    return width * height


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
        raise ImageError(f"{what} is not an image digitsum can read ({FORMATS})") from None
    except OSError as error:
        raise ImageError(f"cannot read {what}: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 - a malformed header, in whatever way the format's plugin says so
        raise ImageError(f"{what} is not an image digitsum can read ({type(error).__name__}: {error})") from None
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
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data, in whatever way the decoder says so
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
        if not np.isfinite(array).all():
            raise ImageError("an image array holds values that are not numbers (NaN or infinity)")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ImageError(f"a float image array must hold values from 0 to 1 (or 0 to 255), got {low:g} to {high:g}")
        array = np.round(array * (255.0 if high <= 1 else 1.0)).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 65535:
            raise ImageError(f"an integer image array must hold values from 0 to 255 (or 0 to 65535), "
                             f"got {low} to {high}")
        array = (np.round(array / 257.0) if high > 255 else array).astype(np.uint8)
    else:
        raise ImageError(f"an image array must be uint8, uint16, integer, bool or float, got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))
