"""Labelled digits beyond MNIST for training (``--extra-digits``): read once, preprocessed as predict does,
recorded with a digest of the CSV and its images; a bad row is one clear error naming it."""

from __future__ import annotations

import csv

import pytest
import torch

from digitsum.errors import ManifestError
from digitsum.extra import changed_sources, read_extra_digits
from digitsum.preprocess import load_digit
from helpers import encode


def write_folder(folder, mnist, n: int, rows=None):
    """n MNIST test digits as dark-on-white PNGs and a labels.csv naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    test = mnist["test"]
    for i in range(n):
        (folder / f"{i}.png").write_bytes(encode(255 - test.images[i].numpy()))
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "digit"])
        writer.writerows(rows if rows is not None else [[f"{i}.png", int(test.labels[i])] for i in range(n)])
    return folder / "labels.csv"


def test_extra_digits_are_preprocessed_as_predict_does_and_recorded(mnist, tmp_path):
    a = write_folder(tmp_path / "a", mnist, 5)
    b = write_folder(tmp_path / "b", mnist, 3)
    extra = read_extra_digits([a, b])
    assert extra.images.shape == (8, 28, 28) and extra.images.dtype == torch.uint8
    assert extra.labels.tolist() == mnist["test"].labels[:5].tolist() + mnist["test"].labels[:3].tolist()
    assert (extra.images[6].numpy() == load_digit(tmp_path / "b" / "1.png")).all()
    assert [s["n"] for s in extra.sources] == [5, 3] and [s["path"] for s in extra.sources] == [str(a), str(b)]
    digests = [s["sha256"] for s in extra.sources]
    assert all(len(d) == 64 for d in digests) and digests[0] != digests[1]
    assert changed_sources(list(extra.sources)) == []


def test_a_changed_image_or_csv_is_a_changed_source(mnist, tmp_path):
    a = write_folder(tmp_path / "a", mnist, 4)
    recorded = list(read_extra_digits([a]).sources)
    (tmp_path / "a" / "2.png").write_bytes(encode(255 - mnist["test"].images[9].numpy()))  # same name, other image
    assert changed_sources(recorded) == [str(a)]
    a.unlink()
    assert changed_sources(recorded) == [str(a)]


@pytest.mark.parametrize(("rows", "fragment"), [
    ([["0.png", "7"], ["1.png", "12"]], "row 2 (1.png): digit must be an integer 0-9, got '12'"),
    ([["0.png", "7"], ["nowhere.png", "3"]], "row 2 (nowhere.png)"),
    ([["0.png", "x"]], "row 1 (0.png): digit must be an integer 0-9"),
    ([], "has no rows"),
])
def test_a_bad_row_is_one_error_naming_the_file_and_the_row(mnist, tmp_path, rows, fragment):
    path = write_folder(tmp_path / "a", mnist, 2, rows=rows)
    with pytest.raises(ManifestError) as error:
        read_extra_digits([path])
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{path} ") or "has no rows" in str(error.value)
