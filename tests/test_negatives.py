"""Synthetic non-digits for the verdict head: MNIST-style images, every kind in turn, fixed by the seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from digitsum.config import TrainConfig
from digitsum.errors import ConfigError
from digitsum.negatives import BROAD_KINDS, KINDS, MIN_ELONGATION, elongation, make_negatives


def test_the_same_seed_draws_the_same_set_and_another_seed_another(mnist):
    train = mnist["train"]
    images, labels = train.images[:2000], train.labels[:2000]
    first = make_negatives(2 * len(KINDS), images, labels, seed=7)
    assert torch.equal(first, make_negatives(2 * len(KINDS), images, labels, seed=7))
    assert not torch.equal(first, make_negatives(2 * len(KINDS), images, labels, seed=8))


@pytest.mark.parametrize("kinds", [KINDS, BROAD_KINDS])
def test_every_kind_is_an_mnist_style_image_with_ink_that_is_not_a_stroke(mnist, kinds):
    train = mnist["train"]
    drawn = make_negatives(3 * len(kinds), train.images[:2000], train.labels[:2000], seed=0, kinds=kinds)
    assert drawn.shape == (3 * len(kinds), 28, 28) and drawn.dtype == torch.uint8
    for image in drawn.numpy():
        assert image.max() == 255 and (image > 127).sum() >= 10  # ink, scaled as preprocessing scales digits
        rows, cols = np.nonzero(image)
        assert np.ptp(rows) < 20 + 2 and np.ptp(cols) < 20 + 2  # fitted to MNIST's 20x20 box (give or take blur)
        assert elongation(Image.fromarray(image)) >= MIN_ELONGATION  # a lone straight stroke (a "1") is redrawn


def test_elongation_tells_a_line_from_a_blob():
    line, blob = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    line[4:24, 13:15] = 255
    blob[8:20, 8:20] = 255
    assert elongation(Image.fromarray(line)) < 0.2 < MIN_ELONGATION < 0.9 < elongation(Image.fromarray(blob))


def test_the_broad_kinds_begin_with_the_classic_ones_drawn_alike(mnist):
    """The first round of kinds is drawn from the same generator state: the broad set adds, it does not change."""
    images, labels = mnist["train"].images[:2000], mnist["train"].labels[:2000]
    classic = make_negatives(len(KINDS), images, labels, seed=5)
    assert torch.equal(classic, make_negatives(len(KINDS), images, labels, seed=5, kinds=BROAD_KINDS))
    with pytest.raises(ConfigError, match="negative-kinds"):
        TrainConfig(negative_kinds="photos")


def test_made_up_characters_are_drawn_in_strokes_and_twice_as_often(mnist):
    assert BROAD_KINDS.count("character") == 2 and all(BROAD_KINDS.count(k) == 1 for k in KINDS)
    train = mnist["train"]
    drawn = make_negatives(12, train.images[:2000], train.labels[:2000], seed=3, kinds=("character",)).numpy()
    assert len({image.tobytes() for image in drawn}) == 12  # each one its own
    assert all(0.05 < (image > 127).mean() < 0.6 for image in drawn)  # strokes, not a filled square
