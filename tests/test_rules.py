"""Rules that have one home each: a verdict head and its non-digits (config.pair), the calibrated
prediction (Calibration.apply), a run recorded before an option existed, and the answers' JSON."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitsum.answers import answer_json
from digitsum.calibration import Calibration
from digitsum.config import ConfigError, ModelConfig, TrainConfig, model_for, pair, recipe
from digitsum.manifest import Failed, Predicted, Row, predict_rows
from digitsum.model import Logits
from digitsum.predict import Prediction, load_model
from digitsum.training import train


def test_a_verdict_head_trains_on_non_digits_and_a_network_without_one_on_none():
    assert pair(ModelConfig(), TrainConfig()) == TrainConfig()
    assert pair(ModelConfig(verdict=False), TrainConfig()).negatives == 0.0
    assert pair(ModelConfig(arch="seed"), TrainConfig(negatives=0.5)).negatives == 0.0
    with pytest.raises(ConfigError, match="verdict head .* non-digits"):
        pair(ModelConfig(), recipe("fast"))


def test_the_library_refuses_a_verdict_head_without_non_digits_before_writing_anything(tmp_path):
    with pytest.raises(ConfigError, match="trains on none"):
        train(ModelConfig(), recipe("fast"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_command_lines_network_has_a_verdict_head_exactly_when_its_recipe_has_non_digits():
    assert model_for(TrainConfig()).verdict and not model_for(recipe("fast")).verdict
    assert not model_for(TrainConfig(), arch="seed").verdict
    assert model_for(TrainConfig(), fusion="concat") == ModelConfig(fusion="concat")


def test_a_run_recorded_before_detach_target_existed_reads_as_it_ran():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "detach_target"}
    assert TrainConfig.from_dict(old) == TrainConfig()
    assert TrainConfig.from_dict(TrainConfig(detach_target=True).to_dict()).detach_target


def test_a_run_recorded_before_the_broad_non_digits_resumes_with_the_classic_ones():
    assert TrainConfig().negative_kinds == "broad"
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "negative_kinds"}
    assert TrainConfig.from_dict(old).negative_kinds == "classic"
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_calibration_divides_by_each_heads_temperature_and_reads_the_verdict_by_its_threshold():
    digit, total = torch.tensor([[2.0, 0.0] + [-9.0] * 8]), torch.tensor([[1.0, 3.0] + [-9.0] * 17])
    verdict = torch.tensor([0.0])  # probability 0.5 of a digit
    c = Calibration(digit_temperature=2.0, sum_temperature=0.5, is_digit_threshold=0.6)
    out = c.apply(Logits(digit, total, verdict))
    torch.testing.assert_close(out.digit_probs, (digit / 2).softmax(1))
    torch.testing.assert_close(out.sum_probs, (total / 0.5).softmax(1))
    assert out.is_digit_scores.tolist() == [0.5] and out.is_digit.tolist() == [False]
    assert Calibration(is_digit_threshold=0.4).apply(Logits(digit, total, verdict)).is_digit.tolist() == [True]
    without = c.apply(Logits(digit, total))  # no verdict head: every image is a digit
    assert without.is_digit_scores is None and without.is_digit.tolist() == [True]
    assert c.apply(Logits(digit, total, verdict), torch.float64).digit_probs.dtype == torch.float64


def prediction(digit: int = 3, total: int = 5) -> Prediction:
    probs = [0.0] * 10
    probs[digit] = 1.0
    sums = [0.0] * 19
    sums[total] = 1.0
    return Prediction(digit, total, probs, sums, np.zeros((28, 28), np.uint8), True, 0.9)


def test_each_answer_has_its_documented_json_fields_in_order():
    p = prediction()
    assert list(answer_json(p)) == ["digit", "sum", "digit_probabilities", "sum_probabilities", "image", "is_digit",
                                    "is_digit_score"]
    assert answer_json(p)["image"] == [[0] * 28] * 28
    row = answer_json(Predicted("a.png", 2, p))
    assert row == {"image": "a.png", "number": 2, "digit": 3, "sum": 5, "digit_probability": 1.0,
                   "sum_probability": 1.0, "is_digit": True, "is_digit_score": 0.9}
    assert answer_json(Failed("b.png", "x", "number must be 0-9")) == {"image": "b.png", "number": "x",
                                                                       "error": "number must be 0-9"}


def test_manifest_rows_are_typed_predictions_or_failures(tmp_path):
    from PIL import Image

    image = np.zeros((28, 28), np.uint8)
    image[8:20, 12:16] = 255
    Image.fromarray(image).save(tmp_path / "one.png")
    rows = [Row({"image": "one.png", "number": "4"}, tmp_path / "one.png"),
            Row({"image": "one.png", "number": "12"}, tmp_path / "one.png"),
            Row({"image": "gone.png", "number": "1"}, tmp_path / "gone.png")]
    first, bad_number, missing = predict_rows(load_model(), rows)  # the bundled model
    assert isinstance(first, Predicted) and (first.image, first.number) == ("one.png", 4)
    assert first.prediction.digit == 1 and first.prediction.sum == 5
    assert isinstance(bad_number, Failed) and bad_number.number == 12 and "0-9" in bad_number.error
    assert isinstance(missing, Failed) and missing.image == "gone.png"
