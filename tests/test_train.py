"""Training: a short real run on MNIST, the run directory, determinism."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from digitsum.checkpoint import load_checkpoint
from digitsum.config import ModelConfig, TrainConfig
from digitsum.errors import RunDirError
from digitsum.model import build_model
from digitsum.training import Hooks, loop, train
from digitsum.training.objective import make_optimizer

EPOCH_KEYS = {"epoch", "train_loss", "train_digit_accuracy", "train_sum_accuracy",
              "val_digit_accuracy", "val_sum_accuracy", "seconds"}


def history(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_short_run_reaches_sane_test_accuracy(small_run):
    metrics = json.loads((small_run / "metrics.json").read_text())
    assert metrics["n"] == 10000
    assert metrics["digit_accuracy"] > 0.95
    assert metrics["sum_accuracy"] > 0.90
    assert metrics["all_pairs_sum_accuracy"] > 0.90


def test_run_directory_holds_weights_config_and_history(small_run):
    assert {p.name for p in small_run.iterdir()} == {"model.safetensors", "config.json", "metrics.jsonl",
                                                      "metrics.json", "calibration.json", "novelty.safetensors",
                                                      "novelty.json"}
    lines = history(small_run)
    assert [h["epoch"] for h in lines] == [1, 2, 3]
    assert all(EPOCH_KEYS <= h.keys() for h in lines)
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    config = json.loads((small_run / "config.json").read_text())
    assert config["model"]["arch"] == "default" and config["seed"] == 0
    assert config["train"]["limit"] == 8000 and config["data"]["train_images"] == 8000
    assert set(config["data"]["sha256"]) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert {"torch", "digitsum", "python"} <= config["versions"].keys()
    assert load_file(small_run / "model.safetensors")  # plain tensors, no pickle


def test_train_accuracy_is_per_epoch_not_cumulative(small_run):
    lines = history(small_run)
    # A counter that is never reset would average the poor first epoch into every later one.
    assert lines[-1]["train_digit_accuracy"] > lines[0]["train_digit_accuracy"] + 0.05


def test_same_seed_and_threads_give_identical_metrics(mnist_dir, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=100, limit=1500, threads=1, seed=3, val_size=1000)
    for name in ("a", "b"):
        train(ModelConfig(), cfg, tmp_path / name, data_dir=str(mnist_dir))
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in history(tmp_path / "a")]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in history(tmp_path / "b")]
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in "ab")
    assert {k: v for k, v in a.items() if k != "train_seconds"} == {k: v for k, v in b.items() if k != "train_seconds"}
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_refuses_a_directory_that_holds_a_run(small_run, mnist_dir):
    before = (small_run / "model.safetensors").read_bytes()
    with pytest.raises(RunDirError, match="already holds a run"):
        train(ModelConfig(), TrainConfig(epochs=1, limit=100), small_run, data_dir=str(mnist_dir))
    assert (small_run / "model.safetensors").read_bytes() == before


def test_seed_architecture_trains(mnist_dir, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=50, limit=4000, threads=1, val_size=1000, lr=0.01)
    metrics = train(ModelConfig(arch="seed"), cfg, tmp_path / "seed", data_dir=str(mnist_dir))
    assert metrics["digit_accuracy"] > 0.8
    assert json.loads((tmp_path / "seed" / "config.json").read_text())["model"]["arch"] == "seed"


def test_warm_up_reaches_the_peak_rate_after_its_share_of_the_run():
    model = build_model(ModelConfig())
    opt, sched = make_optimizer(model, TrainConfig(epochs=10, warmup=0.1, lr=0.002), steps_per_epoch=20)
    rates = []
    for _ in range(200):
        opt.step()
        rates.append(sched.get_last_lr()[0])
        sched.step()
    assert rates.index(max(rates)) == 20 - 1 and max(rates) == pytest.approx(0.002)  # the peak ends epoch 1
    assert rates[-1] < 1e-6


@pytest.mark.one_cpu  # a clock and hooks: no figure of the weights
def test_on_step_sees_each_step_and_its_time_is_not_training_time(mnist_dir, tmp_path, monkeypatch):
    now = [0.0]

    def tick() -> float:  # a clock that advances one second each time training reads it
        now[0] += 1.0
        return now[0]

    seen = []

    def slow_hook(done):
        seen.append((done.step, done.steps, done.seconds, done.model.training))
        now[0] += 1000.0  # the hook "takes" 1000 s

    monkeypatch.setattr(loop, "clock", tick)
    cfg = TrainConfig(epochs=1, batch_size=100, limit=1500, threads=1, val_size=1000)
    records = []
    train(ModelConfig(fusion="concat"), cfg, tmp_path / "run", data_dir=str(mnist_dir),
          hooks=Hooks(on_step=slow_hook, on_epoch=lambda record, model: records.append(record)))
    assert [s[:2] for s in seen] == [(i, 15) for i in range(1, 16)] and all(s[3] for s in seen)
    assert [s[2] for s in seen] == [float(i) for i in range(1, 16)]  # one tick per step, none of the hook's
    assert records[0].seconds == 16.0  # 15 steps and the end of the epoch: the 15 x 1000 s of hook not counted
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["fusion"] == "concat"
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.model_config == ModelConfig(fusion="concat")
    assert not checkpoint.model.product  # built from it: the concat head
