"""Learn from more writers: does training on other people's digits (``digitsum train --extra-digits``) read
writers it never saw better, without reading MNIST worse? And does fine-tuning on one style help that style?

``compare``: the default recipe (shortened to ``EPOCHS`` epochs so that 12 trainings fit on 2 cores) over
three seeds each, trained on MNIST only; + USPS train (7,291); + optdigits ``.tra`` (1,934); + both. Each
model is scored on MNIST test, USPS test and optdigits ``.tes``, through the public API as a user's files
would be (``load_model().predict_batch``). A test set whose source's training split was trained on is
marked "seen"; the honest cross-writer figure is the one from the source left out.

``finetune``: the bundled model fine-tuned (``--init bundled --recipe finetune``: 2 epochs) on the first
100 training digits of one source, then scored on that source's test split and on MNIST test, before and
after. The test splits (USPS ``zip.test.gz``, optdigits ``.tes``) are only ever scored, never trained on
or used to pick anything.

    python benchmarks/writers.py [--quick] [compare|finetune]
    python benchmarks/writers.py csv DIR     # the two training splits as DIR/usps.csv, DIR/optdigits.csv
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from digitsum.config import ModelConfig, recipe
from digitsum.mixture import TEST_NUMBER_SEED, fixed_numbers
from digitsum.predict import load_model
from digitsum.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import handwriting  # noqa: E402

EPOCHS, SEEDS = 4, (0, 1, 2)
SOURCES = {"MNIST only": (), "+ USPS train": ("usps",), "+ optdigits .tra": ("optdigits",),
           "+ both": ("usps", "optdigits")}
FINETUNE_DIGITS = 100


def write_csv(folder: Path, name: str, images: np.ndarray, labels: np.ndarray) -> Path:
    """Images as PNG files and ``name``.csv (image,digit) naming them: what --extra-digits reads."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "digit"])
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image).save(folder / name / f"{i}.png")
            writer.writerow([f"{name}/{i}.png", int(label)])
    return path


def training_splits(folder: Path, quick: bool) -> dict[str, Path]:
    """USPS train and optdigits .tra as --extra-digits files."""
    usps = handwriting.usps(split="train")
    opt = handwriting.optdigits(files=("optdigits-orig.tra",))
    n = 300 if quick else None
    return {"usps": write_csv(folder, "usps", usps.images[:n], usps.labels[:n]),
            "optdigits": write_csv(folder, "optdigits", opt.images[:n], opt.labels[:n])}


def test_sets(quick: bool) -> dict[str, handwriting.Digits]:
    usps, opt = handwriting.usps(split="test"), handwriting.optdigits(files=("optdigits-orig.tes",))
    n = 300 if quick else None
    return {"usps": handwriting.Digits(usps.name, usps.images[:n], usps.labels[:n]),
            "optdigits": handwriting.Digits("optdigits .tes", opt.images[:n], opt.labels[:n])}


def score(model, digits: handwriting.Digits) -> float:
    """Digit accuracy on ``digits`` (numbers fixed by the test seed; the digit head does not read them)."""
    numbers = fixed_numbers(len(digits), TEST_NUMBER_SEED).tolist()
    predictions = model.predict_batch(list(digits.images), numbers)
    return float(np.mean([p.digit == d for p, d in zip(predictions, digits.labels, strict=True)]))


def mean_range(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f} ({100 * min(values):.2f}–{100 * max(values):.2f})"


def compare(quick: bool = False, data_dir: str | None = None) -> str:
    epochs, seeds = (1, (0,)) if quick else (EPOCHS, SEEDS)
    tests = test_sets(quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = training_splits(Path(tmp), quick)
        for name, used in SOURCES.items():
            figures = {"mnist_digit": [], "mnist_sum": [], "consistency": [], "usps": [], "optdigits": [], "s": []}
            for seed in seeds:
                cfg = recipe("default", epochs=epochs, seed=seed, threads=2, limit=3000 if quick else 0,
                             extra_digits=tuple(str(files[s]) for s in used))
                out = Path(tmp) / f"{name}-{seed}".replace(" ", "_").replace("+", "plus")
                metrics = train(ModelConfig(), cfg, out, data_dir)
                model = load_model(out)
                figures["mnist_digit"].append(metrics["digit_accuracy"])
                figures["mnist_sum"].append(metrics["sum_accuracy"])
                figures["consistency"].append(metrics["consistency"])
                figures["s"].append(metrics["train_seconds"])
                for source, digits in tests.items():
                    figures[source].append(score(model, digits))
            rows.append((name, used, figures))
    lines = [f"{'Quick run: 3,000 MNIST images, 300 of each source, 1 epoch, 1 seed. ' if quick else ''}"
             f"The default recipe for {epochs} epoch{'s' if epochs > 1 else ''}, seeds "
             f"{', '.join(map(str, seeds))}, 2 threads; digit "
             "accuracy in % (mean of the seeds, with their range); \"seen\": that source's training split was "
             "trained on, so its test split is no longer an outside test.", "",
             "| trained on | MNIST test digit | MNIST test sum | consistency | USPS test | optdigits .tes | "
             "training s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, used, f in rows:
        usps = mean_range(f["usps"]) + (" seen" if "usps" in used else " **left out**" if used else "")
        opt = mean_range(f["optdigits"]) + (" seen" if "optdigits" in used else " **left out**" if used else "")
        lines.append(f"| {name} | {mean_range(f['mnist_digit'])} | {mean_range(f['mnist_sum'])} | "
                     f"{mean_range(f['consistency'])} | {usps} | {opt} | {statistics.median(f['s']):.1f} |")
    base = {k: statistics.mean(v) for k, v in rows[0][2].items()}
    gains = [f"{source} left out: {100 * (statistics.mean(f[source]) - base[source]):+.2f} points"
             for _, used, f in rows for source in ("usps", "optdigits") if used and source not in used]
    lines += ["", "Against MNIST only, each source left out: " + "; ".join(gains) + "."]
    return "\n".join(lines)


def finetune(quick: bool = False, data_dir: str | None = None) -> str:
    """The bundled model fine-tuned on 100 digits of one source, scored before and after."""
    tests = test_sets(quick)
    bundled = load_model()
    lines = [f"The bundled model fine-tuned with `--init bundled --recipe finetune` (2 epochs at peak rate "
             f"4e-4, each extra digit 20 times an epoch, MNIST beside them) on the first {FINETUNE_DIGITS} "
             "training digits of one source; digit accuracy in %, one run (seed 0, 2 threads).", "",
             "| style | its test split, before → after | MNIST test digit, before → after | "
             "MNIST test sum, before → after |", "| --- | ---: | ---: | ---: |"]
    base_metrics = bundled.metrics
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"usps": handwriting.usps(split="train"),
                   "optdigits": handwriting.optdigits(files=("optdigits-orig.tra",))}
        for source, digits in sources.items():
            path = write_csv(Path(tmp), source, digits.images[:FINETUNE_DIGITS], digits.labels[:FINETUNE_DIGITS])
            cfg = recipe("finetune", seed=0, threads=2, init="bundled", extra_digits=(str(path),),
                         epochs=1 if quick else 2, limit=3000 if quick else 0)
            out = Path(tmp) / f"tuned-{source}"
            metrics = train(bundled.model_config, cfg, out, data_dir)
            before, after = score(bundled, tests[source]), score(load_model(out), tests[source])
            lines.append(f"| {tests[source].name} | {100 * before:.2f} → {100 * after:.2f} | "
                         f"{100 * base_metrics['digit_accuracy']:.2f} → {100 * metrics['digit_accuracy']:.2f} | "
                         f"{100 * base_metrics['sum_accuracy']:.2f} → {100 * metrics['sum_accuracy']:.2f} |")
    return "\n".join(lines)


def run(quick: bool = False, data_dir: str | None = None) -> str:
    """The Markdown section: more writers in training, then fine-tuning on one style."""
    return "\n\n".join(["## Learn from more writers", "### More writers in training", compare(quick, data_dir),
                        "### Fine-tuning on one style", finetune(quick, data_dir)])


def export_csv(folder: Path) -> None:
    """USPS train and optdigits .tra as ``folder``/usps.csv and optdigits.csv (for scripts/bundle_model.sh)."""
    for source, path in training_splits(folder, quick=False).items():
        print(f"{source}: {path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "csv":
        export_csv(Path(sys.argv[2]))
    else:
        part = {"compare": compare, "finetune": finetune}.get(sys.argv[-1], run)
        print(part(quick="--quick" in sys.argv))
