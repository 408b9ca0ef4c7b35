"""Distributed training: torchrun with 2 CPU processes (gloo), and the World helpers it relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import digitsum
from digitsum.checkpoint import load_checkpoint
from digitsum.config import ConfigError, ModelConfig, TrainConfig
from digitsum.evaluate import accuracy, fixed_test_mixture, infer
from digitsum.mixture import NumberMixture, split_train_val
from digitsum.model import build_model
from digitsum.training.distributed import World
from digitsum.training.epoch import validate


def torchrun(*argv: str, entry: list[str] | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m digitsum ...`` (through python -m, whatever PATH holds),
    in a session of its own, as a terminal runs it. ``entry`` replaces ``-m digitsum`` (a script)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               *(entry or ["-m", "digitsum"]), *argv]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, start_new_session=True)


# Rank 0 presses Ctrl-C for the whole process group (torchrun and both ranks, as a terminal does)
# after CTRL_C_AT training steps: the same point however busy the machine is.
CTRL_C = """
import os, signal, sys
from digitsum.cli import main
from digitsum.training import loop
loss, calls = loop.digitsum_loss, [0]
def counted(*args):
    calls[0] += 1
    if calls[0] == {at} and os.environ["RANK"] == "0":
        os.killpg(os.getpgid(0), signal.SIGINT)
    return loss(*args)
loop.digitsum_loss = counted
sys.exit(main(sys.argv[1:]))
"""


def test_two_processes_write_one_run_and_print_once(mnist_dir, mnist, tmp_path):
    out = tmp_path / "ddp"
    result = torchrun("train", "--data-dir", str(mnist_dir), "--limit", "2000", "--epochs", "1", "--batch-size", "64",
                      "--val-size", "1000", "--threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "metrics.jsonl", "metrics.json",
                                               "calibration.json", "novelty.safetensors", "novelty.json"}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # written by rank 0 only
    assert result.stdout.count("epoch  1/1") == 1 and result.stdout.count("run written to") == 1

    record = json.loads(lines[0])
    assert 0.8 < record["val_digit_accuracy"] <= 1 and 0.5 < record["train_digit_accuracy"] <= 1
    assert record["train_loss"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 10000 and metrics["best_epoch"] == 1

    # Exact figures: the saved model, evaluated here in one process on the whole validation and
    # test sets, scores exactly what the two ranks reported together.
    model = load_checkpoint(out).model
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text())["train"])
    _, val = split_train_val(mnist["train"], cfg)
    assert validate(World(), model, val) == (record["val_digit_accuracy"], record["val_sum_accuracy"])
    test = fixed_test_mixture(mnist["test"])
    assert accuracy(infer(model, test).digits, test.labels) == metrics["digit_accuracy"]


def test_a_bad_flag_under_torchrun_is_reported_once(mnist_dir, tmp_path):
    result = torchrun("train", "--data-dir", str(mnist_dir), "--limit", "500", "--epochs", "1", "--batch-size", "63",
                      "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert result.stderr.count("--batch-size 63 is the global batch, split over 2 processes") == 1
    assert not (tmp_path / "run").exists()


def test_shards_cover_every_item_once():
    for n in (0, 1, 7, 1000, 1001):
        for size in (1, 2, 3, 8):
            shares = [World(rank, size).shard(n) for rank in range(size)]
            assert [i for start, stop in shares for i in range(start, stop)] == list(range(n))


def test_global_batch_must_split_evenly_across_processes():
    World(0, 4).check_global_batch(128, 1000)
    with pytest.raises(ConfigError, match="make it a multiple of 3"):
        World(0, 3).check_global_batch(128, 1000)
    with pytest.raises(ConfigError, match="do not fill one global batch"):
        World(0, 2).check_global_batch(128, 100)
    World().check_global_batch(128, 100)  # one process: a partial batch is fine


def test_single_process_world_validates_like_evaluate(mnist):
    torch.manual_seed(0)
    model = build_model(ModelConfig())  # a real network; whether it is trained does not matter here
    mix = NumberMixture.fixed(mnist["test"].images[:500], mnist["test"].labels[:500], seed=5)
    out = infer(model, mix)
    assert validate(World(), model, mix) == (accuracy(out.digits, mix.labels),
                                            accuracy(out.sums, mix.labels + mix.numbers))


def test_single_process_collectives_are_identities():
    world = World()
    values = torch.tensor([1.5, 2.0])
    assert torch.equal(world.sum(values), values)
    assert world.any(True) and not world.any(False)
    assert world.broadcast_bytes(b"abc") == b"abc"
    with pytest.raises(ValueError, match="boom"), world.together():
        raise ValueError("boom")


def test_ctrl_c_under_torchrun_saves_once_and_the_run_resumes(mnist_dir, tmp_path):
    out, steps = tmp_path / "ddp", 2000 // 64  # optimizer steps per epoch (global batch 64)
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C.format(at=steps + 10))
    flags = ["--data-dir", str(mnist_dir), "--limit", "2000", "--epochs", "3", "--batch-size", "64",
             "--val-size", "1000", "--threads", "1"]
    stopped = torchrun("train", *flags, "--out", str(out), entry=[str(script)])
    assert stopped.returncode != 0  # torchrun reports the interrupt in its own words; no rank shows a traceback
    assert f'File "{Path(digitsum.__file__).parent}' not in stopped.stderr, stopped.stderr
    assert stopped.stderr.count("digitsum train: training stopped at epoch 2, step 10 of 31") == 1, stopped.stderr
    assert stopped.stderr.count("Resume with: torchrun <the same options> -m digitsum train --resume") == 1
    assert sorted(p.name for p in (out / "resume").iterdir()) == [f"step-{steps:07d}", f"step-{steps + 10:07d}"]

    resumed = torchrun("train", "--resume", str(out), "--data-dir", str(mnist_dir), "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("run written to") == 1
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((out / "metrics.json").read_text())["n"] == 10000 and not (out / "resume").exists()
