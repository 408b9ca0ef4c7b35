"""Does digitsum know a digit when it sees one? The verdict (``is_digit``) and the calibration.

* Digits kept: the share of MNIST test, USPS test and optdigits images read as digits.
* Non-digits flagged: the share read as not a digit, for Omniglot's characters drawn by people
  (per alphabet; Latin apart, as some of its letters are shaped like digits), letters and
  symbols rendered in DejaVu Sans and DejaVu Serif (fonts digitsum never trains on; digit-shaped
  ones such as O, I, S, Z apart), scribbles drawn by digitsum's own generator from a held-out seed,
  and pen strokes (straight segments, arcs and dots, by a generator of this benchmark's own; training's
  broad kinds draw made-up characters of the same parts, with other code and seeds).
* Calibration: the expected calibration error (15 bins) of both heads on MNIST test, USPS test and
  optdigits, without calibration, with one temperature for both heads, and with one per head
  (what digitsum fits).

All through the public API (``Predictor.predict_batch`` on files or arrays). Omniglot, USPS and
optdigits are evaluation sets only (benchmarks/handwriting.py).

    python benchmarks/nondigits.py [--quick] [--checkpoint RUN] [--data-dir DIR]
"""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import detectors
import devsets
import handwriting
from digitsum.calibration import KEEP, expected_calibration_error, fit_shared_temperature
from digitsum.data import load_mnist
from digitsum.mixture import fixed_numbers
from digitsum.negatives import CANVAS, scribble
from digitsum.predict import load_model
from digitsum.runtime import threads as torch_threads

FONTS = [Path("/usr/share/fonts/truetype/dejavu") / name for name in ("DejaVuSans.ttf", "DejaVuSerif.ttf")]
CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%&*+<=>?@~^{}"
DIGIT_SHAPED = set("OoDQIlijJLTtrySsZzGbBgqA?$&")  # can pass for 0 1 2 4 5 6 7 8 9: reported apart
HELD_OUT_SEED = 20_261_201  # scribbles and strokes: a seed no training run uses
GENERATED = 200  # scribbles and pen strokes each
NUMBER_SEED = 5_000_011
QUICK = 100  # images per set in a smoke run
SCRIBBLES = "scribbles (digitsum's generator, a held-out seed)"
OMNIGLOT = "Omniglot, the seven non-Latin alphabets"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def glyphs() -> tuple[list[bytes], list[bytes]]:
    """(letters and symbols not shaped like digits, those that are), dark on a 280-pixel canvas, in each
    DejaVu font this machine has."""
    plain, digit_like = [], []
    for path in FONTS:
        if not path.is_file():
            continue
        font = ImageFont.truetype(str(path), 180)
        for char in CHARACTERS:
            image = Image.new("L", (280, 280), 255)
            ImageDraw.Draw(image).text((50, 10), char, font=font, fill=0)
            (digit_like if char in DIGIT_SHAPED else plain).append(png(image))
    return plain, digit_like


def strokes(rng: np.random.Generator) -> Image.Image:
    """Two to four pen strokes: straight segments with sharp turns, arcs, and now and then a dot (as the
    characters of other alphabets are made; negatives.py's ``character`` is training's own, drawn apart), light
    on black."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(4, 10))
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.random()
        if kind < 0.5:  # a polyline with sharp turns
            points = [tuple(p) for p in rng.uniform(10, CANVAS - 10, size=(int(rng.integers(2, 5)), 2))]
            draw.line(points, fill=255, width=width, joint="curve")
        elif kind < 0.9:  # an arc of a circle
            cx, cy, r = *rng.uniform(25, CANVAS - 25, 2), float(rng.uniform(10, 30))
            start = float(rng.uniform(0, 360))
            draw.arc((cx - r, cy - r, cx + r, cy + r), start, start + float(rng.uniform(90, 300)), fill=255,
                     width=width)
        else:  # a dot
            cx, cy = rng.uniform(10, CANVAS - 10, 2)
            draw.ellipse((cx - width, cy - width, cx + width, cy + width), fill=255)
    return image


def generated(kind, n: int) -> list[bytes]:
    """``n`` drawings of a generator (negatives.py's ``scribble``, or ``strokes``), dark on a 280-pixel canvas,
    from the held-out seed."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    return [png(Image.fromarray(255 - np.asarray(kind(rng).resize((280, 280))))) for _ in range(n)]


def ece(predictor, images: np.ndarray, labels: np.ndarray, numbers: np.ndarray) -> tuple[float, float]:
    """(digit head's, sum head's) expected calibration error on MNIST-style images with these numbers."""
    predictions = predictor.predict_arrays(images, numbers.tolist())
    digit_probs = torch.tensor([p.digit_probabilities for p in predictions])
    sum_probs = torch.tensor([p.sum_probabilities for p in predictions])
    return (expected_calibration_error(digit_probs, torch.from_numpy(labels)),
            expected_calibration_error(sum_probs, torch.from_numpy(labels + numbers)))


def calibrations(predictor, data_dir: str | None) -> dict:
    """The calibrations compared: none, one temperature for both heads (fitted here on the validation split,
    as digitsum fits its own), one per head (the checkpoint's)."""
    from digitsum.config import TrainConfig
    from digitsum.mixture import normalize, split_train_val

    _, val = split_train_val(load_mnist(data_dir, splits=("train",))["train"], TrainConfig())
    logits = predictor.backend(normalize(val.images).numpy(), val.numbers.numpy())
    shared = fit_shared_temperature([(torch.from_numpy(logits[0]), val.labels),
                                     (torch.from_numpy(logits[1]), val.labels + val.numbers)])
    own = predictor.calibration
    return {"none": replace(own, digit_temperature=1.0, sum_temperature=1.0),
            f"one temperature for both heads ({shared:.3f})": replace(own, digit_temperature=shared,
                                                                       sum_temperature=shared),
            f"one per head ({own.digit_temperature:.3f}, {own.sum_temperature:.3f}; digitsum's)": own}


def digit_sets(data_dir: str | None, limit: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (images, labels): the digits whose share kept is reported."""
    test = load_mnist(data_dir, splits=("test",))["test"]
    usps, opt = handwriting.usps(split="test"), handwriting.optdigits()
    return {"MNIST test": (test.images[:limit].numpy(), test.labels[:limit].numpy()),
            "USPS test": (usps.images[:limit], usps.labels[:limit]),
            "optdigits": (opt.images[:limit], opt.labels[:limit])}


def preprocessed(images: list) -> tuple[np.ndarray, int]:
    """(uint8 (N, 28, 28) as ``load_digit`` makes them, how many it refused: no ink) for files, images or arrays."""
    from digitsum.errors import ImageError
    from digitsum.preprocess import load_digit

    out, refused = [], 0
    for image in images:
        try:
            out.append(load_digit(image))
        except ImageError:
            refused += 1
    return (np.stack(out) if out else np.zeros((0, 28, 28), np.uint8)), refused


def arrays28(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) of a digit set: the images themselves when they are MNIST-sized, else as ``load_digit``
    makes them."""
    return images if images.shape[1:] == (28, 28) else preprocessed(list(images))[0]


def nondigit_sets(limit: int | None) -> dict[str, list]:
    """name -> what a user would send (files, PIL images or arrays): the non-digits, far ones first."""
    sets = {"photographs, whole (colour/grey, as is/inverted)": devsets.whole_photographs(),
            "photograph crops (seeded)": devsets.photograph_crops(),
            "faces (skimage's LFW subset, 25x25)": devsets.lfw_faces()}
    for canvas in (False, True):
        for kind in devsets.SHAPE_KINDS:
            sets[f"filled {kind}s, " + ("280 px canvas" if canvas else "28x28 arrays")] = devsets.shapes(kind, canvas)
    plain, digit_like = glyphs()
    n = min(GENERATED, limit or GENERATED)
    sets["DejaVu letters and symbols not shaped like digits"] = plain
    sets[SCRIBBLES] = generated(scribble, n)
    sets["pen strokes (segments, arcs, dots; this benchmark's generator)"] = generated(strokes, n)
    sets["DejaVu letters and symbols shaped like digits (O I S Z ...)"] = digit_like
    alphabets = handwriting.omniglot()
    sets[OMNIGLOT] = [f for name, files in alphabets.items()
                                                       if name != handwriting.LATIN for f in files]
    sets["Omniglot Latin (some letters digit-like)"] = alphabets[handwriting.LATIN]
    return {k: v[:limit] for k, v in sets.items() if len(v)}


FAR = ("photograph", "faces", "filled", "DejaVu letters and symbols not", "scribbles")  # "far from any digit"


def shipped(predictor, images28: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_digit_score, is_digit) of what ``predict`` ships for these images."""
    predictions = predictor.predict_arrays(images28, [0] * len(images28))
    return (np.array([-1.0 if p.is_digit_score is None else p.is_digit_score for p in predictions]),
            np.array([p.is_digit for p in predictions]))


def measure(checkpoint: str | None, data_dir: str | None, limit: int | None) -> dict:
    from digitsum.checkpoint import load_checkpoint
    from digitsum.config import TrainConfig
    from digitsum.mixture import split_train_val
    from digitsum.negatives import make_negatives

    predictor = load_model(checkpoint)
    model = load_checkpoint(checkpoint).model
    train, val = split_train_val(load_mnist(data_dir, splits=("train",))["train"], TrainConfig())
    negatives = make_negatives(detectors.NEGATIVES, train.images, train.labels, detectors.NEGATIVE_SEED).numpy()
    scorer = detectors.Scorer(model, predictor.calibration.digit_temperature, train.images.numpy(),
                              train.labels.numpy(), val.images.numpy(), negatives)
    digits = digit_sets(data_dir, limit)
    results = {"kept": {}, "sets": {}, "refused": {}, "thresholds": scorer.thresholds}
    mnist = None
    for name, (images, _) in digits.items():
        arrays = arrays28(images)
        scores = scorer.scores(arrays)
        score, is_digit = shipped(predictor, arrays)
        results["kept"][name] = {k: float(np.mean(v >= scorer.thresholds[k])) for k, v in scores.items()}
        results["kept"][name]["shipped"] = float(is_digit.mean())
        if mnist is None:
            mnist = {**scores, "shipped": score}
    pooled: dict[str, list] = {}
    for name, images in nondigit_sets(limit).items():
        arrays, results["refused"][name] = preprocessed(images)
        scores = scorer.scores(arrays)
        score, is_digit = shipped(predictor, arrays)
        flagged = {k: float(np.mean(v < scorer.thresholds[k])) for k, v in scores.items()}
        flagged["shipped"] = float(1 - is_digit.mean())
        scores["shipped"] = score
        results["sets"][name] = {k: (detectors.auroc(mnist[k], v), detectors.fpr_at_tpr(mnist[k], v), flagged[k])
                                 for k, v in scores.items()}
        if name.startswith(FAR):
            for k, v in scores.items():
                pooled.setdefault(k, []).append((v, flagged[k] * len(v)))
    far = {}
    for k, parts in pooled.items():
        v = np.concatenate([p[0] for p in parts])
        far[k] = (detectors.auroc(mnist[k], v), detectors.fpr_at_tpr(mnist[k], v), sum(p[1] for p in parts) / len(v))
    results["sets"] = {"far from any digit, the sets above pooled": far, **results["sets"]}
    results["ece"] = calibration_errors(predictor, data_dir, digits)
    return results


def calibration_errors(predictor, data_dir: str | None, digits: dict) -> dict:
    errors = {}
    for name, calibration in calibrations(predictor, data_dir).items():
        predictor.calibration = calibration
        errors[name] = {}
        for set_name, (images, labels) in digits.items():
            arrays = arrays28(images)
            errors[name][set_name] = ece(predictor, arrays, labels, fixed_numbers(len(labels), NUMBER_SEED).numpy())
    return errors


SHORT = {"verdict head": "head", "MSP": "MSP", "energy": "energy", "Mahalanobis": "Maha.",
         f"kNN (k={detectors.K})": "kNN", "min(verdict, Mahalanobis), standardised": "min",
         "verdict + Mahalanobis, standardised": "sum", "logistic(verdict, Mahalanobis) on generated negatives":
         "logistic", "Mahalanobis, every layer": "Maha. (layers)",
         "head + Mahalanobis, every layer (the rule shipped before)": "before",
         "head + Mahalanobis, every layer + kNN, equal weights": "equal", detectors.RULE: "rule",
         "logistic(the rule's scores) on generated negatives": "logistic (rule's)", "shipped": "**shipped**"}
ANCHORS = ["| Outlier Exposure (hendrycks/outlier-exposure, MNIST snapshots) | 16.5 / 95.9 | 6.4 / 98.6 | 0.4 / 99.9 |",
           "| its max-probability baseline | 14.8 / 96.2 | 16.6 / 96.0 | 3.0 / 99.3 |"]


def render(results: dict, command: str) -> str:
    names = list(next(iter(results["kept"].values())))
    head = "| | " + " | ".join(SHORT.get(n, n) for n in names) + " |"
    rule = "| --- |" + " ---: |" * len(names)
    lines = ["## Is it a digit? Detectors in the field's terms, and calibrated probabilities", "",
             f"Measured by `{command}` (bundled model unless `--checkpoint` says otherwise), every score on the same "
             "network in the same run, every image through the public preprocessing. Scores "
             "(benchmarks/detectors.py): " + "; ".join(f"{SHORT[n]}: {n}" for n in names if n != "shipped")
             + "; **shipped**: the `is_digit_score` and `is_digit` that `predict` returns. Each score's threshold "
             f"keeps {100 * KEEP:.1f}% of the validation split's digits (MNIST training images held out); the "
             "Mahalanobis means and covariance and the kNN bank come from MNIST's other training images. In-"
             "distribution for AUROC and FPR: MNIST test. Omniglot, USPS, optdigits and every set below are "
             "evaluation only.", "", "Digits kept at each score's threshold:", "", head, rule]
    lines += [f"| {name} | " + " | ".join(f"{100 * v:.2f}%" for v in per.values()) + " |"
              for name, per in results["kept"].items()]
    for title, index, digits in (("AUROC (against MNIST test)", 0, 2), ("FPR at 95% TPR (lower is better)", 1, 1),
                                 ("Flagged at each score's threshold", 2, 1)):
        lines += ["", f"{title}:", "", head.replace("| |", "| set (images; refused by preprocessing) |", 1), rule]
        for name, per in results["sets"].items():
            n = results["refused"].get(name)
            label = name if n is None else f"{name} ({n} refused)" if n else name
            lines.append(f"| {label} | " + " | ".join(f"{100 * v[index]:.{digits}f}%" for v in per.values()) + " |")
    lines += ["", "Published anchors, MNIST in-distribution (FPR at 95% TPR / AUROC, %):", "",
              "| method | Omniglot | notMNIST | Fashion-MNIST |", "| --- | ---: | ---: | ---: |", *ANCHORS]
    sets = list(next(iter(results["ece"].values())))
    lines += ["", "Expected calibration error (15 bins; digit head / sum head; numbers fixed by a seed):", "",
              "| calibration | " + " | ".join(sets) + " |", "| --- |" + " ---: |" * len(sets)]
    for name, per_set in results["ece"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * d:.2f}% / {100 * s:.2f}%" for d, s in per_set.values())
                     + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, data_dir: str | None = None, threads: int = 1, checkpoint: str | None = None) -> str:
    """Run the benchmark (``quick``: a hundred images per set) and return its Markdown section."""
    with torch_threads(threads or 1):
        results = measure(checkpoint, data_dir, QUICK if quick else None)
    flags = (" --quick" if quick else "") + (f" --checkpoint {checkpoint}" if checkpoint else "")
    return render(results, f"python benchmarks/nondigits.py{flags}")


if __name__ == "__main__":
    from run_all import checkpoint_main

    sys.exit(checkpoint_main(run, __doc__.splitlines()[0]))
