"""Evaluation: the all-pairs shortcut agrees with plain forward passes."""

from __future__ import annotations

import torch

from digitsum.checkpoint import load_checkpoint
from digitsum.evaluate import all_pairs, all_pairs_sums, fixed_test_mixture, infer
from digitsum.mixture import normalize


def test_all_pairs_matches_a_forward_pass_per_number(small_run, mnist):
    model = load_checkpoint(small_run).model
    images = mnist["test"].images[:300]
    pairs = all_pairs_sums(model, images, batch_size=128)  # (300, 10)
    with torch.inference_mode():
        direct = torch.stack([model(normalize(images), torch.full((300,), k))[1].argmax(1) for k in range(10)], 1)
    assert pairs.shape == (300, 10)
    assert torch.equal(pairs, direct)


def test_evaluate_reads_all_pairs_off_the_features_infer_kept(small_run, mnist):
    """evaluate runs the image branch once: all pairs from infer's features equal all pairs from the images."""
    checkpoint = load_checkpoint(small_run)
    model = checkpoint.inference_model.eval()  # the rule's network: its features come from its layers, one by one
    mixture = fixed_test_mixture(mnist["test"])
    out = infer(model, mixture, stop=3000, calibration=checkpoint.calibration)
    with torch.inference_mode():
        assert torch.equal(out.features, model.features(normalize(mixture.images[:3000])))
    images = mixture.images[:3000]
    kept, fresh = all_pairs(model, images, features=out.features), all_pairs(model, images)
    assert torch.equal(kept[0], fresh[0]) and torch.equal(kept[1], fresh[1])
