"""Real handwriting: the readers of the evaluation-only sets, frame-filling digits, and
``digitsum evaluate --manifest`` on people's own labelled images."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitsum.labelled import rank_confusions
from digitsum.manifest import MANIFEST_NUMBER_SEED
from digitsum.mixture import fixed_numbers
from digitsum.predict import load_model
from digitsum.preprocess import load_digit
from helpers import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import handwriting  # noqa: E402
from real_handwriting import tight_canvas  # noqa: E402

USPS_COUNTS = {"train": [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644],
               "test": [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]}  # handwriting/usps/zip.info.txt


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_usps_reader_gives_the_documented_counts_per_digit(split):
    usps = handwriting.usps(split=split)
    assert usps.images.shape == (sum(USPS_COUNTS[split]), 16, 16) and usps.images.dtype == np.uint8
    assert np.bincount(usps.labels, minlength=10).tolist() == USPS_COUNTS[split]
    assert usps.images.min() == 0 and usps.images.max() == 255  # -1 background, 1 ink


def test_the_optdigits_reader_gives_both_files_as_binary_32x32():
    opt = handwriting.optdigits()
    assert opt.images.shape == (1934 + 946, 32, 32)
    assert set(np.unique(opt.images).tolist()) == {0, 255}
    counts = np.bincount(opt.labels, minlength=10)
    assert counts.sum() == 2880 and counts.min() > 250  # about 290 of each digit


def test_omniglot_holds_4840_distinct_drawings_of_8_alphabets():
    alphabets = handwriting.omniglot()
    assert len(alphabets) == 8 and sum(len(files) for files in alphabets.values()) == 4840
    assert Image.open(__import__("io").BytesIO(alphabets["Greek"][0])).size == (105, 105)


def test_frame_filling_digits_become_the_image_their_padded_versions_do(mnist, small_run):
    """400 MNIST test digits cropped to their ink (every edge touched), 280 px, dark on white: the network
    sees what it sees for the same drawing with a 15% margin, and reads the same digit."""
    digits = mnist["test"].images[:400].numpy()
    tight = [load_digit(tight_canvas(d)) for d in digits]
    padded = [load_digit(tight_canvas(d, margin=0.15)) for d in digits]
    difference = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(tight, padded, strict=True)])
    assert difference < 1.5  # mean absolute difference, in grey levels of 255
    predictor = load_model(small_run)
    read_tight = [p.digit for p in predictor.predict_arrays(np.stack(tight), [0] * 400)]
    read_padded = [p.digit for p in predictor.predict_arrays(np.stack(padded), [0] * 400)]
    assert sum(a != b for a, b in zip(read_tight, read_padded, strict=True)) <= 2


def write_manifest(folder: Path, images: list[np.ndarray], labels: list, numbers: list | None,
                   extra_rows: list[list[str]] = ()) -> Path:
    """PNG files and a labels.csv (image,digit[,number]) in ``folder``."""
    rows = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
        rows.append([f"{i}.png", str(labels[i])] + ([str(numbers[i])] if numbers is not None else []))
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "digit"] + (["number"] if numbers is not None else []))
        writer.writerows(rows + list(extra_rows))
    return folder / "labels.csv"


def test_evaluate_manifest_reports_the_figures_of_a_count_made_here(capsys, tmp_path, small_run):
    usps = handwriting.usps(split="test")
    images, labels = list(usps.images[:300]), usps.labels[:300].tolist()
    numbers = [(3 * i) % 10 for i in range(300)]
    manifest = write_manifest(tmp_path, images, labels, numbers)
    code, out, err = run_cli(capsys, "evaluate", "--manifest", manifest, "--checkpoint", small_run, "--json",
                             "--errors", tmp_path / "misread.csv")
    assert code == 0, err
    metrics = json.loads(out)
    predictions = load_model(small_run).predict_batch(images, numbers)
    digits = np.array([p.digit for p in predictions])
    sums = np.array([p.sum for p in predictions])
    truth = np.array(labels)
    assert metrics["n"] == 300 and metrics["failed"] == 0
    assert metrics["digit_accuracy"] == (digits == truth).mean()
    assert metrics["sum_accuracy"] == (sums == truth + numbers).mean()
    assert metrics["consistency"] == (sums == digits + numbers).mean()
    assert metrics["per_digit_accuracy"]["5"] == (digits[truth == 5] == 5).mean()
    wrong = Counter((int(t), int(d)) for t, d in zip(truth, digits, strict=True) if t != d)
    assert metrics["confusions"] == rank_confusions(wrong)  # the CLI's own order, ties included
    with open(tmp_path / "misread.csv", newline="") as f:
        misread = list(csv.DictReader(f))
    expected = [i for i in range(300) if digits[i] != truth[i] or sums[i] != truth[i] + numbers[i]]
    assert [row["image"] for row in misread] == [f"{i}.png" for i in expected]
    assert {int(row["predicted_digit"]) for row in misread} <= set(range(10))
    assert all(int(row["predicted_digit"]) == digits[i] for row, i in zip(misread, expected, strict=True))


def test_evaluate_manifest_without_numbers_fixes_them_by_a_seed(capsys, tmp_path, small_run, mnist):
    images, labels = list(mnist["test"].images[:50].numpy()), mnist["test"].labels[:50].tolist()
    manifest = write_manifest(tmp_path, images, labels, None)
    code, out, _ = run_cli(capsys, "evaluate", "--manifest", manifest, "--checkpoint", small_run, "--json")
    assert code == 0
    numbers = fixed_numbers(50, MANIFEST_NUMBER_SEED).tolist()
    sums = np.array([p.sum for p in load_model(small_run).predict_batch(images, numbers)])
    assert json.loads(out)["sum_accuracy"] == (sums == np.array(labels) + numbers).mean()


def test_evaluate_manifest_reports_bad_rows_and_scores_the_rest(capsys, tmp_path, small_run, mnist):
    images, labels = list(mnist["test"].images[:20].numpy()), mnist["test"].labels[:20].tolist()
    (tmp_path / "blank.png").write_bytes(b"")
    bad = [["missing.png", "3", "1"], ["0.png", "12", "1"], ["0.png", "7", "x"], ["blank.png", "4", "2"]]
    manifest = write_manifest(tmp_path, images, labels, [1] * 20, bad)
    code, out, err = run_cli(capsys, "evaluate", "--manifest", manifest, "--checkpoint", small_run)
    assert code == 1
    assert "(n=20)" in out  # the 20 good rows are scored
    lines = err.strip().splitlines()
    assert len(lines) == 5 and "Traceback" not in err
    assert "missing.png" in lines[0] and "not found" in lines[0]
    assert "digit must be an integer 0-9, got '12'" in lines[1]
    assert "number must be an integer 0-9, got 'x'" in lines[2]
    assert "blank.png" in lines[3] and "empty (0 bytes)" in lines[3]
    assert lines[4] == "digitsum evaluate: error: 4 of 24 rows failed"


def test_a_manifest_without_a_digit_column_is_one_clear_line(capsys, tmp_path, small_run):
    (tmp_path / "labels.csv").write_text("image,number\nx.png,3\n")
    code, _, err = run_cli(capsys, "evaluate", "--manifest", tmp_path / "labels.csv", "--checkpoint", small_run)
    assert code == 1 and "needs a header with the columns image,digit (missing: digit" in err
    assert len(err.strip().splitlines()) == 1
