"""The prediction API: load_model, Predictor.predict / predict_batch / predict_arrays, check_number,
and accuracy on user-style images (MNIST test digits redrawn as a drawing app exports them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import digitsum
from digitsum import checkpoint as checkpoint_module
from digitsum.checkpoint import CheckpointError, load_checkpoint
from digitsum.evaluate import fixed_test_mixture, infer
from digitsum.predict import Prediction, Predictor, TorchBackend, check_number, load_model
from digitsum.preprocess import ImageError
from helpers import encode, load_script

REPO = Path(__file__).resolve().parents[1]


def load_user_style():
    """benchmarks/user_style.py, the one builder of the user-style set (tests and README share it)."""
    return load_script(REPO / "benchmarks" / "user_style.py")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these batches are small, and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(small_run) -> Predictor:
    return load_model(small_run)


@pytest.mark.parametrize("value", [0, 7, 9, "7", " 3 ", np.int64(5)])
def test_check_number_accepts_integers_0_to_9(value):
    assert check_number(value) == int(value)


@pytest.mark.parametrize("value", [10, -1, 7.5, 7.0, "x", "", "7.5", True, None, "10"])
def test_check_number_refuses_the_rest(value):
    with pytest.raises(ValueError, match=r"number must be an integer 0-9, got"):
        check_number(value)


def test_the_api_is_exported_from_the_package():
    assert digitsum.load_model is load_model and digitsum.Prediction is Prediction


def test_an_mnist_png_predicts_as_the_training_pipeline_does(model, small_run, mnist, tmp_path):
    mixture = fixed_test_mixture(mnist["test"])
    n = 200
    checkpoint = load_checkpoint(small_run)
    expected = infer(checkpoint.model, mixture, stop=n, calibration=checkpoint.calibration)
    for i in range(0, n, 20):
        path = tmp_path / f"{i}.png"
        path.write_bytes(encode(mixture.images[i].numpy()))
        got = model.predict(path, int(mixture.numbers[i]))
        assert (got.digit, got.sum) == (int(expected.digits[i]), int(expected.sums[i]))
        assert np.allclose(got.digit_probabilities, expected.digit_probs[i].numpy(), atol=1e-5)
        assert np.allclose(got.sum_probabilities, expected.sum_probs[i].numpy(), atol=1e-5)
    got = model.predict_batch([encode(x) for x in mixture.images[:n].numpy()], mixture.numbers[:n].tolist())
    assert [p.digit for p in got] == expected.digits.tolist()
    assert [p.sum for p in got] == expected.sums.tolist()


def test_a_prediction_holds_the_digit_the_sum_and_their_probabilities(model, mnist):
    p = model.predict(mnist["test"].images[0].numpy(), 4)  # a 7
    assert (p.digit, p.sum) == (7, 11)
    assert len(p.digit_probabilities) == 10 and len(p.sum_probabilities) == 19
    assert abs(sum(p.digit_probabilities) - 1) < 1e-6 and abs(sum(p.sum_probabilities) - 1) < 1e-6
    assert p.digit_probability == max(p.digit_probabilities) and p.sum_probability == max(p.sum_probabilities)
    assert p.image.dtype == np.uint8 and p.image.shape == (28, 28)


def test_a_path_a_pil_image_bytes_and_an_array_give_the_same_prediction(model, mnist, tmp_path):
    digit = 255 - np.asarray(Image.fromarray(mnist["test"].images[1].numpy()).resize((140, 140)))  # dark on white
    path = tmp_path / "digit.png"
    path.write_bytes(encode(digit))
    sources = (path, str(path), Image.fromarray(digit), encode(digit), digit)
    predictions = [model.predict(source, 3) for source in sources]
    assert {(p.digit, p.sum) for p in predictions} == {(2, 5)}
    assert all(np.array_equal(p.image, predictions[0].image) for p in predictions)


def test_predict_batch_matches_predict_one_by_one(model, mnist):
    images = [x for x in mnist["test"].images[:30].numpy()]
    numbers = list(range(10)) * 3
    batch = model.predict_batch(images, numbers, batch_size=7)
    single = [model.predict(x, n) for x, n in zip(images, numbers, strict=True)]
    assert [(p.digit, p.sum) for p in batch] == [(p.digit, p.sum) for p in single]
    assert np.allclose([p.sum_probabilities for p in batch], [p.sum_probabilities for p in single], atol=1e-5)


def test_predict_arrays_runs_the_backend_once_per_batch(model, mnist):
    calls = []
    counting = Predictor(lambda x, n: calls.append(len(n)) or model.backend(x, n), model.config, model.metrics)
    out = counting.predict_arrays(mnist["test"].images[:600].numpy(), [1] * 600, batch_size=256)
    assert calls == [256, 256, 88] and len(out) == 600


def test_predict_batch_refuses_mismatched_lengths_and_bad_inputs(model, mnist):
    image = mnist["test"].images[0].numpy()
    with pytest.raises(ValueError, match="2 images but 1 numbers"):
        model.predict_batch([image, image], [1])
    with pytest.raises(ValueError, match="number must be an integer 0-9, got 12"):
        model.predict_batch([image], [12])
    with pytest.raises(ImageError, match="no ink"):
        model.predict(np.zeros((40, 40), np.uint8), 1)
    assert model.predict_batch([], []) == []


def test_the_torch_backend_returns_logits_as_numpy(small_run, mnist):
    ckpt = load_checkpoint(small_run)
    x = ((mnist["test"].images[:5].float() / 255 - 0.1307) / 0.3081).unsqueeze(1).numpy()  # (5, 1, 28, 28)
    digit, total, verdict = TorchBackend(ckpt.model)(x, np.arange(5))
    with torch.inference_mode():
        d, s, v = ckpt.model(torch.from_numpy(x), torch.arange(5))
    assert digit.shape == (5, 10) and total.shape == (5, 19) and verdict.shape == (5,)
    assert np.allclose(digit, d.numpy(), atol=1e-6) and np.allclose(total, s.numpy(), atol=1e-6)
    assert np.allclose(verdict, v.numpy(), atol=1e-6)


def test_load_model_without_a_path_loads_the_bundled_model(monkeypatch, small_run):
    monkeypatch.setattr(checkpoint_module, "bundled_path", lambda: small_run)
    predictor = load_model()
    assert predictor.config == load_checkpoint(small_run).config and predictor.metrics["digit_accuracy"] > 0.9


def test_load_model_refuses_an_unknown_runtime_and_a_missing_checkpoint(small_run, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime 'tpu'"):
        load_model(small_run, runtime="tpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nothing")


def test_user_style_accuracy_is_within_a_point_of_mnist(model, mnist):
    """600 test digits on 280-560 px canvases, thick strokes, off-centre, PNG/JPEG, on white or transparent."""
    from digitsum.mixture import TEST_NUMBER_SEED, fixed_numbers

    n = 600
    numbers = fixed_numbers(len(mnist["test"].images), TEST_NUMBER_SEED).numpy()[:n]
    result = load_user_style().measure(model, mnist["test"].images[:n].numpy(), mnist["test"].labels[:n].numpy(),
                                       numbers, seed=0)
    mnist_acc, user = result["mnist"], result["user_style"]
    assert mnist_acc["digit_accuracy"] > 0.95
    assert user["digit_accuracy"] >= mnist_acc["digit_accuracy"] - 0.01, result
    assert user["sum_accuracy"] >= mnist_acc["sum_accuracy"] - 0.01, result
