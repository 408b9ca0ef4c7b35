"""A decoded image of any mode -> one greyscale plane (H, W) float32 0-255, alpha flattened.

Large images are first box-reduced to about ``WORK_SIDE`` pixels a side (the digit ends up 20
pixels tall anyway), and a phone photo's EXIF rotation is applied.
"""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, ImageOps

from ..errors import ImageError

WORK_SIDE = 1024  # larger images are box-reduced to about this before the work starts
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (a phone photo); a broken EXIF block loses only that."""
    try:  # exif_transpose copies even an unrotated image, so ask first
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - whatever a malformed EXIF block raises, the pixels are still good
        pass
    return image


def reduced(image: Image.Image) -> Image.Image:
    """The image box-reduced to about WORK_SIDE pixels a side (unchanged when smaller)."""
    factor = max(image.size) // WORK_SIDE
    if factor <= 1:
        return image
    if image.mode in ("1", "P", "PA") or image.mode.startswith("I;16"):  # modes reduce() refuses
        alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("I" if image.mode.startswith("I") else "RGBA" if alpha else
                              "L" if image.mode == "1" else "RGB")
    return image.reduce(factor)


def grey_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Luminance (H, W) float32 0-255 and alpha (H, W) float32 0-1, or None when fully opaque."""
    if image.mode == "F":  # floats: 0-1, or 0-255 when larger
        grey = np.asarray(image, dtype=np.float32)
        if not np.isfinite(grey).all():
            raise ImageError("image holds pixel values that are not numbers (NaN or infinity)")
        return np.clip(grey * (255.0 if grey.max() <= 1 else 1.0), 0, 255), None
    if image.mode.startswith("I"):  # 16- or 32-bit integers: 0-65535 when any value exceeds 255
        grey = np.asarray(image.convert("I") if image.mode != "I" else image, dtype=np.float32)
        return np.clip(grey / (257.0 if grey.max() > 255 else 1.0), 0, 255), None
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.float32), None
    has_alpha = image.mode in ALPHA_MODES or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    try:  # convert() to the image's own mode would only copy it
        rgba = image if image.mode == target else image.convert(target)
    except (ValueError, OSError) as error:  # modes Pillow cannot turn into RGB, such as LAB
        raise ImageError(f"image mode {image.mode} cannot be read ({error}): save it as RGB or greyscale") from None
    grey = np.asarray(rgba.convert("L"), dtype=np.float32)  # Pillow's RGBA -> L ignores alpha
    if not has_alpha:
        return grey, None
    band = rgba.getchannel("A")
    if band.getextrema()[0] == 255:  # fully opaque, as the page's drawings are: no float plane to build
        return grey, None
    return grey, np.asarray(band, dtype=np.float32) / 255.0


def flatten(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite onto white, or onto black when the opaque part is a light minority (light ink)."""
    if alpha is None:
        return grey
    opaque = alpha > 0.5
    light_ink = opaque.mean() < 0.5 and opaque.any() and np.median(grey[opaque]) > 127
    background = 0.0 if light_ink else 255.0
    return alpha * grey + (1 - alpha) * background


def greyscale(image: Image.Image) -> np.ndarray:
    """Any decoded image -> (H, W) float32 0-255: upright, reduced when large, alpha flattened."""
    return flatten(*grey_alpha(reduced(upright(image))))
