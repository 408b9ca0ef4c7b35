"""What the verdict passes: contact sheets of the non-digits that the shipped ``is_digit`` reads as digits.

For each non-digit set of benchmarks/nondigits.py, one PNG in OUT: a seeded sample of up to ``--sample`` of the
images the verdict passes, as the network sees them (28x28, after the public preprocessing), each over the
digit read and its ``is_digit_score``; and one line per set on stdout: its images, how many pass, and their
scores' median and 10th-90th percentiles. The sheets are for looking at: whether a passed image is shaped like a
digit is for a person to say.
Evaluation sets only, as in nondigits.py.

    python benchmarks/passed.py OUT [--quick] [--checkpoint RUN] [--sample N]
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import nondigits
from digitsum.cli.common import Parser, add_checkpoint
from digitsum.files import atomic_write_bytes
from digitsum.predict import load_model
from run_all import parse_flags

SEED = 0  # which passed images a sheet shows, when more pass than it holds
COLUMNS, TILE, LABEL = 15, 56, 16  # tiles per row; pixels a tile (a 28x28 image at 2x), and under it


def sheet(images: np.ndarray, labels: list[str]) -> bytes:
    """PNG bytes: the uint8 (N, 28, 28) images in rows of COLUMNS, each over its label."""
    rows = max(1, -(-len(images) // COLUMNS))
    out = Image.new("L", (COLUMNS * (TILE + 4), rows * (TILE + LABEL + 4)), 40)
    draw = ImageDraw.Draw(out)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (i % COLUMNS) * (TILE + 4), (i // COLUMNS) * (TILE + LABEL + 4)
        out.paste(Image.fromarray(image).resize((TILE, TILE), Image.Resampling.NEAREST), (x + 2, y + 2))
        draw.text((x + 4, y + TILE + 4), label, fill=255)
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()


def file_name(set_name: str) -> str:
    """A file name for a set: its words, lower case, joined by hyphens (``filled-triangles-28x28-arrays.png``)."""
    words = "".join(c.lower() if c.isalnum() else " " for c in set_name).split()
    return "-".join(words) + ".png"


def run(out: Path, quick: bool = False, checkpoint: str | None = None, sample: int = 150) -> list[str]:
    """Write a sheet per set into ``out``; return the lines: set, images, passed."""
    predictor = load_model(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, images in nondigits.nondigit_sets(nondigits.QUICK if quick else None).items():
        arrays, refused = nondigits.preprocessed(images)
        answers = predictor.predict_arrays(arrays, [0] * len(arrays))
        passed = [i for i, answer in enumerate(answers) if answer.is_digit]
        shown = sorted(np.random.default_rng(SEED).choice(passed, min(sample, len(passed)), replace=False).tolist())
        labels = [f"{answers[i].digit} {answers[i].is_digit_score:.2f}" for i in shown]
        atomic_write_bytes(out / file_name(name), sheet(arrays[shown], labels))
        scores = np.array([answers[i].is_digit_score for i in passed])
        spread = (f" (is_digit_score: median {np.median(scores):.2f}, 10th-90th percentile "
                  f"{np.quantile(scores, 0.1):.2f}-{np.quantile(scores, 0.9):.2f})" if passed else "")
        lines.append(f"{name}: {len(arrays)} images ({refused} refused by preprocessing), {len(passed)} read as "
                     f"digits{spread}, {len(shown)} of them in {file_name(name)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="passed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a hundred images per set (a smoke run)")
    parser.add_argument("out", type=Path, help="folder for the sheets (made if missing)")
    parser.add_argument("--sample", type=int, default=150, help="most images a sheet shows (default 150)")
    add_checkpoint(parser)

    def check(args) -> None:
        if args.sample < 1:
            parser.error(f"--sample must be at least 1, got {args.sample}")

    args = parse_flags(parser, argv, check)
    if args is None:
        return 2
    print("\n".join(run(args.out, args.quick, args.checkpoint, args.sample)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
