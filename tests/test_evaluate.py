"""Evaluation: the all-pairs shortcut agrees with plain forward passes."""

from __future__ import annotations

import torch

from digitsum.checkpoint import load_checkpoint
from digitsum.evaluate import all_pairs_sums
from digitsum.mixture import normalize


def test_all_pairs_matches_a_forward_pass_per_number(small_run, mnist):
    model = load_checkpoint(small_run).model
    images = mnist["test"].images[:300]
    pairs = all_pairs_sums(model, images, batch_size=128)  # (300, 10)
    with torch.inference_mode():
        direct = torch.stack([model(normalize(images), torch.full((300,), k))[1].argmax(1) for k in range(10)], 1)
    assert pairs.shape == (300, 10)
    assert torch.equal(pairs, direct)
