"""Preprocessing before and after a change, in one run: every 28x28 ``load_digit`` makes, compared, and its time.

Each source tree preprocesses the same images in a process of its own (``PYTHONPATH`` set to it):
MNIST test digits as the drawing page sends them (their ink box), as 28x28 PNGs, as 280x280
dark-on-white scans and as the page's whole pad; USPS test and optdigits digits with a margin;
and every non-digit set of nondigits.py (photographs and their crops, filled shapes, letters,
scribbles, strokes, Omniglot). The table says, per kind, how many of the 28x28 images (or the
one-line errors of images without ink) differ between the trees, and the milliseconds per image
of each (one pass, after a warm-up), with their ratio. Run it on its own: the two trees run one
after the other.

    python benchmarks/preprocess_ab.py --before OLD/src [--after ../src] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WARM_UP = 20  # images of each kind preprocessed before the timed pass


def corpus(data_dir: str | None, limit: int | None) -> dict[str, list]:
    """kind -> the images (PNG bytes, PIL images or arrays), as users send them."""
    import handwriting
    import nondigits
    from bench_serve import encode, ink_box_png, png_bytes
    from digitsum.data import load_mnist
    from user_style import page_pad

    n = limit or 2000
    quarter, half = max(1, n // 4), max(1, n // 2)  # the larger images, and each of two writers' sets
    test = load_mnist(data_dir, splits=("test",))["test"].images.numpy()
    kinds = {"MNIST test, the page's ink box": [ink_box_png(x) for x in test[:n]],
             "MNIST test, 28x28 PNG": [png_bytes(x, 28) for x in test[n : 2 * n]],
             "MNIST test, 280x280 dark on white": [png_bytes(x, 280) for x in test[2 * n : 2 * n + quarter]],
             "MNIST test, the page's whole pad": [encode(page_pad(x)) for x in test[3 * n : 3 * n + quarter]]}
    kinds["USPS test and optdigits, with a margin"] = [
        *handwriting.with_margin(handwriting.usps(split="test").images[:half]),
        *handwriting.with_margin(handwriting.optdigits().images[:half])]
    kinds["the non-digit sets of nondigits.py"] = [x for images in nondigits.nondigit_sets(limit).values()
                                                    for x in images]
    return kinds


def child(out: str, data_dir: str | None, limit: int | None) -> None:
    """Preprocess the corpus with the digitsum on sys.path; save every 28x28 (or error) and the seconds per kind."""
    from digitsum.errors import ImageError
    from digitsum.preprocess import load_digit

    def one(image) -> np.ndarray | str:
        try:
            return load_digit(image)
        except ImageError as error:
            return str(error)

    digits, errors, seconds = [], [], {}
    for kind, images in corpus(data_dir, limit).items():
        for image in images[:WARM_UP]:
            one(image)
        start = time.perf_counter()
        results = [one(image) for image in images]
        seconds[kind] = (time.perf_counter() - start, len(images))
        digits += [r if isinstance(r, np.ndarray) else np.zeros((28, 28), np.uint8) for r in results]
        errors += [r if isinstance(r, str) else "" for r in results]
    np.savez(out, digits=np.stack(digits), errors=np.array(errors), kinds=np.array(list(seconds)),
             seconds=np.array([s for s, _ in seconds.values()]), counts=np.array([c for _, c in seconds.values()]))


def preprocess_with(tree: str, out: Path, data_dir: str | None, limit: int | None) -> dict:
    argv = [sys.executable, __file__, "--child", str(out)] + (["--data-dir", data_dir] if data_dir else []) + \
        (["--limit", str(limit)] if limit else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(tree).resolve()), str(HERE)])}
    subprocess.run(argv, env=env, check=True)
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def render(before: dict, after: dict, command: str) -> str:
    rows = [f"`{command}`: each tree preprocessed the same images in a process of its own, one pass after a warm-up "
            f"of {WARM_UP} of each kind.", "",
            "| images | count | differ | ms per image, before | after | after / before |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    start = 0
    for kind, count, was, now in zip(before["kinds"], before["counts"], before["seconds"], after["seconds"],
                                     strict=True):
        span = slice(start, start + int(count))
        start += int(count)
        differ = int(((before["digits"][span] != after["digits"][span]).any(axis=(1, 2))
                      | (before["errors"][span] != after["errors"][span])).sum())
        rows.append(f"| {kind} | {count:,} | {differ} | {1000 * was / count:.3f} | {1000 * now / count:.3f} | "
                    f"{now / was:.2f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="PYTHONPATH of the preprocessing before the change (a tree's src/)")
    parser.add_argument("--after", default=str(HERE.parent / "src"), help="PYTHONPATH after it (default: ../src)")
    parser.add_argument("--limit", type=int, help="at most this many images of each MNIST kind and non-digit set")
    parser.add_argument("--data-dir")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.data_dir, args.limit)
        return 0
    if not args.before:
        parser.error("--before is required: the src/ folder of the tree to compare with")
    with tempfile.TemporaryDirectory() as folder:
        before = preprocess_with(args.before, Path(folder) / "before.npz", args.data_dir, args.limit)
        after = preprocess_with(args.after, Path(folder) / "after.npz", args.data_dir, args.limit)
    command = "python benchmarks/preprocess_ab.py --before OLD/src" + (f" --limit {args.limit}" if args.limit else "")
    print(render(before, after, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
