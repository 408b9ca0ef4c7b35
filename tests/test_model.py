"""The networks: output shapes for both architectures; the sum is a learned output."""

from __future__ import annotations

import pytest
import torch

from digitsum.config import ConfigError, ModelConfig
from digitsum.model import Logits, build_model


@pytest.mark.parametrize("arch", ["default", "seed"])
def test_outputs_are_named_ten_digit_and_nineteen_sum_logits_and_a_verdict_with_a_head(arch):
    model = build_model(ModelConfig(arch=arch)).eval()
    out = model(torch.randn(5, 1, 28, 28), torch.tensor([0, 1, 5, 9, 3]))
    assert isinstance(out, Logits) and out.digit.shape == (5, 10) and out.sum.shape == (5, 19)
    assert (out.verdict is None) == (arch == "seed") and (arch == "seed" or out.verdict.shape == (5,))


def test_seed_architecture_is_the_notebooks():
    model = build_model(ModelConfig(arch="seed"))
    convs = [m for m in model.image_branch if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(6, (5, 5)), (12, (5, 5))]
    assert model.fusion[0].out_features == 60 and model.digit_head.in_features == 60  # both heads after fc 60


@pytest.mark.parametrize("fusion", ["product", "concat"])
def test_the_number_changes_the_sum_logits(fusion):
    torch.manual_seed(0)
    model = build_model(ModelConfig(fusion=fusion)).eval()
    image = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    sums = model(image, torch.tensor([2, 7])).sum
    assert not torch.allclose(sums[0], sums[1])


def test_unknown_architecture_is_refused():
    with pytest.raises(ConfigError, match="unknown architecture 'big'"):
        ModelConfig(arch="big")


def test_unknown_fusion_is_refused():
    with pytest.raises(ConfigError, match="unknown fusion 'sum'; choose one of product, concat"):
        ModelConfig(fusion="sum")


def test_product_fusion_scales_each_fused_unit_by_the_numbers_embedding():
    model = build_model(ModelConfig(hidden=32)).eval()
    assert model.number_branch.embedding_dim == model.fusion.out_features == 32
    concat = build_model(ModelConfig(hidden=32, embedding=8, fusion="concat"))
    assert concat.number_branch.embedding_dim == 8 and concat.fusion.in_features == 32 + 8 + 10


@pytest.mark.parametrize("fusion", ["product", "concat"])
def test_default_digit_does_not_depend_on_the_number(fusion):
    torch.manual_seed(0)
    model = build_model(ModelConfig(fusion=fusion)).eval()
    image = torch.randn(1, 1, 28, 28).repeat(3, 1, 1, 1)
    digits = model(image, torch.tensor([0, 4, 9])).digit
    assert torch.equal(digits[0], digits[1]) and torch.equal(digits[0], digits[2])


@pytest.mark.parametrize("arch", ["default", "seed"])
def test_features_then_heads_equals_forward(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    images, numbers = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    direct = model(images, numbers)[:2]
    split = model.heads(model.features(images), numbers)
    assert all(torch.allclose(a, b) for a, b in zip(direct, split, strict=True))
