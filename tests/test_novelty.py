"""The verdict's rule (novelty.py): its arithmetic, real non-digits flagged by a small real run and real
digits kept, the ONNX file's verdict equal to torch's, and checkpoints from before the rule still predicting."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from safetensors.torch import save as save_safetensors

from digitsum.checkpoint import load_checkpoint
from digitsum.errors import CheckpointError, ImageError
from digitsum.export import describe, export_onnx, random_check_batch
from digitsum.files import NOVELTY_RULE, NOVELTY_TENSORS
from digitsum.mixture import normalize
from digitsum.negatives import MIN_ELONGATION, elongation
from digitsum.novelty import (
    HEAD_WEIGHT,
    KNN_BANK,
    THRESHOLD,
    branch_layers,
    distance,
    fit_gaussian,
    knn_similarity,
    load_novelty,
)
from digitsum.predict import load_model
from digitsum.preprocess import load_digit
from helpers import assert_one_line_error, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import devsets  # noqa: E402
import handwriting  # noqa: E402


def test_the_distance_is_the_mahalanobis_distance_to_the_nearest_class_mean():
    rng = np.random.default_rng(0)
    labels = torch.arange(10).repeat(400)  # (4000,)
    scale = torch.tensor([1.0, 5.0])  # one axis five times as spread as the other, in every class
    centres = torch.from_numpy(rng.normal(0, 50, (10, 2))).float()
    features = centres[labels] + torch.randn(4000, 2, generator=torch.Generator().manual_seed(0)) * scale
    means, whiten = fit_gaussian(features, labels)
    assert torch.allclose(means, centres, atol=1.0)
    point = (centres[3] + torch.tensor([2.0, 0.0]))[None]  # two spreads along the narrow axis
    far_along_wide = (centres[3] + torch.tensor([0.0, 10.0]))[None]  # two spreads along the wide one
    d = distance(torch.cat([point, far_along_wide]), means, whiten)
    assert d[0] == pytest.approx(2.0, rel=0.1) and d[1] == pytest.approx(2.0, rel=0.1)


@pytest.fixture(scope="module")
def predictor(small_run):
    return load_model(small_run)


def preprocessed(images) -> np.ndarray:
    """(N, 28, 28) uint8 of the images the public preprocessing reads (one without ink is an error to the user)."""
    out = []
    for image in images:
        try:
            out.append(load_digit(image))
        except ImageError:
            continue
    return np.stack(out)


def flagged(predictor, images) -> float:
    arrays = preprocessed(images)
    assert len(arrays) >= 0.9 * len(images)
    return 1 - float(np.mean([p.is_digit for p in predictor.predict_arrays(arrays, [0] * len(arrays))]))


def test_the_dev_sets_filled_shapes_are_never_slivers():
    """benchmarks/devsets.py redraws a shape whose ink is nearly a line (a sliver of a triangle reads as a 1),
    by the rule training's negatives follow; in both of its forms."""
    arrays, canvas = devsets.shapes("triangle", False, 40), devsets.shapes("triangle", True, 40)
    assert len(arrays) == len(canvas) == 40
    assert all(elongation(Image.fromarray(a)) >= MIN_ELONGATION for a in arrays)
    assert all(elongation(ImageOps.invert(c)) >= MIN_ELONGATION for c in canvas)


def test_a_small_run_writes_the_rule_and_predicts_with_it(small_run, predictor):
    assert (small_run / NOVELTY_TENSORS).is_file() and (small_run / NOVELTY_RULE).is_file()
    checkpoint = load_checkpoint(small_run)
    assert checkpoint.novelty is not None and predictor.calibration.is_digit_threshold == THRESHOLD
    assert checkpoint.novelty.info["keep"] == 0.998 and "MNIST training images" in checkpoint.novelty.info["fitted_on"]


def test_a_small_run_keeps_mnist_test_digits(predictor, mnist):
    predictions = predictor.predict_arrays(mnist["test"].images[:2000].numpy(), [0] * 2000)
    assert np.mean([p.is_digit for p in predictions]) >= 0.98  # 99.8% of validation digits pass the threshold
    assert all(0 <= p.is_digit_score <= 1 for p in predictions)


def test_a_small_run_flags_real_photographs(predictor):
    """matplotlib's and scikit-image's own sample photographs, whole and cropped, as a user would send them
    (the bundled model flags 94-97% of them: benchmarks/nondigits.md; a run of 8,000 images, fewer)."""
    photos = devsets.whole_photographs() + devsets.photograph_crops(200)
    assert flagged(predictor, photos) >= 0.6


def test_a_small_run_flags_omniglot_characters(predictor):
    alphabets = handwriting.omniglot()
    drawings = [f for name, files in alphabets.items() if name != handwriting.LATIN for f in files[:60]]
    assert flagged(predictor, drawings) >= 0.25  # the bundled model flags 73% (benchmarks/nondigits.md)


def test_the_onnx_file_alone_gives_torch_s_verdict(small_run, predictor, mnist, tmp_path):
    path = tmp_path / "small.onnx"
    images, numbers, _ = random_check_batch(200)
    checkpoint = load_checkpoint(small_run)
    export_onnx(checkpoint.inference_model, path, images, numbers, describe(checkpoint))
    alone = load_model(path, runtime="onnx")
    assert alone.calibration == predictor.calibration
    alphabets = handwriting.omniglot()
    inputs = np.concatenate([preprocessed(devsets.whole_photographs()[:40] + alphabets["Korean"][:60]),
                             mnist["test"].images[:100].numpy()])
    torch_says = predictor.predict_arrays(inputs, [3] * len(inputs))
    onnx_says = alone.predict_arrays(inputs, [3] * len(inputs))
    assert [p.is_digit for p in torch_says] == [p.is_digit for p in onnx_says]
    assert 0 < sum(not p.is_digit for p in torch_says) < len(inputs)  # both answers occur
    assert np.allclose([p.is_digit_score for p in torch_says], [p.is_digit_score for p in onnx_says], atol=1e-4)


def test_a_checkpoint_from_before_the_rule_keeps_the_head_s_verdict(small_run, tmp_path, mnist):
    old = tmp_path / "old"
    shutil.copytree(small_run, old)
    (old / NOVELTY_TENSORS).unlink()
    (old / NOVELTY_RULE).unlink()
    checkpoint = load_checkpoint(old)
    assert checkpoint.novelty is None and checkpoint.inference_model is checkpoint.model
    assert checkpoint.calibration.is_digit_threshold != THRESHOLD  # calibration.json's, for the head
    images = mnist["test"].images[:50].numpy()
    predictions = load_model(old).predict_arrays(images, [1] * 50)
    x = normalize(torch.from_numpy(images))  # (50, 1, 28, 28)
    with torch.inference_mode():
        head = torch.sigmoid(checkpoint.model(x, torch.ones(50, dtype=torch.int64)).verdict)
    assert np.allclose([p.is_digit_score for p in predictions], head.numpy(), atol=1e-5)
    assert [p.is_digit for p in predictions] == (head.numpy() >= checkpoint.calibration.is_digit_threshold).tolist()
    assert np.mean([p.digit for p in predictions] == mnist["test"].labels[:50].numpy()) > 0.9


def test_malformed_rule_files_are_one_line_errors(small_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    (broken / NOVELTY_TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="novelty"):
        load_novelty(broken)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(broken), "--number", "1",
                           str(Path(devsets.sample_files()[0])))
    assert code != 0
    assert_one_line_error(err, "novelty")


def test_the_neighbours_score_is_the_similarity_to_the_k_th_nearest_bank_row():
    axes = torch.eye(3)
    bank = axes[[0, 0, 0, 0, 1, 1, 1, 2, 2, 2]]  # four rows along the first axis, three along each other
    features = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [-1.0, 0.0, 0.0]])
    # the third nearest: a row along the same axis (cosine 1) for the first two; an orthogonal one (0) for the last
    assert knn_similarity(features, bank, 3).tolist() == pytest.approx([0.0, 0.0, -1.0])
    assert knn_similarity(features[:1], bank, 5).tolist() == pytest.approx([-1.0])


def test_the_rule_s_logit_is_its_documented_weighted_sum(small_run, mnist):
    """is_digit logit = (HEAD_WEIGHT x the head's standardised logit + every other standardised score - threshold)
    x scale, the scores being the head, each layer's -log Mahalanobis distance and the kNN similarity."""
    checkpoint = load_checkpoint(small_run)
    novelty, model = checkpoint.novelty, checkpoint.model
    x = normalize(mnist["test"].images[:64])
    with torch.inference_mode():
        layers = branch_layers(model.image_branch, x)
        head = model.verdict(layers[-1])
        z = (novelty.scores(layers, head) - novelty.centre) / novelty.spread  # (64, 1 + L + 1)
        expected = (HEAD_WEIGHT * z[:, 0] + z[:, 1:].sum(1) - novelty.threshold) * novelty.scale
        got = checkpoint.inference_model(x, torch.zeros(64, dtype=torch.int64)).verdict
    assert z.shape[1] == 1 + novelty.layers + 1 and novelty.bank.shape == (KNN_BANK, layers[-1].shape[1])
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_rule_from_before_the_neighbours_score_still_loads_and_predicts(small_run, tmp_path, mnist):
    """Rule files without the kNN bank and weights (those of the bundled model before it) sum their scores."""
    old = tmp_path / "old-rule"
    shutil.copytree(small_run, old)
    tensors = load_checkpoint(small_run).novelty.tensors()
    keep = {k: v for k, v in tensors.items() if k not in ("bank", "weights")}
    keep["centre"], keep["spread"] = tensors["centre"][:-1], tensors["spread"][:-1]
    (old / NOVELTY_TENSORS).write_bytes(save_safetensors(keep))
    checkpoint = load_checkpoint(old)
    novelty, model = checkpoint.novelty, checkpoint.model
    x = normalize(mnist["test"].images[:64])
    with torch.inference_mode():
        layers = branch_layers(model.image_branch, x)
        scores = novelty.scores(layers, model.verdict(layers[-1]))
        expected = (((scores - keep["centre"]) / keep["spread"]).sum(1) - keep["threshold"]) * keep["scale"]
        got = checkpoint.inference_model(x, torch.zeros(64, dtype=torch.int64)).verdict
    assert scores.shape[1] == 1 + novelty.layers and torch.allclose(got, expected, atol=1e-5)
    predictions = load_model(old).predict_arrays(mnist["test"].images[:64].numpy(), [2] * 64)
    assert np.mean([p.is_digit for p in predictions]) > 0.9
