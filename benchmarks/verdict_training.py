"""What the verdict trains on: variants of the default recipe's non-digits, each scored by the verdict it ships.

Issue 19 asks for a verdict that flags most of what is no digit. For each variant this trains ``digitsum
train --seed S --threads 2`` with one change to its non-digits or its loss, fits the rule as ``digitsum train``
does (MNIST training and validation digits only), and reports the checkpoint's own verdict (``is_digit_score``
and ``is_digit``, as ``predict`` returns them) on the dev sets of benchmarks/nondigits.py, beside its MNIST test
accuracy. A probe for "How it got here" in benchmarks/nondigits.md, not in run_all (no variant was shipped).

Variants, joined by "+" (``bank30000+script``):

* ``base``: the default recipe as it is (seed 0: the bundled model's own run);
* ``bankN``: N distinct non-digits drawn for the run (``negatives.BANK``, 6,000: each epoch re-draws its
  6,875 from them, shifted anew);
* ``oeW``: outlier exposure (Hendrycks et al. 2019): the digit head also learns the uniform distribution on
  the non-digits, ``W`` times the mean cross-entropy to it added to the loss;
* ``script``: one of the two made-up-character slots of ``BROAD_KINDS`` draws ``script`` characters instead
  (below: connected strokes in one thin pen, as people write an alphabet's letters).

    python benchmarks/verdict_training.py VARIANT [VARIANT ...] [--seed S]   (MNIST from $DIGITSUM_DATA)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import detectors
import nondigits
import verdict_weights
from digitsum import negatives
from digitsum.config import TrainConfig, model_for
from digitsum.predict import load_model
from digitsum.training import loop, sources, train


def script(rng: np.random.Generator) -> Image.Image:
    """A character of a made-up script, light on black: one to four strokes in one thin pen, each starting
    where the ink already is (an end, a point along a stroke) or, now and then, beside it; a stroke is a
    polyline turning at sharp angles, mostly near the horizontal, vertical and diagonals, or a bowl or hook."""
    canvas, lo, hi = negatives.CANVAS, 10.0, negatives.CANVAS - 10.0
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 6))
    ink: list[np.ndarray] = []  # points along the strokes drawn so far
    ends: list[np.ndarray] = []
    for _ in range(int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.3, 0.2]))):
        where = rng.random()
        if not ink:
            start = rng.uniform(30, 66, 2)
        elif where < 0.4:
            start = ends[rng.integers(len(ends))]
        elif where < 0.8:
            start = ink[rng.integers(len(ink))]
        else:
            start = np.clip(np.mean(ink, 0) + rng.uniform(-25, 25, 2), lo, hi)
        path = [start]
        if rng.random() < 0.65:  # a polyline of one to three segments
            heading = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(1, 4))):
                if rng.random() < 0.7:  # near a multiple of 45 degrees
                    heading = np.round(heading / (np.pi / 4)) * (np.pi / 4) + rng.normal(0, 0.15)
                step = rng.uniform(18, 46)
                path.append(np.clip(path[-1] + step * np.array([np.cos(heading), np.sin(heading)]), lo, hi))
                heading += rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 3 * np.pi / 4)
        else:  # part of an ellipse through the start point
            radii = rng.uniform(8, 24, 2)
            phase = rng.uniform(0, 2 * np.pi)
            t = phase + np.linspace(0, rng.uniform(np.pi / 2, 1.7 * np.pi) * rng.choice([-1, 1]), 24)
            centre = start - radii * np.array([np.cos(phase), np.sin(phase)])
            path = [np.clip(p, lo, hi) for p in centre + radii * np.stack([np.cos(t), np.sin(t)], 1)]
        draw.line([tuple(p) for p in path], fill=255, width=width, joint="curve")
        ends += [path[0], path[-1]]
        ink += [a + (b - a) * f for a, b in zip(path[:-1], path[1:], strict=True) for f in (0.25, 0.5, 0.75)]
    return image


def outlier_exposure(weight: float):
    """digitsum's loss plus ``weight`` times the digit head's mean cross-entropy to uniform on the non-digits."""
    base = loop.digitsum_loss

    def loss(outputs, batch, cfg):
        value = base(outputs, batch, cfg)
        if batch.real is not None and not bool(batch.real.all()):
            value = value - weight * outputs.digit[~batch.real].log_softmax(1).mean(1).mean()
        return value
    return loss


def with_script(draw_one):
    """``negatives.draw_one`` that also draws the ``script`` kind."""
    return lambda kind, digits, rng: script(rng) if kind == "script" else draw_one(kind, digits, rng)


def parse(name: str) -> list[tuple[str, float]]:
    """A variant's changes, ("bank", N) ("oe", W) ("script", 0), or one line saying what is wrong."""
    changes = []
    for part in name.split("+"):
        kind = next((k for k in ("bank", "oe") if part.startswith(k)), part)
        try:
            value = float(part[len(kind):]) if kind in ("bank", "oe") else 0.0
        except ValueError:
            value = -1.0
        wellformed = {"bank": value > 0 and value.is_integer(), "oe": value > 0, "script": True, "base": True}
        if not wellformed.get(kind, False):
            raise SystemExit(f"verdict_training: unknown variant {part!r} (base, bankN, oeW, script; joined by +)")
        if kind != "base":
            changes.append((kind, value))
    return changes


@contextlib.contextmanager
def variant(name: str):
    """Training as ``digitsum train`` does, with the variant's changes while the block runs."""
    changes = parse(name)
    patched = [(negatives, "BANK"), (negatives, "draw_one"), (sources, "BROAD_KINDS"), (loop, "digitsum_loss")]
    saved = [(module, attr, getattr(module, attr)) for module, attr in patched]
    try:
        for kind, value in changes:
            if kind == "bank":
                negatives.BANK = int(value)
            elif kind == "oe":
                loop.digitsum_loss = outlier_exposure(value)
            else:
                negatives.draw_one = with_script(negatives.draw_one)
                sources.BROAD_KINDS = (*negatives.BROAD_KINDS[:-1], "script")
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


def measure(run: str, data: dict[str, np.ndarray]) -> dict:
    """The run's test accuracy, digits kept, and AUROC / share flagged of its shipped verdict on the dev sets."""
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    predictor = load_model(run)
    shipped = {k: nondigits.shipped(predictor, v) for k, v in data.items()}  # (score, is_digit)
    mnist = shipped["D:MNIST test"][0]
    groups = {"far from any digit, pooled": [k for k in data if k[2:].startswith(nondigits.FAR)],
              "scribbles": ["N:" + nondigits.SCRIBBLES], "Omniglot non-Latin": ["N:" + nondigits.OMNIGLOT]}
    row = {"MNIST digit / sum": f"{100 * metrics['digit_accuracy']:.2f} / {100 * metrics['sum_accuracy']:.2f}",
           **{f"{name[2:]} kept": f"{100 * shipped[name][1].mean():.2f}%" for name in ("D:MNIST test", "D:USPS test")}}
    for name, keys in groups.items():
        score = np.concatenate([shipped[k][0] for k in keys])
        flagged = np.concatenate([~shipped[k][1] for k in keys])
        row[name] = f"{100 * detectors.auroc(mnist, score):.2f} / {100 * flagged.mean():.1f}%"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.variants:
        parse(name)  # every name checked before the first run
    data = verdict_weights.sets()
    cfg = TrainConfig(seed=args.seed, threads=2)
    rows = {}
    for name in args.variants:
        with tempfile.TemporaryDirectory() as out:
            with variant(name):
                train(model_for(cfg), cfg, out)
            rows[name] = measure(out, data)
        print(name, rows[name], flush=True, file=sys.stderr)
    columns = list(next(iter(rows.values())))
    print(f"seed {args.seed}; AUROC / flagged of the shipped verdict, % (the rule's own threshold)")
    print("| variant | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for name, row in rows.items():
        print(f"| `{name}` | " + " | ".join(row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
