"""Where the ink is: any decoded image -> light ink on a black background, levelled to 0-1.

Alpha is flattened, dark ink on a light background is inverted, uneven lighting (a phone
photo's shadow or vignette) is removed by subtracting a smooth background surface fitted
to the image's tiles, and the contrast is levelled so that paper texture reads as 0 and
the core of a stroke as 1.
"""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, ImageOps

MIN_CONTRAST = 40  # ink must differ from the background by this much (0-255) to count
INK_FLOOR, INK_FULL = 0.2, 0.8  # of the peak contrast: below is background, above is full ink
WORK_SIDE = 1024  # larger images are box-reduced to about this before the work starts
GRID = 8  # tiles per side for the background surface


def grey_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
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
    grey = np.asarray(rgba.convert("L"), dtype=np.float32)  # Pillow's RGBA -> L ignores alpha
    if not has_alpha:
        return grey, None
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    return grey, (None if alpha.min() == 1.0 else alpha)


def flatten(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite onto white, or onto black when the opaque part is a light minority (light ink)."""
    if alpha is None:
        return grey
    opaque = alpha > 0.5
    light_ink = opaque.mean() < 0.5 and opaque.any() and np.median(grey[opaque]) > 127
    background = 0.0 if light_ink else 255.0
    return alpha * grey + (1 - alpha) * background


def border(x: np.ndarray) -> np.ndarray:
    """The pixels of a frame about 2% of the image wide (at least one pixel)."""
    k = max(1, round(0.02 * min(x.shape)))
    return np.concatenate([x[:k].ravel(), x[-k:].ravel(), x[:, :k].ravel(), x[:, -k:].ravel()])


def background_surface(x: np.ndarray) -> np.ndarray:
    """The background level under light ink (H, W): a quadratic surface fitted to the tiles' dark levels.

    Each tile's 10th percentile is its background level unless ink fills it; tiles far
    above the fit (full of ink) are dropped and the fit repeated.
    """
    h, w = x.shape
    g = max(1, min(GRID, min(h, w) // 4))
    th, tw = h // g, w // g  # tile size; the last few rows and columns are left out of the levels
    tiles = x[: g * th, : g * tw].reshape(g, th, g, tw).transpose(0, 2, 1, 3).reshape(g * g, th * tw)
    levels = np.percentile(tiles, 10, axis=1)  # (g*g,)
    ty = np.repeat((np.arange(g) + 0.5) * th / h - 0.5, g)  # tile centres, -0.5..0.5
    tx = np.tile((np.arange(g) + 0.5) * tw / w - 0.5, g)
    terms = np.stack([np.ones_like(ty), ty, tx, ty * ty, ty * tx, tx * tx], 1)  # (g*g, 6)
    keep = np.ones(len(levels), dtype=bool)
    for _ in range(3):
        if keep.sum() < 12:  # too few tiles for a surface: a flat background
            coef = np.array([np.median(levels[keep]), 0, 0, 0, 0, 0])
            break
        coef = np.linalg.lstsq(terms[keep], levels[keep], rcond=None)[0]
        residual = levels - terms @ coef
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = residual < max(3 * spread, MIN_CONTRAST / 4)
    y = (np.arange(h) + 0.5)[:, None] / h - 0.5  # (H, 1)
    xx = (np.arange(w) + 0.5)[None, :] / w - 0.5  # (1, W)
    return coef[0] + coef[1] * y + coef[2] * xx + coef[3] * y * y + coef[4] * y * xx + coef[5] * xx * xx


def find_ink(image: Image.Image) -> np.ndarray:
    """Ink (H, W) float32 0-1 on a 0 background, all zero when there is none."""
    try:  # a phone photo's rotation; exif_transpose copies even an unrotated image, so ask first
        image.load()  # a PNG may keep its EXIF after the pixels
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block loses only its rotation
        pass
    factor = max(image.size) // WORK_SIDE
    if factor > 1:
        if image.mode in ("1", "P", "PA") or image.mode.startswith("I;16"):  # modes reduce() refuses
            image = image.convert("I" if image.mode.startswith("I") else "RGBA" if "A" in image.mode or
                                  "transparency" in image.info else "L" if image.mode == "1" else "RGB")
        image = image.reduce(factor)  # box average: fast, and the digit ends up 20 pixels tall anyway
    x = flatten(*grey_alpha(image))  # (H, W) 0-255
    background = float(np.median(border(x)))
    if background - x.min() > x.max() - background:  # the ink is darker than the background: invert
        x = 255.0 - x
    contrast = np.clip(x - background_surface(x), 0, None)  # (H, W)
    peak = float(contrast.max())
    if peak < MIN_CONTRAST:
        return np.zeros_like(contrast, dtype=np.float32)
    return np.clip((contrast / peak - INK_FLOOR) / (INK_FULL - INK_FLOOR), 0, 1).astype(np.float32)
