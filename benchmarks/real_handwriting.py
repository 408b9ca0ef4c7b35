"""Real handwriting from other writers, and digits that fill their frame: how well digitsum reads them.

Sets (evaluation only: never trained, validated or selected on; see benchmarks/handwriting.py):

* USPS test and USPS train: US post envelopes, 16x16, each digit stretched to fill its box;
* optdigits (all 2,880): Bogazici forms, 32x32 binary;
* MNIST test digits cropped to their ink and upscaled to a 280-pixel dark-on-white canvas (what
  people send when they draw big or crop a photo to the digit), the first 2,000.

Each set is read as shipped ("tight": the ink touches the border) and with a 15% margin, through
the public API (``Predictor.predict_batch``: decoding, preprocessing, the model), with numbers
fixed by a seed per set. Reported: digit and sum accuracy, per-digit accuracy, the time per
image of preprocessing and prediction on one torch thread, and the time ``load_digit`` takes to
decode and preprocess a page-sized drawing: the frame-filling digits as 280x280 PNG files, as the
drawing page sends them.

    python benchmarks/real_handwriting.py [--quick] [--checkpoint RUN] [--data-dir DIR]
"""

from __future__ import annotations

import io
import statistics
import sys
import time

import numpy as np
from PIL import Image

import handwriting
from digitsum.data import load_mnist
from digitsum.mixture import fixed_numbers
from digitsum.predict import load_model
from digitsum.preprocess import load_digit
from digitsum.runtime import threads as torch_threads

NUMBER_SEED = 4_000_037
FRAME_FILLING = 2000  # MNIST test digits redrawn frame-filling
QUICK = 200  # images per set in a smoke run
MARGIN = 0.15
PAGE_DRAWINGS, ROUNDS = 500, 5  # PNG drawings timed through load_digit, rounds (the median is reported)


def tight_canvas(digit: np.ndarray, side: int = 280, margin: float = 0.0) -> np.ndarray:
    """An MNIST digit (28, 28) cropped to its ink, upscaled so its longer side is ``side``, dark on white,
    with a white margin of ``margin`` of that side on every edge."""
    rows, cols = np.flatnonzero(digit.max(1)), np.flatnonzero(digit.max(0))
    crop = 255 - digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = side / max(h, w)
    image = np.asarray(Image.fromarray(crop).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                    Image.Resampling.BICUBIC))
    pad = round(margin * side)
    return np.pad(image, pad, constant_values=255) if pad else image


def sets(data_dir: str | None, limit: int | None) -> dict[str, tuple[list, list, np.ndarray]]:
    """name -> (images as shipped, images with a margin, labels)."""
    out = {}
    for digits in (handwriting.usps(split="test"), handwriting.usps(split="train"), handwriting.optdigits()):
        images, labels = digits.images[:limit], digits.labels[:limit]
        out[digits.name] = (list(images), list(handwriting.with_margin(images, MARGIN)), labels)
    test = load_mnist(data_dir, splits=("test",))["test"]
    n = min(FRAME_FILLING, limit or FRAME_FILLING)
    digits, labels = test.images[:n].numpy(), test.labels[:n].numpy()
    out["MNIST test, cropped to the ink, 280 px"] = ([tight_canvas(d) for d in digits],
                                                    [tight_canvas(d, margin=MARGIN) for d in digits], labels)
    return out


def score(predictor, images: list, labels: np.ndarray) -> dict:
    """Digit and sum accuracy, per-digit accuracy and ms per image of ``images`` with seeded numbers."""
    numbers = fixed_numbers(len(images), NUMBER_SEED).numpy()
    start = time.perf_counter()
    predictions = predictor.predict_batch(images, numbers.tolist())
    ms = 1000 * (time.perf_counter() - start) / len(images)
    digits = np.array([p.digit for p in predictions])
    sums = np.array([p.sum for p in predictions])
    return {"digit": float((digits == labels).mean()), "sum": float((sums == labels + numbers).mean()),
            "per_digit": {d: float((digits[labels == d] == d).mean()) for d in range(10) if (labels == d).any()},
            "ms": ms, "n": len(images)}


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def page_drawing_ms(canvases: list) -> list[float]:
    """ms per drawing of ``load_digit`` (decode and preprocess) on 280x280 PNG files, one figure per round
    after a warm-up pass."""
    files = [png(c) for c in canvases]
    for data in files[:50]:
        load_digit(data)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for data in files:
            load_digit(data)
        rounds.append(1000 * (time.perf_counter() - start) / len(files))
    return rounds


def measure(checkpoint: str | None, data_dir: str | None, limit: int | None) -> dict:
    predictor = load_model(checkpoint)
    data = sets(data_dir, limit)
    results = {name: {"tight": score(predictor, tight, labels), "margin": score(predictor, margin, labels)}
               for name, (tight, margin, labels) in data.items()}
    test = load_mnist(data_dir, splits=("test",))["test"].images[:PAGE_DRAWINGS].numpy()
    pages = [np.asarray(Image.fromarray(255 - d).resize((280, 280), Image.Resampling.BILINEAR)) for d in test]
    return {"sets": results, "page_ms": page_drawing_ms(pages), "page_n": len(pages)}


def render(measured: dict, command: str) -> str:
    results, page = measured["sets"], measured["page_ms"]
    lines = ["## Real handwriting and frame-filling digits", "",
             f"Measured by `{command}` (bundled model unless `--checkpoint` says otherwise; 1 torch thread): each "
             f"set read as shipped (\"tight\": the ink touches the border) and with a {MARGIN:.0%} margin, through "
             "`Predictor.predict_batch` (preprocessing and prediction), numbers fixed by a seed. USPS and optdigits "
             "are evaluation sets only: never trained, validated or selected on (recipe choices were compared on "
             "them).", "",
             "| set | n | digit tight | sum tight | digit with margin | sum with margin | ms per image |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        t, m = r["tight"], r["margin"]
        lines.append(f"| {name} | {t['n']:,} | {100 * t['digit']:.2f}% | {100 * t['sum']:.2f}% | "
                     f"{100 * m['digit']:.2f}% | {100 * m['sum']:.2f}% | {t['ms']:.2f} |")
    lines += ["", "Per-digit accuracy, as shipped:", "",
              "| set | " + " | ".join(str(d) for d in range(10)) + " |", "| --- |" + " ---: |" * 10]
    for name, r in results.items():
        per = r["tight"]["per_digit"]
        lines.append(f"| {name} | " + " | ".join(f"{100 * per[d]:.1f}" if d in per else "" for d in range(10)) + " |")
    lines += ["", f"Page-sized drawings: `load_digit` decodes and preprocesses a 280x280 PNG drawing (the first "
              f"{measured['page_n']} MNIST test digits scaled up 10x, dark on white, as the drawing page sends "
              "them) in "
              f"**{statistics.median(page):.2f} ms** ({min(page):.2f}-{max(page):.2f}, the median of {len(page)} "
              "rounds; target: at most 1.5 ms)."]
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 1, checkpoint: str | None = None) -> str:
    """Run the benchmark (``quick``: a few hundred images per set) and return its Markdown section."""
    with torch_threads(threads or 1):
        results = measure(checkpoint, data_dir, QUICK if quick else None)
    flags = (" --quick" if quick else "") + (f" --checkpoint {checkpoint}" if checkpoint else "")
    return render(results, f"python benchmarks/real_handwriting.py{flags}")


if __name__ == "__main__":
    from run_all import checkpoint_main

    sys.exit(checkpoint_main(run, __doc__.splitlines()[0]))
