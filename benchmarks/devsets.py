"""Dev sets of images far from any digit, for benchmarks/nondigits.py (evaluation only, never trained on).

Built here from files anyone can install, so that every number is reproducible:

* photographs: the sample images inside matplotlib (``mpl-data/sample_data``) and scikit-image's wheel
  (``skimage/data``), whole and as seeded random crops, in colour and grey, as they are and inverted
  (dark-on-light and light-on-dark);
* filled shapes (ellipses, triangles, rectangles, blobs): as 28x28 light-on-dark arrays, which go to the
  network as they are, and as dark drawings on a white 280-pixel canvas, as the page sends them. A
  shape whose ink is nearly a straight line (a sliver of a triangle: a 1, as far as anyone can tell) is
  drawn again, by the rule training's negatives follow (``negatives.MIN_ELONGATION``).

Every set is a list of what a user would pass to ``predict_batch``: PIL images, PNG bytes or arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from digitsum.negatives import MIN_ELONGATION, elongation

SEED = 20_261_202  # crops and shapes
CROPS = 400
SHAPES = 100  # of each kind, in each format
SHAPE_KINDS = ("ellipse", "triangle", "rectangle", "blob")
SKIP = {"lbpcascade_frontalface_opencv.xml", "README.txt"}


def sample_files() -> list[Path]:
    """The bundled image files of matplotlib and scikit-image (those installed), sorted."""
    folders = []
    import matplotlib

    folders.append(Path(matplotlib.get_data_path()) / "sample_data")
    try:
        import skimage

        folders.append(Path(os.path.dirname(skimage.__file__)) / "data")
    except ImportError:
        pass
    return sorted(p for folder in folders for p in folder.iterdir()
                  if p.suffix.lower() in (".png", ".jpg", ".gif", ".tif") and p.name not in SKIP)


def photographs() -> list[Image.Image]:
    """Each bundled image as RGB (first frame), openable by Pillow."""
    out = []
    for path in sample_files():
        try:
            with Image.open(path) as image:
                out.append(image.convert("RGB"))
        except OSError:
            continue
    return out


def variants(image: Image.Image) -> list[Image.Image]:
    """Colour and grey, as it is and inverted."""
    grey = image.convert("L")
    return [image, ImageOps.invert(image), grey, ImageOps.invert(grey)]


def whole_photographs() -> list[Image.Image]:
    return [v for image in photographs() for v in variants(image)]


def photograph_crops(n: int = CROPS) -> list[Image.Image]:
    """``n`` seeded random crops (a sixth to two thirds of the shorter side), colour or grey, inverted or not."""
    rng = np.random.default_rng(SEED)
    images = photographs()
    out = []
    for _ in range(n):
        image = images[rng.integers(len(images))]
        w, h = image.size
        side = int(min(w, h) * rng.uniform(1 / 6, 2 / 3))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = image.crop((x, y, x + side, y + side))
        out.append(variants(crop)[int(rng.integers(4))])
    return out


def lfw_faces() -> list[np.ndarray]:
    """scikit-image's bundled faces (lfw_subset.npy, 25x25 grey in [0, 1]) as uint8 arrays, as they are."""
    try:
        import skimage
    except ImportError:
        return []
    faces = np.load(Path(os.path.dirname(skimage.__file__)) / "data" / "lfw_subset.npy", allow_pickle=False)
    return [np.round(f * 255).astype(np.uint8) for f in faces]


def draw_shape(kind: str, size: int, rng: np.random.Generator, fill: int, background: int) -> Image.Image:
    """One filled shape of ``kind`` on a ``size``-pixel square."""
    image = Image.new("L", (size, size), background)
    draw = ImageDraw.Draw(image)
    c, r = rng.uniform(0.4, 0.6, 2) * size, rng.uniform(0.2, 0.4, 2) * size
    if kind == "ellipse":
        draw.ellipse((c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]), fill=fill)
    elif kind == "rectangle":
        draw.rectangle((c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]), fill=fill)
    else:
        vertices = 3 if kind == "triangle" else 16
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices)) if kind == "triangle" else np.linspace(0, 2 * np.pi,
                                                                                                      vertices, False)
        radii = rng.uniform(0.6, 1.0, vertices) * r.mean()
        if kind == "blob":  # smooth radii: a potato, not a star
            radii = np.convolve(np.tile(radii, 3), np.ones(3) / 3, "same")[vertices:2 * vertices]
        draw.polygon([(c[0] + a * np.cos(t), c[1] + a * np.sin(t)) for a, t in zip(radii, angles, strict=True)],
                     fill=fill)
    return image.rotate(float(rng.uniform(0, 360)), Image.Resampling.BILINEAR, fillcolor=background)


def shapes(kind: str, canvas: bool, n: int = SHAPES) -> list:
    """``n`` filled shapes of ``kind``: 28x28 light-on-dark uint8 arrays, or (``canvas``) dark on a 280 px
    white canvas; none nearly a straight line."""
    rng = np.random.default_rng([SEED, SHAPE_KINDS.index(kind), canvas])
    out = []
    while len(out) < n:
        image = draw_shape(kind, 280, rng, 0, 255) if canvas else draw_shape(kind, 28, rng, 255, 0)
        if elongation(ImageOps.invert(image) if canvas else image) >= MIN_ELONGATION:
            out.append(image if canvas else np.asarray(image))
    return out
