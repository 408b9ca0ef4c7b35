"""NumberMixture: shapes, sums, fixed evaluation numbers, per-epoch redraw, determinism."""

from __future__ import annotations

import torch

from digitsum.augment import draw_shifts, shift, stretch
from digitsum.config import TrainConfig
from digitsum.evaluate import fixed_test_mixture
from digitsum.mixture import IGNORE, MEAN, STD, NumberMixture, normalize


def tiny(n: int = 50) -> NumberMixture:
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    return NumberMixture(images, torch.arange(n) % 10)


def draw(**fields) -> TrainConfig:
    """A TrainConfig that draws plain batches: no shifts, stretches or non-digits unless ``fields`` ask."""
    return TrainConfig(**{"max_shift": 0, "stretch": 0.0, "negatives": 0.0, **fields})


def collect(mixture, epoch: int, **fields):
    batches = list(mixture.epoch_batches(epoch, draw(**fields)))
    return {k: torch.cat([getattr(b, k) for b in batches]) for k in ("images", "numbers", "digits", "sums")}


def test_batches_have_shapes_and_sums():
    batch = next(tiny().epoch_batches(1, draw(seed=0, batch_size=16)))
    assert batch.images.shape == (16, 1, 28, 28) and batch.images.dtype == torch.float32
    assert batch.numbers.shape == batch.digits.shape == batch.sums.shape == (16,)
    assert torch.equal(batch.sums, batch.digits + batch.numbers)
    assert batch.numbers.min() >= 0 and batch.numbers.max() <= 9


def test_normalize_matches_training_statistics():
    x = normalize(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert torch.allclose(x.flatten(), torch.tensor([(0 - MEAN) / STD, (1 - MEAN) / STD]))


def test_epoch_drops_only_the_partial_last_batch():
    epoch = collect(tiny(50), epoch=1, seed=0, batch_size=16)
    assert len(epoch["digits"]) == 48 == 16 * tiny(50).steps_per_epoch(16)


def test_numbers_and_order_are_redrawn_each_epoch():
    m = tiny(200)
    one, two = collect(m, epoch=1, seed=0, batch_size=50), collect(m, epoch=2, seed=0, batch_size=50)
    assert not torch.equal(one["numbers"], two["numbers"])
    assert not torch.equal(one["digits"], two["digits"])


def test_same_seed_and_epoch_give_the_same_batches():
    m = tiny(200)
    a = collect(m, epoch=3, seed=7, batch_size=32, max_shift=2)
    b = collect(m, epoch=3, seed=7, batch_size=32, max_shift=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = collect(m, epoch=3, seed=8, batch_size=32, max_shift=2)
    assert not torch.equal(a["numbers"], c["numbers"])


def test_ranks_split_each_global_batch_without_overlap():
    m = tiny(200)
    whole = collect(m, epoch=1, seed=0, batch_size=40)
    r0 = list(m.epoch_batches(1, draw(seed=0, batch_size=40), rank=0, world_size=2))  # 20 each of 40
    r1 = list(m.epoch_batches(1, draw(seed=0, batch_size=40), rank=1, world_size=2))
    assert len(r0) == len(r1) == 5
    merged = torch.stack([torch.cat([a.numbers, b.numbers]) for a, b in zip(r0, r1, strict=True)])
    assert sorted(merged.flatten().tolist()) == sorted(whole["numbers"].tolist())


def test_shift_moves_pixels_without_changing_ink():
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, 10:14, 10:14] = 255
    shifted = shift(img.repeat(64, 1, 1), draw_shifts(64, 2, torch.Generator().manual_seed(0)), 2)
    assert (shifted.flatten(1).sum(1) == img.sum()).all()  # nothing falls off the edge
    assert len({tuple(s.nonzero()[0].tolist()) for s in shifted}) > 1


def test_test_numbers_are_fixed_for_every_evaluation(mnist):
    a, b = fixed_test_mixture(mnist["test"]), fixed_test_mixture(mnist["test"])
    assert torch.equal(a.numbers, b.numbers)
    counts = torch.bincount(a.numbers, minlength=10)
    assert counts.min() > 900  # every number 0-9 well represented among the 10,000


def test_item_view_matches_batches(mnist):
    m = fixed_test_mixture(mnist["test"])
    image, number, digit, total = m[3]
    batch = next(m.batches(8))
    assert torch.equal(image, batch.images[3]) and (number, digit, total) == (
        int(batch.numbers[3]), int(batch.digits[3]), int(batch.sums[3]))


def test_ranks_share_the_global_batch_with_its_shifts_stretches_and_non_digits(mnist):
    train = mnist["train"]
    bank = train.images[200:260].flip(2)  # stand-ins for non-digits: only their identity matters here
    m = NumberMixture(train.images[:200], train.labels[:200], negatives=bank)
    cfg = draw(seed=5, batch_size=40, max_shift=2, stretch=0.5, negatives=0.25)
    whole = next(m.epoch_batches(2, cfg))
    shares = [next(m.epoch_batches(2, cfg, rank=r, world_size=2)) for r in (0, 1)]
    for field in ("images", "numbers", "digits", "sums", "real"):
        merged = torch.cat([getattr(s, field) for s in shares])
        assert sorted(map(str, merged.flatten(1).tolist() if merged.ndim > 1 else merged.tolist())) == sorted(
            map(str, getattr(whole, field).flatten(1).tolist() if merged.ndim > 1 else getattr(whole, field).tolist()))
    assert whole.real.sum() == 40 and (~whole.real).sum() == 10  # 40 digits, a quarter as many non-digits
    assert (whole.digits[~whole.real] == IGNORE).all() and (whole.sums[~whole.real] == IGNORE).all()


def test_stretching_widens_a_thin_digit_toward_its_box_and_keeps_its_centre(mnist):
    ones = mnist["test"].images[mnist["test"].labels == 1][:20]
    full = stretch(ones, torch.ones(20))

    def width(images):
        return (images.amax(1) > 0).sum(1).float()

    def centre(images):
        x = images.float()
        return (x.sum(1) * torch.arange(28)).sum(1) / x.sum((1, 2))

    assert (width(full) >= 19).all() and (width(ones) <= 12).all()  # a 1 stretched all the way fills the box
    assert (centre(full) - 14).abs().max() < 1
    unchanged = stretch(ones, torch.zeros(20))
    assert (width(unchanged) - width(ones)).abs().max() <= 2  # not stretched: only resampled
