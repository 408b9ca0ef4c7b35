"""Synthetic non-digits to train "that is not a digit" on.

Each kind is a way of not being a digit that people draw:

* letters and symbols from Pillow's own scalable font (no system font is needed), thickened,
  rotated and sheared at random; those shaped like digits (O, I, l, S, Z, ...) are left out;
* scribbles (one to three smooth random strokes);
* MNIST training digits made into non-digits, in the writers' own strokes: two side by side, one
  mirrored (2 3 4 5 6 7 9: a mirrored 0, 1 or 8 is still a digit) or turned a quarter (1-7 and 9).

``BROAD_KINDS`` (``TrainConfig.negative_kinds = "broad"``, the default) adds kinds the classic ones never
showed the verdict: filled shapes and blobs (silhouettes), smooth random textures (photo-like content),
scribbles in very thin and very thick pens, and characters of made-up alphabets (pen strokes, bowls, hooks,
bars and dots, drawn twice as often as each other kind: other alphabets are what people draw most that is
no digit). (Fragments of digits were tried and left out: a window on an 8 or a 7 is often still an 8 or a 7.)

Every example goes through the same preprocessing as a user's image (``preprocess.to_mnist``), so
the network sees a non-digit exactly as it would see one drawn on the page. Everything is drawn
from a generator seeded by the caller: the same seed, the same set.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .errors import ImageError

# Letters and symbols that can pass for a digit are left out: O o D Q (0), I l i j J L T t r y ! | / \\ [ ] (1),
# Z z ? (2, 7), A (4), S s $ (5), G b (6), B & (8), g q a (9).
LETTERS = "CEFHKMNPRUVWXYcefhkmnpuvwx"
SYMBOLS = "#%*+=@~<>"
KINDS = ("letter", "symbol", "scribble", "pair", "mirrored", "turned")
BROAD_KINDS = (*KINDS, "shape", "texture", "thin", "thick", "character", "character")  # characters: twice
MIRRORED = (2, 3, 4, 5, 6, 7, 9)  # digits whose mirror image is no digit
TURNED = (1, 2, 3, 4, 5, 6, 7, 9)  # digits that a quarter turn makes into no digit
BANK = 6000  # non-digits drawn for a training run; each epoch picks from them, shifted anew
MIN_ELONGATION = 0.25  # a non-digit whose ink is more line-like than this (a straight stroke: a 1) is redrawn
CANVAS = 96  # pixels a side of the drawing canvas


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` pixels (a bitmap font, scaled later, where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def glyph(char: str, rng: np.random.Generator) -> Image.Image:
    """One character, light on black, thickened, rotated and sheared at random."""
    size = int(rng.integers(36, 60))
    image = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(image).text((CANVAS // 5, CANVAS // 10), char, font=font(size), fill=255)
    if rng.random() < 0.7:
        image = image.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5, 7]))))  # a marker's stroke
    shear = float(rng.uniform(-0.3, 0.3))
    image = image.transform(image.size, Image.Transform.AFFINE, (1, shear, -shear * CANVAS / 2, 0, 1, 0),
                            Image.Resampling.BILINEAR)
    return image.rotate(float(rng.uniform(-20, 20)), Image.Resampling.BILINEAR)


def elongation(image: Image.Image) -> float:
    """How far from a line the ink is: the spread of its pixels across their main axis over the spread along it
    (0 for a straight stroke, 1 for a round blob)."""
    ys, xs = np.nonzero(np.asarray(image) > 127)
    if len(ys) < 3:
        return 0.0
    spread = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))  # ascending
    return float(np.sqrt(max(spread[0], 0) / max(spread[1], 1e-9)))


def scribble(rng: np.random.Generator, widths: tuple[int, int] = (4, 12)) -> Image.Image:
    """One to three smooth random strokes (quadratic curves through random points), light on black, in a pen
    ``widths`` pixels wide (the upper bound excluded)."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(*widths))
    for _ in range(int(rng.integers(1, 4))):
        points = rng.uniform(8, CANVAS - 8, size=(int(rng.integers(3, 7)), 2))
        path = []
        for a, b, c in zip(points[:-2], points[1:-1], points[2:], strict=True):  # smooth through the midpoints
            start, end = (a + b) / 2, (b + c) / 2
            t = np.linspace(0, 1, 12)[:, None]
            path += [tuple(p) for p in (1 - t) ** 2 * start + 2 * (1 - t) * t * b + t ** 2 * end]
        draw.line(path or [tuple(points[0]), tuple(points[1])], fill=255, width=width, joint="curve")
    return image


def character(rng: np.random.Generator) -> Image.Image:
    """A character of a made-up alphabet, light on black: two to four pen strokes, each a straight segment,
    a polyline with one or two sharp turns, an arc or a hook, now and then a dot or a short bar across,
    in one pen 3-11 pixels wide (what other alphabets' characters are made of)."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width, margin = int(rng.integers(3, 12)), 14
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.random()
        if kind < 0.45:  # a segment or a polyline with sharp turns
            points = rng.uniform(margin, CANVAS - margin, size=(int(rng.integers(2, 5)), 2))
            draw.line([tuple(p) for p in points], fill=255, width=width, joint="curve")
        elif kind < 0.8:  # an arc of a circle or an ellipse: a bowl, a hook
            centre, radii = rng.uniform(30, CANVAS - 30, 2), rng.uniform(8, 28, 2)
            start = float(rng.uniform(0, 360))
            box = (*(centre - radii), *(centre + radii))
            draw.arc(box, start, start + float(rng.uniform(60, 270)), fill=255, width=width)
        elif kind < 0.92:  # a short bar
            a = rng.uniform(margin, CANVAS - margin, 2)
            b = np.clip(a + rng.uniform(-20, 20, 2), 0, CANVAS - 1)
            draw.line([tuple(a), tuple(b)], fill=255, width=width)
        else:  # a dot
            x, y = rng.uniform(margin, CANVAS - margin, 2)
            r = width * float(rng.uniform(0.8, 1.5))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return image


def pair(digits: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Two MNIST digits (N, 28, 28) uint8 side by side, at random heights: "17", not a digit."""
    a, b = digits[rng.integers(0, len(digits), 2)]
    image = np.zeros((36, 56), dtype=np.uint8)
    offsets = rng.integers(0, 9, 2)
    image[offsets[0] : offsets[0] + 28, :28] = a
    image[offsets[1] : offsets[1] + 28, 28:] = np.maximum(image[offsets[1] : offsets[1] + 28, 28:], b)
    return Image.fromarray(image)


def mirrored(digits: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit whose mirror image is no digit (2 3 4 5 6 7 9), mirrored."""
    labels, images = digits
    pool = np.flatnonzero(np.isin(labels, MIRRORED))
    return Image.fromarray(images[pool[rng.integers(len(pool))]][:, ::-1].copy()).resize((56, 56))


def turned(digits: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit (1-7 or 9) turned a quarter, one way or the other."""
    labels, images = digits
    pool = np.flatnonzero(np.isin(labels, TURNED))
    x = np.rot90(images[pool[rng.integers(len(pool))]], k=int(rng.choice([1, 3])))
    return Image.fromarray(x.copy()).resize((56, 56))


def shape(rng: np.random.Generator) -> Image.Image:
    """A filled ellipse, rectangle, triangle or smooth blob (a silhouette), light on black, turned at random."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    c, r = rng.uniform(0.4, 0.6, 2) * CANVAS, rng.uniform(0.15, 0.4, 2) * CANVAS
    kind = int(rng.integers(4))
    if kind == 0:
        draw.ellipse((c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]), fill=255)
    elif kind == 1:
        draw.rectangle((c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]), fill=255)
    else:
        n = 3 if kind == 2 else 12
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if kind == 2 else np.linspace(0, 2 * np.pi, n, endpoint=False)
        radii = rng.uniform(0.5, 1.0, n) * r.mean()
        draw.polygon([(c[0] + a * np.cos(t), c[1] + a * np.sin(t)) for a, t in zip(radii, angles, strict=True)],
                     fill=255)
        if kind == 3:
            image = image.filter(ImageFilter.GaussianBlur(4)).point(lambda v: 255 if v > 127 else 0)
    return image.rotate(float(rng.uniform(0, 360)), Image.Resampling.BILINEAR)


def texture(rng: np.random.Generator) -> Image.Image:
    """Smooth random grey content (coarse noise, upsampled, over a gradient): what photographs look like
    to a digit reader."""
    k = int(rng.integers(3, 12))
    coarse = rng.uniform(0, 255, (k, k)).astype(np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((CANVAS, CANVAS), Image.Resampling.BICUBIC), dtype=np.float64)
    ramp = np.linspace(0, rng.uniform(-120, 120), CANVAS)
    image = image + (ramp[None, :] if rng.random() < 0.5 else ramp[:, None])
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def draw_one(kind: str, digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Image.Image:
    """One non-digit of ``kind``; ``digits`` are (labels (N,), images (N, 28, 28)) to make some from."""
    if kind == "letter":
        return glyph(LETTERS[rng.integers(len(LETTERS))], rng)
    if kind == "symbol":
        return glyph(SYMBOLS[rng.integers(len(SYMBOLS))], rng)
    if kind == "scribble":
        return scribble(rng)
    if kind == "pair":
        return pair(digits[1], rng)
    if kind in ("thin", "thick"):
        return scribble(rng, (1, 4) if kind == "thin" else (14, 25))
    if kind in ("shape", "texture", "character"):
        return {"shape": shape, "texture": texture, "character": character}[kind](rng)
    return {"mirrored": mirrored, "turned": turned}[kind](digits, rng)


def make_negatives(count: int, images: torch.Tensor, labels: torch.Tensor, seed: int,
                   kinds: tuple[str, ...] = KINDS) -> torch.Tensor:
    """``count`` non-digits as MNIST-style uint8 images (count, 28, 28), ``kinds`` in turn.

    ``images`` (N, 28, 28) uint8 and ``labels`` (N,) are training digits to make some of them from;
    ``seed`` fixes the whole set.
    """
    from .preprocess import to_mnist

    rng = np.random.default_rng(seed)
    digits = (labels.numpy(), images.numpy())
    out = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):
        while True:  # a drawing with no ink left, or nearly a straight line (a 1), is drawn again
            try:
                image = to_mnist(draw_one(kinds[i % len(kinds)], digits, rng))
            except ImageError:
                continue
            if elongation(Image.fromarray(image)) >= MIN_ELONGATION:
                out[i] = image
                break
    return torch.from_numpy(out)


def training_bank(images: torch.Tensor, labels: torch.Tensor, share: float, seed: int,
                  kinds: tuple[str, ...] = KINDS) -> torch.Tensor:
    """The bank of non-digits a training run draws from: as many as one epoch uses (``share`` per training
    digit of ``images`` (N, 28, 28) with ``labels`` (N,)), up to BANK, of ``kinds``, from the run's ``seed``."""
    return make_negatives(min(BANK, max(1, round(share * len(images)))), images, labels, seed, kinds)
