"""What the number branch learns (embedding.py), and the shift fusion that has to add (model.py)."""

from __future__ import annotations

import torch

from digitsum.config import ModelConfig
from digitsum.embedding import components, describe, pc1_r2, readout_accuracy
from digitsum.model import build_model

NUMBERS = torch.arange(10, dtype=torch.float64)


def test_embeddings_in_order_on_a_line_read_out_perfectly():
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(32, generator=g, dtype=torch.float64)
    line = NUMBERS[:, None] * direction + 0.01 * torch.randn(10, 32, generator=g, dtype=torch.float64)
    assert readout_accuracy(line) == 1.0 and pc1_r2(line) > 0.999
    assert (components(line)[:, 0].diff() > 0).all()  # the first component rises with the number


def test_a_one_value_embedding_is_read_like_a_line():
    assert readout_accuracy(3 - 0.7 * NUMBERS[:, None]) == 1.0
    assert components(NUMBERS[:, None]).shape == (10, 2)


def test_shuffled_embeddings_do_not_read_out():
    g = torch.Generator().manual_seed(1)
    shuffled = NUMBERS[torch.randperm(10, generator=g)][:, None] * torch.ones(1, 8, dtype=torch.float64)
    assert readout_accuracy(shuffled) <= 0.3 and pc1_r2(shuffled) < 0.5


def test_describe_reads_every_network():
    for config in (ModelConfig(), ModelConfig(fusion="concat"), ModelConfig(arch="seed"), ModelConfig(fusion="shift")):
        figures = describe(build_model(config))
        assert 0 <= figures["readout_accuracy"] <= 1 and 0 <= figures["pc1_r2"] <= 1


def test_shift_fusion_slides_one_kernel_per_number_along_the_digit_distribution():
    torch.manual_seed(0)
    model = build_model(ModelConfig(fusion="shift", verdict=False)).eval()
    features = torch.randn(3, 128)
    numbers = torch.tensor([0, 4, 9])
    digit_logits, sum_logits = model.heads(features, numbers)  # (3, 10), (3, 19)
    p, kernels = digit_logits.softmax(1), model.number_branch.weight  # (3, 10), (10, 28)
    for b, n in enumerate(numbers.tolist()):
        expected = [sum(p[b, d] * kernels[n, s - d + 9] for d in range(10)) for s in range(19)]
        assert torch.allclose(sum_logits[b], torch.stack(expected), atol=1e-5)
