"""Labelled digits beyond MNIST for training (``--extra-digits``): read once, preprocessed as predict does,
recorded with a digest of the CSV and its images; a bad row is one clear error naming it."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from digitsum.config import ModelConfig, TrainConfig
from digitsum.errors import ManifestError
from digitsum.extra import changed_sources, read_extra_digits
from digitsum.preprocess import load_digit
from digitsum.training import Hooks, train
from helpers import assert_one_line_error, encode, run_cli


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


def small_train(*flags) -> list[str]:
    return ["train", "--limit", "1500", "--epochs", "1", "--val-size", "500", "--threads", "1", "--quiet", *flags]


def test_train_mixes_extra_digits_in_and_records_each_file(mnist, mnist_dir, tmp_path, capsys):
    labels = write_folder(tmp_path / "mine", mnist, 30)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", out, "--extra-digits", labels,
                                                "--extra-repeat", "3"))
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["extra_digits"] == [str(labels)] and config["train"]["extra_repeat"] == 3
    assert config["data"]["train_images"] == 1500 + 3 * 30
    assert config["data"]["extra_digits"] == list(read_extra_digits([labels]).sources)


def test_a_bad_row_trains_nothing_and_is_one_line(mnist, mnist_dir, tmp_path, capsys):
    labels = write_folder(tmp_path / "mine", mnist, 3, rows=[["0.png", "7"], ["1.png", "seven"]])
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", out, "--extra-digits", labels))
    assert code == 1
    assert_one_line_error(err, f"{labels} row 2 (1.png): digit must be an integer 0-9", "nothing was trained")
    assert not (out / "config.json").exists()


def test_resume_refuses_a_run_whose_extra_digits_changed(mnist, mnist_dir, tmp_path, capsys):
    labels = write_folder(tmp_path / "mine", mnist, 10)
    out = tmp_path / "run"

    def stop(record, model):  # Ctrl-C once the first epoch's state is saved
        raise KeyboardInterrupt

    cfg = TrainConfig(epochs=2, limit=1500, val_size=500, threads=1, extra_digits=(str(labels),))
    with pytest.raises(KeyboardInterrupt):
        train(ModelConfig(), cfg, out, str(mnist_dir), hooks=Hooks(on_epoch=stop))
    (tmp_path / "mine" / "4.png").write_bytes(encode(255 - mnist["test"].images[20].numpy()))
    code, _, err = run_cli(capsys, "train", "--resume", out, "--data-dir", mnist_dir, "--quiet")
    assert code == 1
    assert_one_line_error(err, "extra digits", "changed since it started", str(labels))
    code, _, err = run_cli(capsys, "train", "--resume", out, "--extra-digits", labels)
    assert code == 2
    assert_one_line_error(err, "drop --extra-digits")


def test_init_starts_from_the_checkpoints_weights(mnist_dir, small_run, tmp_path, capsys):
    out = tmp_path / "tuned"
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", out, "--init", small_run,
                                                "--recipe", "finetune", "--epochs", "1"))
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["init"] == str(small_run) and len(config["data"]["init_weights_sha256"]) == 64
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["train_digit_accuracy"] > 0.9  # from its first steps: a fresh network averages far less here
    fresh = tmp_path / "fresh"
    assert run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", fresh, "--recipe", "finetune",
                                        "--epochs", "1"))[0] == 0
    assert json.loads((fresh / "metrics.jsonl").read_text().splitlines()[0])["train_digit_accuracy"] < 0.8


def test_init_with_another_network_is_one_line(mnist_dir, small_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", tmp_path / "x", "--init", small_run,
                                                "--arch", "seed"))
    assert code == 2
    assert_one_line_error(err, "holds another network")
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", tmp_path / "y", "--init",
                                                tmp_path / "nowhere"))
    assert code == 1
    assert_one_line_error(err, "not found")


def test_init_with_corrupt_weights_is_one_line_and_writes_no_run(mnist_dir, small_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((small_run / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    out = tmp_path / "tuned"
    code, _, err = run_cli(capsys, *small_train("--data-dir", mnist_dir, "--out", out, "--init", broken))
    assert code == 1
    assert_one_line_error(err, "corrupt", str(broken / "model.safetensors"))
    assert not out.exists()
