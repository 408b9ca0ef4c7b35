"""Accuracy on user-style images: MNIST test digits redrawn as a drawing app exports them.

Each digit is upscaled onto a large canvas (280-560 pixels a side), its strokes thickened
and made solid, placed off-centre, and saved in one of five styles: black on white PNG,
black on a transparent PNG, dark blue on white JPEG, dark grey on grey paper PNG (greyscale),
and white on a transparent PNG. The same digits, with the test set's fixed numbers, are
predicted through the training pipeline (the 28x28 originals) and through
``digitsum.preprocess`` (the files), and both accuracies are printed.

    python benchmarks/user_style.py [--checkpoint RUN] [--n 2000] [--seed 0]

The tests build their set with ``user_style_files`` too.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
from PIL import Image, ImageFilter

SOLID = [round(255 * min(max((v / 255 - 0.25) / 0.3, 0), 1)) for v in range(256)]  # grey level -> solid ink


def solid_strokes(digit: np.ndarray, side: int, thicken: int) -> Image.Image:
    """A uint8 (28, 28) MNIST digit -> greyscale ink (side, side) with solid, thicker, anti-aliased strokes."""
    x4 = Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)  # 4x: room to thicken
    if thicken:
        x4 = x4.filter(ImageFilter.MaxFilter(2 * thicken + 1))  # +thicken/4 of an MNIST pixel each side
    solid = x4.point(SOLID)  # faint parts gone, the core solid
    return solid.resize((side, side), Image.Resampling.BILINEAR)


# style -> (mode, background, ink colour); a transparent style keeps its colour everywhere and its ink in alpha
LOOKS = {
    "black-on-white.png": ("RGB", (255, 255, 255), (0, 0, 0)),
    "black-on-transparent.png": ("RGBA", (0, 0, 0, 0), None),
    "blue-on-white.jpg": ("RGB", (255, 255, 255), (20, 30, 120)),
    "grey-paper.png": ("L", 225, 50),
    "white-on-transparent.png": ("RGBA", (255, 255, 255, 0), None),
}


def draw(digit: np.ndarray, style: str, rng: np.random.Generator) -> bytes:
    """One MNIST digit (28, 28) uint8 as an encoded file of ``style`` on a random off-centre canvas."""
    width, height = (int(v) for v in rng.integers(280, 561, size=2))
    side = int(rng.uniform(0.45, 0.85) * min(width, height))  # the 28x28 frame's size on the canvas
    ink = solid_strokes(digit, side, int(rng.integers(0, 4)))  # (side, side)
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    coverage = Image.new("L", (width, height), 0)
    coverage.paste(ink, (left, top))
    mode, background, colour = LOOKS[style]
    if colour is None:
        image = Image.new(mode, (width, height), background)
        image.putalpha(coverage)
    else:
        image = Image.composite(Image.new(mode, (width, height), colour), Image.new(mode, (width, height), background),
                                coverage)
    out = io.BytesIO()
    if style.endswith(".jpg"):
        image.save(out, "JPEG", quality=85)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


STYLES = tuple(LOOKS)

SEND_SIDE, MARGIN = 64, 4  # index.html's picture(): the ink box scaled to at most this, and its margin


def page_pad(image28: np.ndarray) -> Image.Image:
    """A uint8 (28, 28) MNIST digit as the drawing page's pad holds it: 280x280 RGBA, light ink on black."""
    return Image.fromarray(image28).resize((280, 280), Image.Resampling.BILINEAR).convert("RGBA")


def page_picture(pad: Image.Image) -> Image.Image:
    """What the page sends of its pad (index.html's ``picture()``): the ink's box, 2 pixels wider each way
    (the page tracks its pen's reach), scaled down to at most SEND_SIDE a side, on black with a MARGIN."""
    ys, xs = np.nonzero(np.asarray(pad)[..., 0])
    x0, y0 = max(0, xs.min() - 2), max(0, ys.min() - 2)
    x1, y1 = min(pad.width, xs.max() + 3), min(pad.height, ys.max() + 3)
    w, h = x1 - x0, y1 - y0
    scale = min(1.0, SEND_SIDE / max(w, h))
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    out = Image.new("RGBA", (cw + 2 * MARGIN + ((cw, ch) == (20, 20)), ch + 2 * MARGIN), (0, 0, 0, 255))
    out.paste(pad.crop((x0, y0, x1, y1)).resize((cw, ch), Image.Resampling.BOX), (MARGIN, MARGIN))
    return out


def user_style_files(digits: np.ndarray, seed: int = 0) -> list[tuple[str, bytes]]:
    """(style, encoded file) for each uint8 MNIST digit (N, 28, 28), styles in turn, from a seeded RNG."""
    rng = np.random.default_rng(seed)
    styles = [STYLES[i % len(STYLES)] for i in range(len(digits))]
    return [(style, draw(digit, style, rng)) for style, digit in zip(styles, digits, strict=True)]


def measure(predictor, digits: np.ndarray, labels: np.ndarray, numbers: np.ndarray, seed: int = 0) -> dict:
    """Digit and sum accuracy on the 28x28 originals and on their user-style files, overall and per style."""
    files = user_style_files(digits, seed)
    mnist = predictor.predict_arrays(digits, numbers.tolist())
    start = time.perf_counter()
    user = predictor.predict_batch([data for _, data in files], numbers.tolist())  # decode, preprocess, predict
    seconds = time.perf_counter() - start

    def accuracy(predictions, pick=slice(None)) -> dict:
        d = np.array([p.digit for p in predictions])[pick]
        s = np.array([p.sum for p in predictions])[pick]
        return {"digit_accuracy": float((d == labels[pick]).mean()),
                "sum_accuracy": float((s == (labels + numbers)[pick]).mean())}

    styles = np.array([style for style, _ in files])
    return {"n": len(digits), "mnist": accuracy(mnist), "user_style": accuracy(user),
            "per_style": {style: accuracy(user, styles == style) for style in STYLES},
            "user_style_ms_per_image": 1000 * seconds / max(len(digits), 1)}


def main() -> None:
    import torch

    from digitsum.checkpoint import CheckpointError
    from digitsum.cli.common import add_checkpoint, add_data_dir
    from digitsum.data import DataError, load_mnist
    from digitsum.evaluate import fixed_test_mixture
    from digitsum.predict import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_checkpoint(p)
    add_data_dir(p)
    p.add_argument("--n", type=int, default=2000, help="test digits to redraw, the first N (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of sizes, placements and strokes (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        predictor = load_model(args.checkpoint)
        test = load_mnist(args.data_dir)["test"]
    except (CheckpointError, DataError, ValueError, OSError) as error:
        raise SystemExit(f"user_style: error: {error}") from None
    numbers = fixed_test_mixture(test).numbers[: args.n].numpy()  # the test set's numbers
    result = measure(predictor, test.images[: args.n].numpy(), test.labels[: args.n].numpy(), numbers, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    for name in ("mnist", "user_style"):
        r = result[name]
        print(f"{name:>10}: digit {100 * r['digit_accuracy']:.2f}%  sum {100 * r['sum_accuracy']:.2f}%  "
              f"(n={result['n']})")
    for style, r in result["per_style"].items():
        print(f"  {style:>24}: digit {100 * r['digit_accuracy']:.2f}%  sum {100 * r['sum_accuracy']:.2f}%")
    print(f"decode + preprocess + predict: {result['user_style_ms_per_image']:.1f} ms per user-style image "
          f"({args.threads} torch thread(s))")


if __name__ == "__main__":
    main()
