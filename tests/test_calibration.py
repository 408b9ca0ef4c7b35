"""Calibration and the verdict: probabilities that mean what they say, "that is not a digit" on real
drawings, and checkpoints from before either still predicting."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from digitsum.calibration import Calibration, expected_calibration_error, fit_shared_temperature, fit_temperature
from digitsum.checkpoint import load_checkpoint
from digitsum.config import ModelConfig
from digitsum.evaluate import evaluate, fixed_test_mixture, infer
from digitsum.model import build_model
from digitsum.predict import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import handwriting  # noqa: E402


def test_the_fitted_temperature_minimises_the_negative_log_likelihood():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (2000,))
    logits = 4 * (torch.randn(2000, 10) + 2 * torch.nn.functional.one_hot(labels, 10))  # mostly right, too sure
    t = fit_temperature(logits, labels)
    assert 1.5 < t < 20  # over-confident logits are cooled: T > 1, inside the search's bounds

    def nll(temperature):
        return torch.nn.functional.cross_entropy(logits / temperature, labels).item()

    assert nll(t) <= min(nll(t * 0.9), nll(t * 1.1))
    assert fit_shared_temperature([(logits, labels), (logits, labels)]) == pytest.approx(t, rel=1e-6)


def test_expected_calibration_error_is_confidence_minus_accuracy_per_bin():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])  # 90% sure and right half the time; 60% sure and always right
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_calibration_fitted_on_validation_lowers_the_error_on_held_out_test_digits(small_run, mnist):
    checkpoint = load_checkpoint(small_run)
    test = fixed_test_mixture(mnist["test"])
    raw = infer(checkpoint.model, test)
    calibrated = infer(checkpoint.model, test, calibration=checkpoint.calibration)
    before = expected_calibration_error(raw.digit_probs, test.labels)
    after = expected_calibration_error(calibrated.digit_probs, test.labels)
    assert after < before / 2 and after < 0.02
    sums = test.labels + test.numbers
    assert expected_calibration_error(calibrated.sum_probs, sums) < expected_calibration_error(raw.sum_probs, sums)
    assert torch.equal(raw.digits, calibrated.digits)  # a temperature never changes the answer
    metrics = json.loads((small_run / "metrics.json").read_text())
    assert metrics["digit_ece"] == pytest.approx(after, abs=1e-9)
    assert "validation split" in checkpoint.calibration.fitted_on


def test_the_verdict_keeps_real_digits_and_flags_real_non_digits():
    """The bundled model on USPS test digits and on Omniglot characters drawn by people."""
    predictor = load_model()
    usps = handwriting.usps(split="test")  # other writers' digits: a harder test of keeping
    kept = np.mean([p.is_digit for p in predictor.predict_batch(list(usps.images[:500]), [0] * 500)])
    assert kept >= 0.95
    alphabets = handwriting.omniglot()
    drawings = [f for name in ("Korean", "Balinese", "Tagalog") for f in alphabets[name][:100]]
    flagged = 1 - np.mean([p.is_digit for p in predictor.predict_batch(drawings, [0] * len(drawings))])
    assert flagged >= 0.5
    scores = [p.is_digit_score for p in predictor.predict_batch(drawings[:5], [0] * 5)]
    assert all(0 <= s <= 1 for s in scores)


def test_the_bundled_verdict_keeps_mnist_test_digits(mnist):
    predictor = load_model()
    predictions = predictor.predict_arrays(mnist["test"].images[:2000].numpy(), [0] * 2000)
    assert np.mean([p.is_digit for p in predictions]) >= 0.99


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint as digitsum wrote them before the verdict and calibration: no ``verdict`` in its config,
    no verdict weights, no calibration.json."""
    folder = tmp_path_factory.mktemp("old")
    torch.manual_seed(0)
    model = build_model(ModelConfig(verdict=False))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    config = {"model": {k: v for k, v in ModelConfig(verdict=False).to_dict().items() if k != "verdict"}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_checkpoint_from_before_calibration_still_predicts(old_checkpoint, mnist):
    checkpoint = load_checkpoint(old_checkpoint)
    assert not checkpoint.model.has_verdict and checkpoint.calibration == Calibration()
    p = load_model(old_checkpoint).predict(mnist["test"].images[0].numpy(), 3)
    assert p.is_digit and p.is_digit_score is None and abs(sum(p.digit_probabilities) - 1) < 1e-6
    metrics = evaluate(checkpoint.model, mnist["test"])
    assert "is_digit_rate" not in metrics and 0 <= metrics["digit_ece"] <= 1


def test_a_malformed_calibration_file_is_one_clear_error(old_checkpoint, tmp_path):
    from digitsum.errors import CheckpointError

    folder = Path(shutil.copytree(old_checkpoint, tmp_path / "ckpt"))
    (folder / "calibration.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="calibration .* is not a JSON object"):
        load_checkpoint(folder)
