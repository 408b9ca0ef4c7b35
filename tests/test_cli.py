"""The command line: evaluate --json, entry points, and one clear line for every bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from digitsum.checkpoint import load_checkpoint
from digitsum.cli import main
from digitsum.evaluate import all_pairs_sums
from digitsum.mixture import TEST_NUMBER_SEED, fixed_numbers, normalize
from helpers import assert_one_line_error, run_cli


def test_evaluate_json_reports_the_figures_of_a_count_made_here(capsys, small_run, mnist_dir, mnist):
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(small_run), "--data-dir", str(mnist_dir), "--json")
    assert code == 0
    metrics = json.loads(out)
    model, test = load_checkpoint(small_run).model, mnist["test"]
    numbers = fixed_numbers(10000, TEST_NUMBER_SEED)
    with torch.inference_mode():  # one plain forward pass, counted here
        digit_logits, sum_logits, _ = model(normalize(test.images), numbers)
    digits, sums = digit_logits.argmax(1), sum_logits.argmax(1)
    pairs = all_pairs_sums(model, test.images)  # (10000, 10); checked against forward passes in test_evaluate.py
    assert metrics["n"] == 10000 and metrics["all_pairs_n"] == 100000
    assert metrics["digit_accuracy"] == (digits == test.labels).sum().item() / 10000
    assert metrics["sum_accuracy"] == (sums == test.labels + numbers).sum().item() / 10000
    assert metrics["consistency"] == (sums == digits + numbers).sum().item() / 10000
    assert metrics["all_pairs_sum_accuracy"] == (pairs == test.labels[:, None] + torch.arange(10)).sum().item() / 100000
    sevens = test.labels == 7
    assert metrics["per_digit_accuracy"]["7"] == (digits[sevens] == 7).sum().item() / sevens.sum().item()
    assert metrics["digit_accuracy"] > 0.9  # a real model: the small run learned


def test_evaluate_takes_a_safetensors_file(capsys, small_run, mnist_dir):
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(small_run / "model.safetensors"),
                           "--data-dir", str(mnist_dir), "--json")
    assert code == 0
    assert json.loads(out)["digit_accuracy"] == json.loads((small_run / "metrics.json").read_text())["digit_accuracy"]


def test_console_script_and_module_both_run(small_run, mnist_dir):
    for cmd in (["digitsum"], [sys.executable, "-m", "digitsum"]):
        result = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
        assert result.stdout.startswith("digitsum ")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["train", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["train", "--epochs", "two"], "invalid int value: 'two'"),
    (["train", "--arch", "huge"], "invalid choice: 'huge'"),
    (["train", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["train", "--lr", "-0.1"], "--lr must be positive"),
    (["train", "--warmup", "1.5"], "--warmup must be between 0 and 1"),
    (["train", "--fusion", "sum"], "invalid choice: 'sum'"),
    (["train", "--arch", "seed", "--fusion", "concat"], "the seed network always concatenates"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["evaluate", "--nonsense"], "unrecognized arguments: --nonsense"),
])
def test_bad_option_values_exit_2_with_one_line(capsys, argv, fragment):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_missing_checkpoint(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path / "nothing"))
    assert code == 1
    assert_one_line_error(err, "not found")


def test_corrupt_weights(capsys, small_run, tmp_path):
    shutil.copy(small_run / "config.json", tmp_path)
    (tmp_path / "model.safetensors").write_bytes((small_run / "model.safetensors").read_bytes()[:500])
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "corrupt")


def test_unreadable_checkpoint(capsys, small_run, tmp_path):
    if os.geteuid() == 0:  # root reads everything: use a directory where a file is expected
        (tmp_path / "model.safetensors").mkdir()
    else:
        (tmp_path / "model.safetensors").write_bytes(b"x")
        (tmp_path / "model.safetensors").chmod(0)
    shutil.copy(small_run / "config.json", tmp_path)
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "cannot read checkpoint weights")


def test_config_that_does_not_match_the_weights(capsys, small_run, tmp_path):
    shutil.copy(small_run / "model.safetensors", tmp_path)
    config = json.loads((small_run / "config.json").read_text())
    config["model"]["conv1"] = 8  # a valid config, but not the one of these weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "do not match its config")


def test_config_that_is_not_json(capsys, small_run, tmp_path):
    shutil.copy(small_run / "model.safetensors", tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "not valid JSON")


def test_corrupt_data_file(capsys, mnist_dir, tmp_path):
    for p in mnist_dir.glob("*.gz"):
        (tmp_path / p.name).symlink_to(p.resolve())
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / name).unlink()
    raw = bytearray(gzip.decompress((mnist_dir / name).read_bytes()))
    raw[0] = 7
    (tmp_path / name).write_bytes(gzip.compress(bytes(raw)))
    code, _, err = run_cli(capsys, "train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, name, "bad magic number")
    assert not (tmp_path / "run").exists()


def test_missing_data_with_every_mirror_down(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_MIRRORS", "http://127.0.0.1:9/")  # the discard port: refused
    code, _, err = run_cli(capsys, "train", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "every mirror failed", "train-images-idx3-ubyte", str(tmp_path / "empty"))
    assert not (tmp_path / "run").exists()


def test_output_directory_that_holds_a_run(capsys, small_run, mnist_dir):
    code, _, err = run_cli(capsys, "train", "--data-dir", str(mnist_dir), "--out", str(small_run))
    assert code == 1
    assert_one_line_error(err, "already holds a run", "--overwrite")


def test_a_bug_is_not_dressed_as_a_users_mistake(monkeypatch, small_run, mnist_dir):
    def broken(*args, **kwargs):
        raise ValueError("an internal inconsistency")  # what a bug deep inside looks like

    monkeypatch.setattr("digitsum.evaluate.evaluate", broken)
    with pytest.raises(ValueError, match="an internal inconsistency"):  # not caught: Python prints the traceback
        main(["evaluate", "--checkpoint", str(small_run), "--data-dir", str(mnist_dir)])


def test_a_bug_shows_its_traceback_and_exits_1(tmp_path):
    script = ("import sys, digitsum.training\n"
              "def broken(*a, **k): raise KeyError('a bug')\n"
              "digitsum.training.train = broken\n"
              "from digitsum.cli import main\n"
              "sys.exit(main(['train', '--out', sys.argv[1]]))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'a bug'" in result.stderr
