"""A library call leaves the world as it found it: torch's thread count, the global random
generators, and the caller's model (its mode and memory layout)."""

from __future__ import annotations

import random

import numpy as np
import torch

from digitsum.config import ModelConfig, TrainConfig
from digitsum.evaluate import all_pairs_sums, fixed_test_mixture, infer
from digitsum.model import build_model
from digitsum.predict import Predictor, TorchBackend
from digitsum.training import train

TINY = TrainConfig(epochs=1, batch_size=100, limit=500, val_size=500, threads=1)


def global_random_states() -> tuple:
    return torch.get_rng_state().clone(), random.getstate(), np.random.get_state()[1].copy()


def test_train_puts_back_the_thread_count_and_the_random_generators(mnist_dir, tmp_path):
    before_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = global_random_states()
        train(ModelConfig(), TINY, tmp_path / "run", data_dir=str(mnist_dir))  # trains on 1 thread
        after = global_random_states()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before_threads)
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and np.array_equal(before[2], after[2])


def test_train_draws_the_same_weights_whatever_the_global_generator_holds(mnist_dir, tmp_path):
    torch.manual_seed(123)
    first = train(ModelConfig(), TINY, tmp_path / "a", data_dir=str(mnist_dir))
    torch.manual_seed(456)
    second = train(ModelConfig(), TINY, tmp_path / "b", data_dir=str(mnist_dir))
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert first["digit_accuracy"] == second["digit_accuracy"]


def test_inference_puts_back_the_models_mode(mnist):
    model = build_model(ModelConfig()).train()
    mixture = fixed_test_mixture(mnist["test"])
    infer(model, mixture, stop=50)
    assert model.training
    all_pairs_sums(model, mnist["test"].images[:20])
    assert model.training
    model.eval()
    infer(model, mixture, stop=50)
    assert not model.training


def test_a_predictor_leaves_the_callers_model_as_it_was(mnist):
    model = build_model(ModelConfig()).train()
    conv = model.image_branch[1][0].weight
    predictor = Predictor(TorchBackend(model), {}, {})
    predictions = predictor.predict_arrays(mnist["test"].images[:4].numpy(), [1, 2, 3, 4])
    assert len(predictions) == 4
    assert model.training and conv.is_contiguous()  # not switched to eval, not converted to channels-last
